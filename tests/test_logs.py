"""totpd.logs against the real thing: text lines with key=value fields off the journal, and
journald's native protocol as libsystemd writes it under journald."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.helpers import parse_journal_datagram

LOG_SCRIPT = """
import logging, os, sys
from totpd import logs
if os.environ.get("MATCH_STREAM"):
    st = os.fstat(2)
    os.environ["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino + int(os.environ['MATCH_STREAM']) - 1}"
logs.configure_logging("INFO")
log = logging.getLogger("totpd.web")
log.debug("not shown")
log.info(
    "PIN %s for user %r", "wrong", "alice",
    extra={"fields": {"CALL_UUID": "c-1", "STEP": "pin", "OUTCOME": "wrong", "USER": "alice",
                      "ACCOUNT": None, "CALLER": "44 7700 900001", "_PID": "1",
                      "MESSAGE": "forged", "bad name": "x"}},
)
log.warning("plain line")
"""


def run_logging(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run LOG_SCRIPT in a fresh interpreter (logging config is process-wide)."""
    return subprocess.run(
        [sys.executable, "-c", LOG_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        check=False,
    )


@pytest.mark.parametrize("stream", ["", "2"])
def test_off_the_journal_lines_are_text_with_key_value_fields(stream: str) -> None:
    # "2" sets $JOURNAL_STREAM to an inode that is not stderr's: inherited, not ours.
    done = run_logging({"MATCH_STREAM": stream} if stream else {})
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    stamp, level, rest = lines[0].split(" ", 2)
    time.strptime(stamp.split(".")[0], "%Y-%m-%dT%H:%M:%S")
    assert level == "INFO"
    assert rest == (
        "totpd.web: PIN wrong for user 'alice' call_uuid=c-1 step=pin outcome=wrong user=alice"
        ' caller="44 7700 900001"'
    )
    assert lines[1].split(" ", 1)[1] == "WARNING totpd.web: plain line"


JOURNAL_CATCHER = """
import os, socket, subprocess, sys, json
subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
os.makedirs("/run/systemd/journal")
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.settimeout(10)
child = subprocess.run([sys.executable, "-c", sys.argv[1]], env={**os.environ, "MATCH_STREAM": "1"},
                       stderr=subprocess.PIPE, text=True, timeout=30)
datagrams = []
sock.settimeout(0.5)
try:
    while True:
        datagrams.append(sock.recv(65536).hex())
except TimeoutError:
    pass
print(json.dumps({"datagrams": datagrams, "stderr": child.stderr, "rc": child.returncode}))
"""


@pytest.mark.root  # for a mount namespace where our own socket stands in for journald's
def test_under_journald_records_carry_structured_fields() -> None:
    # A private mount namespace puts our own socket where libsystemd sends journal entries,
    # so this reads exactly the bytes journald would receive, without touching the host's.
    done = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-c",
            JOURNAL_CATCHER,
            LOG_SCRIPT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["rc"] == 0
    assert report["stderr"] == "", "under journald nothing goes to stderr"
    entries = [parse_journal_datagram(bytes.fromhex(d)) for d in report["datagrams"]]
    assert len(entries) == 2
    pin, plain = entries
    assert pin["MESSAGE"] == "PIN wrong for user 'alice'"
    assert pin["PRIORITY"] == "6"
    assert pin["SYSLOG_IDENTIFIER"] == "totpd"
    assert pin["LOGGER"] == "totpd.web"
    expected = {
        "CALL_UUID": "c-1",
        "STEP": "pin",
        "OUTCOME": "wrong",
        "USER": "alice",
        "CALLER": "44 7700 900001",
    }
    assert {key: pin.get(key) for key in expected} == expected
    # Trusted fields cannot be forged, absent values are dropped, junk names are refused,
    # and the record's other attributes do not leak in as fields.
    assert "_PID" not in pin
    assert "ACCOUNT" not in pin
    assert not any(" " in key for key in pin)
    assert "FIELDS" not in pin
    assert "ARGS" not in pin
    assert "CODE_ARGS" not in pin
    assert plain["MESSAGE"] == "plain line"
    assert plain["PRIORITY"] == "4"
    assert "CALL_UUID" not in plain
