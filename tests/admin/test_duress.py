"""The admin page and the duress PIN: the users list says whether one is set (never more), the
lockouts list shows a user it froze, and that row's Unlock ends the freeze."""

import html
import re
from dataclasses import replace

from tests.admin.helpers import AdminClient
from totpd.lockout_windows import Layer
from totpd.roster import Roster
from totpd.services import Services

DURESS_PIN = "73829164"


def set_duress(services: Services, freezes: bool) -> None:
    duress_hash = services.pins.hash(DURESS_PIN)

    def change(roster: Roster) -> Roster:
        alice = roster.users["alice"]
        return roster.with_user(replace(alice, duress_hash=duress_hash, duress_freezes=freezes))

    services.roster.update(change)


def table_rows(page: str, table_id: str) -> list[tuple[str, dict[str, str]]]:
    """Each body row of a table: its text, and the hidden fields of a form in it."""
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.DOTALL)
    assert table is not None, page
    body = table[1].split("</thead>")[-1]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.DOTALL):
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', row))
        text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split())
        rows.append((text, {k: html.unescape(v) for k, v in fields.items()}))
    return rows


async def test_the_users_list_says_whether_a_duress_pin_is_set_and_nothing_more(
    signed_in_admin: AdminClient, services: Services
) -> None:
    [(before, _)] = table_rows(await (await signed_in_admin.get("/")).text(), "users")
    assert before.endswith(" no")
    set_duress(services, freezes=False)
    page = await (await signed_in_admin.get("/")).text()
    assert "<th>Duress PIN</th>" in page
    [(row, _)] = table_rows(page, "users")
    assert row.startswith("alice 1 ")
    assert row.endswith(" yes")
    set_duress(services, freezes=True)
    page = await (await signed_in_admin.get("/")).text()
    [(row, _)] = table_rows(page, "users")
    assert row.endswith(" yes, freezes the codes")
    assert "$argon2" not in page
    assert DURESS_PIN not in page


async def test_a_frozen_user_is_listed_and_its_unlock_ends_the_freeze(
    signed_in_admin: AdminClient, services: Services
) -> None:
    set_duress(services, freezes=True)
    assert await services.lockout.freeze("alice")
    page = await (await signed_in_admin.get("/")).text()
    [(text, fields)] = table_rows(page, "lockouts")
    assert re.fullmatch(
        r"phone frozen alice frozen by the duress PIN since .+, until unlocked .*", text
    )
    assert "Unlock" in text
    cleared = await signed_in_admin.post("/lockouts/unlock", data=fields)
    assert cleared.status == 200
    assert "Cleared the freeze of user alice." in html.unescape(await cleared.text())
    assert not any(s.layer is Layer.FROZEN for s in await services.lockout.status())
    admitted = await services.lockout.admit("447700900001", "alice")
    assert admitted.refused_by is None  # her PIN is checked again
