"""`make test-vm`: totpd on a real machine, installed the way the deployment guide says.

A Debian 12 guest (QEMU, full emulation: no KVM needed) with systemd as PID 1 and a TPM2
(swtpm) boots three times from one disk:

1. first boot: `apt install ./totpd_<version>_amd64.deb` (offline: the image holds what it
   depends on), then `totpd-seal-credentials` seals the credentials with the guest's TPM2;
   the guide's remaining steps (config, start, Caddy with TLS, socket activation, an account
   and a user); then checks 1-7 and 9 of the unit;
2. the same disk with a fresh TPM, as if copied to another machine: nothing unseals (8);
3. the original TPM again: it all works, the lockout outlived the reboot (7, 8), and an
   upgrade (`apt install` of a newer build) keeps state, credentials and config (10).

The guest only records what happened (tests/vm/guest/phase.py); the judging is here. Every
failure quotes the guest's journal for the step that failed, secrets redacted.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import shutil
import struct
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.vm.machine import Boot, Machine, image, new_workdir, newer_package, package

pytestmark = pytest.mark.vm

OWNER, ATTACKER = "447700900001", "447700900666"
HOST_NAME = "totpd.vm.test"
MAX_EXPOSURE = 1.5
# Generous: the guest is fully emulated on a shared 2-core host.
BOOT_TIMEOUT_S = {"first-boot": 1800, "foreign-tpm": 600, "original-tpm": 1200}
WATCHDOG_MARGIN_S = 10.0
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")
_CODE = re.compile(r"code is: ([\d ]+)\.")


@dataclass
class VmRun:
    """Three boots of one guest, and the secrets the test gave it."""

    boots: dict[str, Boot]
    params: dict[str, Any]
    workdir: Path
    setup_s: float

    def boot(self, phase: str) -> Boot:
        """One boot; an AssertionError when the run never got that far."""
        if phase not in self.boots:
            first = self.boots["first-boot"]
            raise AssertionError(
                f"boot {phase!r} did not run: the first boot's install failed\n"
                + self.explain(first, first.results.get("install", {}), "apt install")
            )
        return self.boots[phase]

    @property
    def secrets(self) -> dict[str, str]:
        """What must never appear in the journal, by name."""
        names = ("pin", "wrong_pin", "seed", "signature_secret", "backup_passphrase")
        return {name: self.params[name] for name in names}

    def explain(self, boot: Boot, record: dict[str, Any], what: str, tail: int = 60) -> str:
        """`what`, with the guest's journal during the step attached (its last `tail` lines),
        secrets redacted."""
        journal = render(journal_during(boot, record)).splitlines()[-tail:]
        error = record.get("error", "")
        text = f"{what}\n"
        if error:
            text += f"--- the guest's step raised ---\n{error}\n"
        text += f"--- guest journal during the step ({boot.phase}) ---\n" + "\n".join(journal)
        return redact(text, self.secrets.values())


def _digits(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


@pytest.fixture(scope="module")
def vm(pytestconfig: pytest.Config) -> VmRun:
    """Build (or reuse) the image, then boot the guest three times."""
    terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def progress(text: str) -> None:  # minutes pass between boots: say what is going on
        if terminal is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                terminal.ensure_newline()
                terminal.write(f"[test-vm] {text}\n", flush=True)

    started = time.monotonic()
    workdir = new_workdir()  # kept after the run (console, progress, journal) until the next
    progress(f"guest image and packages (work directory {workdir})")
    deb = package()
    guest = Machine(image(deb), workdir)
    shutil.copy(deb, guest.share)
    params = {
        "pin": _digits(10),
        "wrong_pin": _digits(10),
        "seed": base64.b32encode(secrets.token_bytes(20)).decode(),
        "signature_secret": secrets.token_hex(32),
        "backup_passphrase": secrets.token_urlsafe(24),
        "application_id": str(uuid.uuid4()),
        "host_name": HOST_NAME,
        "callers": {"owner": OWNER, "attacker": ATTACKER},
        "package": deb.name,
        "newer_package": newer_package(deb, guest.share, "upgrade").name,
    }
    setup_s = time.monotonic() - started
    original = guest.tpm("original")
    plan = [
        ("first-boot", original, False),
        ("foreign-tpm", guest.tpm("foreign"), True),  # never saw this disk; writes discarded
        ("original-tpm", original, False),
    ]
    boots: dict[str, Boot] = {}
    for phase, tpm, snapshot in plan:
        progress(f"booting the guest: {phase} (at most {BOOT_TIMEOUT_S[phase] // 60} minutes)")
        boots[phase] = guest.boot(
            phase, tpm, params, timeout_s=BOOT_TIMEOUT_S[phase], snapshot=snapshot
        )
        progress(f"{phase} powered off after {boots[phase].elapsed_s:.0f} s")
        if boots["first-boot"].results.get("install", {}).get("rc") != 0:
            break  # a disk without totpd has nothing more to show
    return VmRun(boots, params, workdir, setup_s)


# --- reading what the guest saw ---------------------------------------------------------


def redact(text: str, hidden: Iterable[str]) -> str:
    """`text` with every secret replaced, so a failure message never prints one."""
    for secret in hidden:
        text = text.replace(secret, "<redacted>")
    return text


def journal_during(boot: Boot, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The boot's journal entries written while a step ran (by the monotonic clock)."""
    since = record.get("started", {}).get("monotonic_s", 0.0)
    until = record.get("ended", {}).get("monotonic_s", float("inf"))
    return [
        entry
        for entry in boot.journal
        if since <= int(entry.get("__MONOTONIC_TIMESTAMP", 0)) / 1e6 <= until
    ]


def message(entry: dict[str, Any]) -> str:
    """An entry's MESSAGE (journalctl writes one with control characters as a byte list)."""
    value = entry.get("MESSAGE", "")
    if isinstance(value, list):
        return bytes(value).decode(errors="replace")
    return str(value)


def render(entries: Iterable[dict[str, Any]]) -> str:
    """Journal entries as `monotonic unit: message` lines."""
    lines = []
    for entry in entries:
        unit = entry.get("_SYSTEMD_UNIT") or entry.get("UNIT") or entry.get("SYSLOG_IDENTIFIER")
        monotonic_s = int(entry["__MONOTONIC_TIMESTAMP"]) / 1e6
        lines.append(f"{monotonic_s:9.3f} {unit}: {message(entry)}")
    return "\n".join(lines)


def heard(call: dict[str, Any]) -> list[str]:
    """Every line the caller heard (the emulator's "totpd: ..." lines)."""
    return [line for _, line in call.get("lines", []) if line.startswith("totpd: ")]


def codes_heard(call: dict[str, Any]) -> list[str]:
    """The codes read to the caller, digits only."""
    return [m.replace(" ", "") for line in heard(call) for m in _CODE.findall(line)]


def transcript(call: dict[str, Any]) -> str:
    """The emulator's output, for a failure message."""
    lines = [str(line) for _, line in call.get("lines", [])]
    return "\n".join([*lines, str(call.get("stderr", ""))])


def totp(seed: str, at_s: float) -> str:
    """RFC 6238 (SHA-1, 6 digits, 30 s) at a time: the test's own, not totpd's."""
    key = base64.b32decode(seed)
    digest = hmac.new(key, struct.pack(">Q", int(at_s // 30)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def codes_during(seed: str, record: dict[str, Any]) -> set[str]:
    """Every code valid while a call or command ran, and the next one (totpd reads the next
    period's code when the current one is about to change)."""
    since = record["started"]["realtime_s"]
    until = record.get("ended", record["started"])["realtime_s"] + 30
    return {totp(seed, at_s) for at_s in range(int(since) - 1, int(until) + 1)}


def assert_code_read(vm: VmRun, boot: Boot, step: dict[str, Any], call: dict[str, Any]) -> str:
    """The call read exactly one code, and it is the enrolled account's code of that time."""
    codes = codes_heard(call)
    assert call.get("rc") == 0, vm.explain(boot, step, f"the call failed:\n{transcript(call)}")
    assert len(codes) == 1, vm.explain(boot, step, f"not one code read:\n{transcript(call)}")
    assert codes[0] in codes_during(vm.params["seed"], call), vm.explain(
        boot, step, "the code read is not the account's code at the time of the call"
    )
    return codes[0]


def assert_no_code_read(vm: VmRun, boot: Boot, step: dict[str, Any], call: dict[str, Any]) -> None:
    """The call read no code."""
    assert not codes_heard(call), vm.explain(boot, step, f"a code was read:\n{transcript(call)}")


def metric(text: str, name: str) -> float | None:
    """The value of one unlabelled sample in /metrics text, None when absent."""
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return None


def show(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """A measurement on the terminal, even when pytest captures output."""
    with capsys.disabled():
        print(f"\n[test-vm] {line}")


# --- the checks -------------------------------------------------------------------------


def test_the_guest_is_a_debian_machine_with_systemd_and_a_tpm2(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("first-boot")
    facts = boot.step("boot")
    assert facts["pid1"] == "systemd"
    assert facts["system_state"] == "running", vm.explain(boot, facts, facts["failed_units"])
    # "partial": no firmware measurements with a direct kernel boot; sealing needs none.
    assert "+driver" in facts["has_tpm2"]["stdout"], facts["has_tpm2"]
    assert "+subsystem" in facts["has_tpm2"]["stdout"], facts["has_tpm2"]
    show(capsys, f"setup on the host (image, the newer package): {vm.setup_s:.0f} s")
    for phase, each in vm.boots.items():
        startup = each.results.get("boot", {}).get("startup", "").splitlines()
        show(
            capsys,
            f"boot {phase}: {each.elapsed_s:.0f} s in all; {startup[0] if startup else '?'}",
        )


def test_apt_installs_the_package_offline_and_names_the_next_step(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("first-boot")
    install = boot.step("install")
    output = lines_of(install)
    assert install.get("rc") == 0, vm.explain(boot, install, f"apt install failed:\n{output}")
    assert "totpd: next step: sudo totpd-seal-credentials" in output
    # Enabled, but not started: it could not start without its sealed credentials.
    assert (install["is_enabled"], install["is_active"]) == ("enabled", "inactive"), install
    assert install["version"].startswith(f"totpd {install['package_version']} (deb amd64, git ")
    show(capsys, f"apt install in the guest: {install['elapsed_s']:.0f} s")


def test_the_credentials_are_sealed_to_the_tpm2_and_the_unit_starts(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("first-boot")
    seal = boot.step("seal")
    output = lines_of(seal)
    assert seal.get("rc") == 0, vm.explain(boot, seal, f"totpd-seal-credentials failed:\n{output}")
    # No firmware announced this TPM2 (no UEFI): systemd 252's own "auto" would skip it.
    assert "sealing a new vault key as credential totpd-vault-key (host+tpm2)" in output
    assert "sealing the Vonage signature secret as credential vonage-signature-secret" in output
    assert seal["credentials"] == ["totpd-vault-key.cred", "vonage-signature-secret.cred"]
    configure = boot.step("configure")
    assert configure["check_config"]["rc"] == 0, vm.explain(
        boot, configure, f"check-config failed: {configure['check_config']}"
    )
    assert configure["is_active"] == "active", vm.explain(boot, configure, "totpd did not start")
    for name in ("caddy_reload", "sockets", "account_add", "user_add"):
        done = configure.get(name, {})
        assert done.get("rc") == 0, vm.explain(boot, configure, f"{name} failed: {done}")
    show(capsys, f"totpd-seal-credentials in the guest: {seal['elapsed_s']:.1f} s")


def test_secrets_init_seals_to_the_tpm2_the_firmware_did_not_announce(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("secrets_init")
    init = step["init"]
    assert init["rc"] == 0, vm.explain(boot, step, f"secrets init failed: {init}")
    assert "(key: host+tpm2)" in init["stdout"], init["stdout"]
    assert step["decrypt"]["rc"] == 0, step["decrypt"]
    # And the proof that the TPM2 is in it: another TPM2 cannot open it, the original can.
    foreign = vm.boot("foreign-tpm").step("foreign_tpm")["secrets_init_decrypt"]
    assert foreign["rc"] != 0, "a key `secrets init` sealed opened with a foreign TPM"
    assert vm.boot("original-tpm").step("after_reboot")["secrets_init_decrypt"]["rc"] == 0


def lines_of(record: dict[str, Any]) -> str:
    """The output a streamed command printed, as text."""
    return "\n".join(line for _, line in record.get("lines", []))


def test_the_first_webhook_starts_the_daemon(vm: VmRun, capsys: pytest.CaptureFixture[str]) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("socket_activation")
    assert step["before"] == {"service": "inactive", "socket": "active"}, vm.explain(
        boot, step, "totpd should be stopped with its socket listening"
    )
    cold = step["cold"]
    assert cold["rc"] == 0, vm.explain(boot, step, f"the signed answer failed: {cold['stderr']}")
    answer = cold["answer"]
    assert answer["status"] == 200, vm.explain(boot, step, f"cold answer: {answer}")
    assert "Please enter your PIN" in answer["ncco"]
    assert step["after"]["service"] == "active", vm.explain(boot, step, "totpd did not start")
    assert step["warm"]["answer"]["status"] == 200
    show(
        capsys,
        f"socket activation: connection to answer {answer['connection_to_answer_s']:.2f} s"
        f" cold, {step['warm']['answer']['connection_to_answer_s']:.3f} s warm",
    )


def test_a_whole_call_through_caddy_and_tls_reads_the_right_code(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("call_through_tls")
    call = step["call"]
    assert call["url"].startswith("https://"), call["url"]
    code = assert_code_read(vm, boot, step, call)
    admin = step["account_code"]
    assert admin["rc"] == 0, vm.explain(boot, step, f"account code failed: {admin['stderr']}")
    shown = admin["stdout"].split()[0]
    assert shown in codes_during(vm.params["seed"], admin)
    # The same period's code, unless a period ended between the call and the command.
    period = int(call["ended"]["realtime_s"] // 30)
    if period == int(admin["started"]["realtime_s"] // 30) and "about to change" not in " ".join(
        heard(call)
    ):
        assert code == shown, "the caller heard another code than `account code` shows"


def test_the_journal_has_the_audit_line_and_no_secret(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("call_through_tls")
    call_uuid = re.search(r"\[call (\S+) from", transcript(step["call"]))
    assert call_uuid, transcript(step["call"])
    audit = [e for e in boot.journal if e.get("CALL_UUID") == call_uuid[1]]
    read = [e for e in audit if e.get("OUTCOME") == "code_read"]
    assert len(read) == 1, vm.explain(boot, step, f"no single audit line for {call_uuid[1]}")
    assert read[0]["_SYSTEMD_UNIT"] == "totpd.service"
    assert {k: read[0].get(k) for k in ("USER", "ACCOUNT", "CALLER")} == {
        "USER": "alice",
        "ACCOUNT": "github",
        "CALLER": OWNER,
    }
    codes = {code for b in vm.boots.values() for code in _codes_of_boot(b)}
    assert codes, "no code was read in any boot"
    for each in vm.boots.values():
        for entry in each.journal:
            leaks = _leaks(entry, vm.secrets, codes)
            assert not leaks, redact(
                f"{', '.join(leaks)} in the journal of boot {each.phase}:\n{render([entry])}",
                [*vm.secrets.values(), *codes],
            )


def _codes_of_boot(boot: Boot) -> list[str]:
    """Every code any call of a boot heard, and every code `account code` printed."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "lines" in value:
                found.extend(codes_heard(value))
            if value.get("command", [None])[1:3] == ["account", "code"] and value.get("rc") == 0:
                found.append(value["stdout"].split()[0])
            for item in value.values():
                walk(item)

    walk(boot.results)
    return found


# Fields journald fills in itself with numbers (times, ids, cursors): a six-digit code could
# appear in them by chance. Secrets are searched everywhere, codes everywhere else.
_NUMERIC_FIELDS = re.compile(r"__.*|.*_TIMESTAMP|.*_ID|_PID|_UID|_GID|SYSLOG_PID|CODE_LINE|ERRNO")


def _leaks(entry: dict[str, Any], hidden: dict[str, str], codes: set[str]) -> list[str]:
    """Which secrets (by name) or codes one journal entry contains, in any field."""
    found = []
    for field, value in entry.items():
        text = value if isinstance(value, str) else json.dumps(value)
        lowered = text.lower()
        for name, secret in hidden.items():
            if secret.lower() in lowered:
                found.append(f"{name} in {field}")
        if _NUMERIC_FIELDS.fullmatch(field):
            continue
        for code in codes:
            spoken = " ".join(code)
            if re.search(rf"(?<![\d.]){code}(?!\d)", text) or spoken in text:
                found.append(f"a code in {field}")
    return found


def test_the_unit_scores_the_same_online_as_offline_and_argon2_runs_under_its_filter(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("security")
    scores = {}
    for name in ("online", "offline"):
        found = _EXPOSURE.search(step[name]["stdout"])
        assert found, vm.explain(boot, step, f"no {name} score:\n{step[name]}")
        scores[name] = float(found[1])
    assert scores["online"] == scores["offline"], scores
    assert scores["online"] <= MAX_EXPOSURE
    # The daemon that ran check 2's whole call (Argon2 included) under the unit's filter.
    assert step["proc_status"].get("Seccomp") == "2", step["proc_status"]
    assert step["proc_status"].get("NoNewPrivs") == "1", step["proc_status"]
    assert 10 in step["thread_niceness"], vm.explain(
        boot, step, f"no thread at niceness 10 after a PIN check: {step['thread_niceness']}"
    )
    show(capsys, f"systemd-analyze security totpd.service: {scores['online']} online and offline")


def test_the_watchdog_kills_and_restarts_a_stopped_daemon(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("watchdog")
    assert "error" not in step, vm.explain(boot, step, "the watchdog step failed")
    watchdog_s = float(step["watchdog_usec"].removesuffix("s"))
    stopped_s = step["stopped"]["monotonic_s"]
    timeouts = [
        int(e["__MONOTONIC_TIMESTAMP"]) / 1e6 - stopped_s
        for e in journal_during(boot, step)
        if "Watchdog timeout" in message(e) and e.get("UNIT") == "totpd.service"
    ]
    assert len(timeouts) == 1, vm.explain(boot, step, "no single watchdog timeout in the journal")
    assert 0 < timeouts[0] <= watchdog_s + WATCHDOG_MARGIN_S, vm.explain(
        boot, step, f"the watchdog fired {timeouts[0]:.1f} s after SIGSTOP"
    )
    assert step["pid_after"] not in (0, step["pid_before"])
    assert int(step["restarts"]) >= 1
    assert_code_read(vm, boot, step, step["call"])
    show(
        capsys,
        f"watchdog (WatchdogSec={watchdog_s:.0f}s): killed {timeouts[0]:.1f} s after SIGSTOP,"
        f" serving again after {step['active_again_s']:.1f} s",
    )


def test_reload_rereads_the_config_and_a_call_in_flight_finishes(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("reload")
    assert step["reload"], vm.explain(boot, step, "the call never asked for the PIN")
    assert step["reload"]["rc"] == 0, vm.explain(boot, step, f"reload failed: {step['reload']}")
    assert step["pid_after"] == step["pid_before"], "reload restarted the daemon"
    # The call was answered before the reload, and read its code after it.
    assert_code_read(vm, boot, step, step["in_flight"])
    before = boot.step("call_through_tls")["call"]
    assert sum(line.count("Again:") for line in heard(before)) == 1  # code_repeats = 2
    after = " ".join(heard(step["after"]))
    assert after.count("Again:") == 2, vm.explain(
        boot, step, f"call.code_repeats = 3 was not picked up by the reload:\n{after}"
    )
    reloaded = [m for m in map(message, journal_during(boot, step)) if m.startswith("reloaded ")]
    assert any("call.code_repeats" in m for m in reloaded), vm.explain(
        boot, step, "no journal line names what the reload changed"
    )


def test_lockout_survives_a_restart_and_a_reboot(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("lockout_restart")
    refusals = " ".join(heard(step["wrong"])).count("not accepted")
    assert refusals == 3, vm.explain(boot, step, transcript(step["wrong"]))
    status = step["status_after"]
    assert _locked(status["stdout"], ATTACKER), vm.explain(boot, step, f"after restart: {status}")
    assert step["pid_after"] not in (0, step["pid_before"]), "the daemon did not restart"
    assert_no_code_read(vm, boot, step, step["locked_caller_right_pin"])
    assert_code_read(vm, boot, step, step["owner"])

    rebooted = vm.boot("original-tpm")
    after = rebooted.step("after_reboot")
    assert _locked(after["status"]["stdout"], ATTACKER), vm.explain(
        rebooted, after, str(after["status"])
    )
    assert_no_code_read(vm, rebooted, after, after["locked_caller_right_pin"])


def _texts(value: Any) -> Iterator[str]:
    """Every output a step recorded: commands' stdout and stderr, the lines of calls."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("stdout", "stderr") and isinstance(item, str):
                yield item
            elif key == "lines":
                yield from (str(line) for _, line in item)
            else:
                yield from _texts(item)


def _locked(status: str, caller: str) -> bool:
    """Whether `totpd status` output says the caller is locked out."""
    return any(caller in line and "locked" in line for line in status.splitlines())


def test_a_foreign_tpm_unseals_nothing(vm: VmRun, capsys: pytest.CaptureFixture[str]) -> None:
    boot = vm.boot("foreign-tpm")
    step = boot.step("foreign_tpm")
    assert step["service"] == "failed", vm.explain(boot, step, f"totpd is {step['service']}")
    assert step["exec_main_status"] == "243", vm.explain(boot, step, "not 243/CREDENTIALS")
    assert step["decrypt"]["rc"] != 0, "the sealed vault key decrypted with a foreign TPM"
    assert step["decrypt_signature_secret"]["rc"] != 0, "the signature secret decrypted"
    assert_no_code_read(vm, boot, step, step["call"])
    for name in ("account_code_admin", "account_code_root"):
        assert step[name]["rc"] != 0, vm.explain(boot, step, f"{name} worked: {step[name]}")
    outputs = "\n".join(_texts(step))
    assert vm.params["seed"] not in outputs
    printed = [
        code
        for code in codes_during(vm.params["seed"], step)
        if re.search(rf"(?<![\d.]){code}(?!\d)", outputs)
    ]
    assert not printed, "a current code was printed"
    # systemd says why, in a line that names the credential; totpd itself never ran (no line
    # from its loggers), so it has nothing to add.
    unit_lines = [
        e for e in boot.journal if "totpd.service" in (e.get("UNIT"), e.get("_SYSTEMD_UNIT"))
    ]
    why = [e for e in unit_lines if "credential" in message(e).lower()]
    assert why, vm.explain(boot, step, "no journal line names the credential")
    from_totpd = [e for e in unit_lines if "LOGGER" in e]
    assert not from_totpd, vm.explain(boot, step, f"totpd ran:\n{render(from_totpd)}")
    show(capsys, f"foreign TPM: {render(why[:1])}")


def test_the_original_tpm_unseals_again_after_the_reboot(vm: VmRun) -> None:
    boot = vm.boot("original-tpm")
    step = boot.step("after_reboot")
    assert step["service"] == "active", vm.explain(boot, step, f"totpd is {step['service']}")
    assert_code_read(vm, boot, step, step["owner"])
    assert step["account_code"]["rc"] == 0
    assert step["account_code"]["stdout"].split()[0] in codes_during(
        vm.params["seed"], step["account_code"]
    )


def test_a_wrong_local_clock_reads_no_code(vm: VmRun) -> None:
    boot = vm.boot("first-boot")
    step = boot.step("clock")
    assert "time-sync.target" in step["ordered_after"], step["ordered_after"]
    refusals = metric(step["metrics_before"], "totpd_clock_refusals_total") or 0.0
    for name in ("behind", "ahead"):
        wrong = step[name]
        said = " ".join(heard(wrong["call"]))
        assert "clock" in said.lower(), vm.explain(
            boot, step, f"clock {name} by {abs(wrong['offset_s'])} s:\n{transcript(wrong['call'])}"
        )
        assert_no_code_read(vm, boot, step, wrong["call"])
        counted = metric(wrong["metrics"], "totpd_clock_refusals_total")
        assert counted is not None, f"no totpd_clock_refusals_total after the clock went {name}"
        assert counted > refusals, f"totpd_clock_refusals_total stayed {counted} ({name})"
        refusals = counted
        skew = metric(wrong["metrics"], "totpd_clock_skew_seconds")
        assert skew is not None, f"no totpd_clock_skew_seconds after the clock went {name}"
        assert abs(skew - wrong["offset_s"]) < 10, f"totpd_clock_skew_seconds {skew} ({name})"
    untrusted = [e for e in journal_during(boot, step) if e.get("OUTCOME") == "clock_untrusted"]
    assert untrusted, vm.explain(boot, step, "no journal line with OUTCOME=clock_untrusted")
    # The kernel says unsynchronised (no NTP in the guest), and calls were answered anyway.
    assert_code_read(vm, boot, step, boot.step("lockout_restart")["owner"])


def test_the_sync_flag_is_reported_as_the_unit_lets_the_daemon_read_it(vm: VmRun) -> None:
    """Under ProtectClock=yes adjtimex(2) is refused, even to read: the daemon reports
    systemd-timesyncd's flag file instead. The guest has no NTP client (no file: 0) until
    the test writes the file as timesyncd would on its first synchronization (1)."""
    boot = vm.boot("first-boot")
    step = boot.step("clock")
    assert step["timesyncd_flag_before"] is False
    assert metric(step["metrics_before"], "totpd_clock_synchronized") == 0.0
    assert step["restart"]["is_active"] == "active", vm.explain(boot, step, str(step["restart"]))
    synchronized = metric(step["metrics_synchronized"], "totpd_clock_synchronized")
    assert synchronized == 1.0, vm.explain(boot, step, f"totpd_clock_synchronized {synchronized}")
    said = [
        message(e)
        for e in boot.journal
        if e.get("_SYSTEMD_UNIT") == "totpd.service" and "synchronized, says" in message(e)
    ]
    assert any("is not synchronized, says systemd-timesyncd" in m for m in said), said
    assert any("is synchronized, says systemd-timesyncd" in m for m in said), said


def test_an_upgrade_keeps_state_credentials_and_config(
    vm: VmRun, capsys: pytest.CaptureFixture[str]
) -> None:
    boot = vm.boot("original-tpm")
    step = boot.step("upgrade")
    install = step["install"]
    output = lines_of(install)
    assert install.get("rc") == 0, vm.explain(boot, step, f"apt install failed:\n{output}")
    assert install["package_version"].endswith("+upgrade"), install["package_version"]
    assert install["version"].endswith(", upgrade)"), install["version"]
    backup = step["backup"]
    assert backup["rc"] == 0, vm.explain(boot, step, f"secrets backup failed: {backup}")
    assert step["backup_file"] == {
        "mode": "0o600",
        "owner": "totpd",
        "uid_is_service_user": True,
        "holds_the_seed_in_clear": False,
    }
    before, after = step["before"], step["after"]
    kept = [p for p in before if p.endswith((".cred", ".toml", "vault.bin", "directory.json"))]
    assert any(p.endswith("vault.bin") for p in kept), sorted(before)
    assert "/etc/totpd/totpd.toml" in kept
    changed = [p for p in kept if before[p] != after.get(p)]
    assert not changed, vm.explain(boot, step, f"the upgrade changed {changed}")
    # The newer package's config differs from the one the admin edited: dpkg kept the
    # admin's and left the package's beside it.
    assert step["config_from_the_package"], "no /etc/totpd/totpd.toml.dpkg-dist"
    assert step["status_after"]["stdout"] == step["status_before"]["stdout"]
    assert step["pid_after"] not in (0, step["pid_before"]), "the service was not restarted"
    assert step["socket"] == "active"
    assert_code_read(vm, boot, step, step["call"])
    assert 'totpd_build_info{version="' in step["metrics"]
    assert '+upgrade"}' in step["metrics"], vm.explain(boot, step, "the old build still answers")
    show(capsys, f"upgrade: apt install of the newer package in {install['elapsed_s']:.0f} s")
