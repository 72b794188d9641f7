"""SIGHUP re-reads the config file of a running `totpd serve`: what may change live changes for
new requests, what needs a restart keeps its old value and says so, a config that does not
parse changes nothing, and a call that answered before the reload completes after it."""

import asyncio
import signal
import time
from pathlib import Path

from tests.helpers import APPLICATION_ID, CALLER, PIN, SIGNATURE_SECRET, free_port
from tests.servers import Line, Replica, new_session
from totpd import reload as reload_module
from totpd import vonage
from totpd.config import parse


async def reload(replica: Replica, config_text: str) -> str:
    """Write `config_text` as the daemon's config, SIGHUP it, and return what it logged."""
    replica.config_path.write_text(config_text)
    logged = len(replica.log())
    assert replica.process is not None
    replica.process.send_signal(signal.SIGHUP)
    deadline_s = time.monotonic() + 20
    while "reloaded" not in replica.log()[logged:]:
        assert time.monotonic() < deadline_s, replica.log()[logged:]
        await asyncio.sleep(0.05)
    return replica.log()[logged:]


def languages(ncco: object) -> set[str]:
    """The language of every talk action."""
    assert isinstance(ncco, list)
    return {action["language"] for action in ncco if action["action"] == "talk"}


async def test_sighup_applies_a_changed_config_to_new_requests(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    replica = Replica(tmp_path / "daemon")
    replicas.append(replica)
    replica.start()
    original = replica.config_path.read_text()
    async with new_session() as session:
        line = Line(session, replica.base_url)
        in_flight = {"from": CALLER, "uuid": "before-the-reload"}
        heard = await line.post("/webhooks/answer", in_flight)
        assert languages(heard.ncco) == {"en-GB"}

        changed = original.replace(
            "[vonage]\n", "[vonage]\nmax_clock_disagreement_s = 120\n"
        ).replace("[server]\n", "[server]\nidle_timeout_s = 30\n", 1)
        changed += '\n[call]\nlanguage = "en-US"\ncode_repeats = 3\n'
        moved_port = free_port()
        changed = changed.replace(
            f'listen = "127.0.0.1:{replica.port}"', f'listen = "127.0.0.1:{moved_port}"'
        )
        logged = await reload(replica, changed)
        assert "server.listen" in logged
        assert "needs a restart" in logged
        assert "Traceback" not in logged

        # The call that answered before the reload goes on, and hears the new settings.
        pin = {**in_flight, "dtmf": {"digits": PIN, "timed_out": False}}
        heard = await line.post("/webhooks/input/pin", pin)
        assert "code is" in heard.said
        assert heard.said.count("Again:") == 2  # code_repeats = 3: said three times
        assert languages(heard.ncco) == {"en-US"}
        # A new call, on the old port (the listener stays where it was).
        heard = await line.post("/webhooks/answer", {"from": CALLER, "uuid": "after"})
        assert languages(heard.ncco) == {"en-US"}
        # [vonage] checks: a clock 60 s off is now within the limit.
        body = b'{"from": "447700900002", "uuid": "skewed"}'
        token = vonage.sign_webhook(
            body, SIGNATURE_SECRET.encode(), time.time() - 60, APPLICATION_ID
        )
        heard = await line.send("/webhooks/answer", body, token)
        assert "enter your PIN" in heard.said

        # A config that does not parse: logged, and the one in force stays.
        logged = await reload(replica, changed + "\n[call\n")
        assert "not valid TOML" in logged
        heard = await line.post("/webhooks/answer", {"from": CALLER, "uuid": "after-broken"})
        assert languages(heard.ncco) == {"en-US"}
        # An invalid value: the same.
        logged = await reload(replica, changed.replace("code_repeats = 3", "code_repeats = 99"))
        assert "call.code_repeats" in logged
        heard = await line.post("/webhooks/answer", {"from": CALLER, "uuid": "after-invalid"})
        assert languages(heard.ncco) == {"en-US"}

        # Back to the original: en-GB again, for new calls.
        await reload(replica, original)
        heard = await line.post("/webhooks/answer", {"from": CALLER, "uuid": "back"})
        assert languages(heard.ncco) == {"en-GB"}
    assert replica.process is not None
    assert replica.process.poll() is None  # it never stopped


def test_a_reload_names_a_changed_storage_without_its_password() -> None:
    running = parse("")
    loaded = parse('[lockout]\nstorage = "redis://:hunter2@db.example:6379/0"')
    reconciled = reload_module.reconcile(running, loaded)
    assert reconciled.pending == ("lockout.storage",)
    shown = reload_module.describe(loaded, "lockout.storage")
    assert shown == "a redis:// URI"
    assert reload_module.describe(running, "lockout.storage") == "embedded"
