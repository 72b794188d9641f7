"""Unlocking from the admin page and `totpd unlock`: each clears exactly the window it names,
the phone's or the admin page's, and refuses a key it does not know."""

import html
import re
from pathlib import Path

import pytest

from tests.admin.helpers import AdminClient
from tests.helpers import CALLER, run_totpd
from totpd.admin.auth import LOCKOUT_USER
from totpd.lockout import Lockout
from totpd.lockout_windows import Layer, LockState
from totpd.services import Services, read_lockouts


async def fail_three_times(lockout: Lockout, user: str) -> None:
    """Three wrong guesses from a withheld caller (a browser, for the admin page)."""
    for _ in range(3):
        await lockout.record_failure(await lockout.admit("", user))


def row_forms(page: str) -> list[tuple[str, dict[str, str]]]:
    """Each row of the lockouts table: its text, and the fields its Unlock form posts."""
    table = re.search(r'<table id="lockouts">(.*?)</table>', page, re.DOTALL)
    assert table is not None, page
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", table[1], re.DOTALL):
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', row))
        if not fields:
            continue  # the heading
        text = html.unescape(re.sub(r"<[^>]+>", " ", row))
        rows.append((" ".join(text.split()), {k: html.unescape(v) for k, v in fields.items()}))
    return rows


def locked_windows(states: list[LockState]) -> set[tuple[str, str, str]]:
    """(scope, layer, key) of every locked window."""
    return {(s.scope, s.layer.value, s.key) for s in states if s.locked}


async def test_unlock_on_an_admin_page_row_clears_the_admin_window_only(
    signed_in_admin: AdminClient, services: Services
) -> None:
    await fail_three_times(services.lockout, "alice")  # a phone caller, number withheld
    await fail_three_times(services.admin_lockout, LOCKOUT_USER)  # the sign-in form
    page = await (await signed_in_admin.get("/")).text()
    [(text, fields)] = [
        (t, f) for t, f in row_forms(page) if "admin" in t and "caller" in t and "withheld" in t
    ]
    assert text.startswith("admin page caller (withheld) 3 of 3 locked")  # says whose it is
    cleared = await signed_in_admin.post("/lockouts/unlock", data=fields)
    assert cleared.status == 200
    after = locked_windows(await services.lockout.status())
    assert ("", "caller", "(withheld)") in after  # the phone's window: untouched
    assert ("admin", "caller", "(withheld)") not in after
    assert "Cleared admin page: caller (withheld)." in html.unescape(await cleared.text())


async def test_unlock_on_a_phone_row_clears_the_phone_window_only(
    signed_in_admin: AdminClient, services: Services
) -> None:
    await fail_three_times(services.lockout, "alice")
    await fail_three_times(services.admin_lockout, LOCKOUT_USER)
    page = await (await signed_in_admin.get("/")).text()
    [(text, fields)] = [(t, f) for t, f in row_forms(page) if t.startswith("phone caller")]
    assert text.startswith("phone caller (withheld) 3 of 3 locked")
    await signed_in_admin.post("/lockouts/unlock", data=fields)
    after = locked_windows(await services.lockout.status())
    assert ("", "caller", "(withheld)") not in after
    assert ("admin", "caller", "(withheld)") in after


@pytest.mark.parametrize(
    "window", ["LIMITER/caller/447700900999/3/15/minute", "anything", "", "LIMITER/global/all"]
)
async def test_a_forged_unlock_form_is_refused_and_clears_nothing(
    signed_in_admin: AdminClient, services: Services, window: str
) -> None:
    await fail_three_times(services.lockout, "alice")
    page = await (await signed_in_admin.get("/")).text()
    [(_, fields)] = row_forms(page)[:1]
    before = locked_windows(await services.lockout.status())
    for name in ("window", "key"):
        if name in fields:
            fields[name] = window
    refused = await signed_in_admin.post("/lockouts/unlock", data={**fields, "layer": "caller"})
    assert refused.status == 400
    assert "Nothing was unlocked" in await refused.text()
    assert locked_windows(await services.lockout.status()) == before


@pytest.mark.parametrize(
    ("caller", "rule"),
    [
        ("admin:(withheld)", "not a phone number"),
        ("admin:password", "not a phone number"),
        ("(withheld)", "not a phone number"),
        ("sip:alice@example.com", "not a phone number"),
        ("", "empty"),
        ("0044 7700 900001", "international form"),
    ],
)
def test_unlock_refuses_a_caller_that_is_neither_a_number_nor_withheld(
    config_path: Path, services: Services, caller: str, rule: str
) -> None:
    import asyncio

    asyncio.run(fail_three_times(services.lockout, "alice"))
    refused = run_totpd(config_path, "unlock", "--caller", caller)
    assert refused.returncode == 1
    assert rule in refused.stderr
    assert "Traceback" not in refused.stderr
    assert ("", "caller", "(withheld)") in locked_windows(read_lockouts(services.config))


def test_unlock_of_a_caller_and_of_the_admin_page_from_the_cli(
    config_path: Path, services: Services
) -> None:
    import asyncio

    asyncio.run(fail_three_times(services.lockout, "alice"))
    asyncio.run(fail_three_times(services.admin_lockout, LOCKOUT_USER))
    for _ in range(3):
        asyncio.run(
            services.lockout.record_failure(asyncio.run(services.lockout.admit(CALLER, "bob")))
        )
    by_number = run_totpd(config_path, "unlock", "--caller", "+44 7700 900001")
    assert by_number.returncode == 0, by_number.stderr
    assert f"cleared caller {CALLER}: 3/3 failures" in by_number.stdout
    withheld = run_totpd(config_path, "unlock", "--caller", "withheld")
    assert "cleared caller (withheld): 3/3 failures" in withheld.stdout
    locked = locked_windows(read_lockouts(services.config))
    assert {w for w in locked if w[0] == "admin"}  # the admin page's windows: untouched
    assert not {w for w in locked if w[0] == "" and w[1] == Layer.CALLER}
    page = run_totpd(config_path, "unlock", "--admin")
    assert page.returncode == 0, page.stderr
    assert "cleared admin page: caller (withheld): 3/3 failures" in page.stdout
    assert not {w for w in locked_windows(read_lockouts(services.config)) if w[0] == "admin"}
