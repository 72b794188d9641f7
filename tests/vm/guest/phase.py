#!/usr/bin/env python3
"""One boot of `make test-vm`, inside the guest: install totpd's Debian package as the guide
says, then exercise it under its real unit, and write down everything that happened.

It runs at boot from the host's 9p share (/mnt/host) with Debian's python3 and the standard
library only: totpd is not installed yet when it starts. It judges nothing. Command outputs,
timings and the journal go to /mnt/host/out/<phase>.json (rewritten after every step, so a
crash loses nothing), and the host's tests (tests/vm/test_vm.py) decide what passes. The host
writes /mnt/host/params.json: which phase, and the test's secrets (PIN, seed, signature
secret), which reach totpd only through pipes, as the deployment guide asks of a sysadmin.
"""

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SHARE = Path("/mnt/host")
PARAMS: dict[str, Any] = json.loads((SHARE / "params.json").read_text())
PHASE: str = PARAMS["phase"]
OUT = SHARE / "out"
RESULTS: dict[str, Any] = {"phase": PHASE}

CONFIG = Path("/etc/totpd/totpd.toml")
CREDSTORE = Path("/etc/credstore.encrypted")
STATE = Path("/var/lib/totpd")
TOTPD = "/usr/bin/totpd"  # the package's command (its config unless --config names another)
VENV_PYTHON = "/opt/totpd/venv/bin/python"
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
# `totpd secrets init` run on a config of its own (the installation keeps its key): which key
# does its default, --with-key=auto, seal to? A foreign TPM must refuse what it sealed.
SCRATCH = Path("/root/secrets-init")
HOST_NAME: str = PARAMS["host_name"]
TLS_URL = f"https://{HOST_NAME}"
SOCKET_URL = "http://127.0.0.1:8080"
METRICS_URL = "http://127.0.0.1:9464/metrics"
CADDY_ROOT_CA = Path("/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt")
# The Vonage side of the test: the emulator with its own config, knowing the signature secret
# (as Vonage does) and nothing else of the installation.
VONAGE_SIDE = Path("/root/vonage-side")
OWNER, ATTACKER = PARAMS["callers"]["owner"], PARAMS["callers"]["attacker"]


def log(text: str) -> None:
    """A progress line on the second serial port (the host's progress log)."""
    print(f"[{time.monotonic():8.1f}] {text}", flush=True)


def save() -> None:
    """Write the results so far (the host reads the last complete version)."""
    path = OUT / f"{PHASE}.json"
    path.with_suffix(".tmp").write_text(json.dumps(RESULTS, indent=1))
    path.with_suffix(".tmp").replace(path)


def now() -> dict[str, float]:
    """Both clocks: journal entries of this boot are matched by the monotonic one."""
    return {"monotonic_s": time.clock_gettime(time.CLOCK_MONOTONIC), "realtime_s": time.time()}


@contextmanager
def step(name: str) -> Iterator[dict[str, Any]]:
    """Record one step: its observations, its time window, and any exception it raised."""
    log(f"step {name}")
    record: dict[str, Any] = {"started": now()}
    RESULTS[name] = record
    try:
        yield record
    except Exception:
        record["error"] = traceback.format_exc()
        log(f"step {name} raised:\n{record['error']}")
    finally:
        record["ended"] = now()
        save()


def run(
    *command: str, stdin: str = "", timeout_s: float = 300, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a command; its exit status, output and duration (never raises on failure)."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **(env or {})},
            check=False,
        )
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = -1, _text(exc.stdout), _text(exc.stderr) + f"\n(timed out: {timeout_s} s)"
    return {
        "command": list(command),
        "rc": rc,
        "stdout": out,
        "stderr": err,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def sh(command: str) -> str:
    """The stdout of a shell command that must succeed (setup steps, not observations)."""
    done = run("/bin/sh", "-c", command)
    if done["rc"] != 0:
        raise RuntimeError(f"{command!r} failed ({done['rc']}): {done['stderr']}")
    return str(done["stdout"])


def wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    """Poll `check` until true; the seconds it took. RuntimeError after timeout_s."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
    return round(time.monotonic() - started, 3)


def unit_property(unit: str, name: str) -> str:
    """One property of a unit, as `systemctl show` prints it."""
    return str(run("systemctl", "show", "--value", "-p", name, unit)["stdout"]).strip()


def is_active(unit: str) -> str:
    """`systemctl is-active UNIT`'s answer (active, inactive, failed, activating, ...)."""
    return str(run("systemctl", "is-active", unit)["stdout"]).strip()


# --- the Vonage side --------------------------------------------------------------------


def call(
    *presses: str,
    caller: str = OWNER,
    url: str = TLS_URL,
    clock_offset_s: int = 0,
    admin: bool = False,
    on_line: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One emulated call, as Vonage would place it; every line heard, with its time.

    The keypad presses go through the emulator's standard input (never its command line).
    `clock_offset_s` runs the emulator on a clock that far from the guest's (libfaketime):
    Vonage's clock stays right while the guest's is set wrong. `admin` places the call with
    `totpd-admin call`, as the deployment guide shows a sysadmin.
    """
    if admin:
        command = ["totpd-admin", "call", "--url", url, "--from", caller]
        env = dict(os.environ)
    else:
        command = [TOTPD, "--config", str(VONAGE_SIDE / "vonage.toml"), "call", "--url", url]
        command += ["--from", caller]
        env = {**os.environ, "TOTPD_VONAGE_SIGNATURE_SECRET": PARAMS["signature_secret"]}
    if clock_offset_s:  # the emulator's timeouts keep the real monotonic clock
        env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        command = ["faketime", "-f", f"{clock_offset_s:+d}s", *command]
    begun = now()
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdin
    assert process.stdout
    assert process.stderr
    process.stdin.write("".join(f"{p}\n" for p in presses))
    process.stdin.close()
    lines = []
    for line in process.stdout:
        lines.append([round(time.monotonic() - started, 3), line.rstrip("\n")])
        if on_line:
            on_line(line)
    stderr = process.stderr.read()
    rc = process.wait(timeout=60)
    return {
        "caller": caller,
        "url": url,
        "rc": rc,
        "lines": lines,
        "stderr": stderr,
        "started": begun,
        "ended": now(),
    }


def signed_answer(url: str) -> dict[str, Any]:
    """One signed answer webhook, timed from connect() to the whole answer (signed_answer.py,
    run with totpd's installed virtualenv)."""
    done = run(
        VENV_PYTHON,
        str(SHARE / "guest" / "signed_answer.py"),
        url,
        OWNER,
        PARAMS["application_id"],
        env={"SECRET": PARAMS["signature_secret"]},
    )
    if done["rc"] == 0:
        done["answer"] = json.loads(done["stdout"])
    return done


def metrics() -> str:
    """The daemon's /metrics text (through totpd-metrics.socket)."""
    with urllib.request.urlopen(METRICS_URL, timeout=60) as response:
        return str(response.read().decode())


def totpd_metrics() -> str:
    """Only the totpd_* lines of /metrics (the process collectors are noise here)."""
    try:
        text = metrics()
    except OSError as exc:
        return f"# unreachable: {exc}"
    return "\n".join(line for line in text.splitlines() if line.startswith("totpd_"))


# --- the guest -------------------------------------------------------------------------


def kernel_clock_synchronized() -> bool:
    """The kernel's own view (adjtimex): False while STA_UNSYNC is set (TIME_ERROR)."""
    libc = ctypes.CDLL(None, use_errno=True)
    timex = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
    return bool(libc.adjtimex(timex) != 5)  # 5 = TIME_ERROR


def set_clock_off(offset_s: float) -> None:
    """Move the guest's wall clock by offset_s (the monotonic clock is untouched)."""
    time.clock_settime(time.CLOCK_REALTIME, time.time() + offset_s)


def main_pid() -> int:
    """totpd.service's main process, 0 when it has none."""
    return int(unit_property("totpd.service", "MainPID") or 0)


def thread_niceness(pid: int) -> list[int]:
    """The nice value of every thread of a process (field 19 of /proc/PID/task/TID/stat)."""
    values = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        fields = stat.read_text().rsplit(")", 1)[1].split()
        values.append(int(fields[16]))
    return values


def fingerprint() -> dict[str, Any]:
    """What an upgrade must keep: credentials, config and state, by content hash."""
    files = [*sorted(CREDSTORE.glob("*.cred")), CONFIG, *sorted(STATE.rglob("*"))]
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in files
        if path.is_file() and not path.name.endswith(".lock")
    }


def restart_totpd() -> dict[str, Any]:
    """`systemctl restart totpd` (it returns once the new daemon is ready), and its state."""
    done = run("systemctl", "restart", "totpd.service", timeout_s=180)
    done["is_active"] = is_active("totpd.service")
    return done


# --- the steps -------------------------------------------------------------------------


def record_boot(record: dict[str, Any]) -> None:
    """What kind of machine this is: PID 1, the TPM, systemd's boot timing."""
    wait_until(
        "the boot to finish",
        lambda: run("systemctl", "is-system-running")["stdout"].strip() in ("running", "degraded"),
        timeout_s=180,
    )
    record["pid1"] = Path("/proc/1/comm").read_text().strip()
    record["systemd"] = run("systemctl", "--version")["stdout"].splitlines()[0]
    record["has_tpm2"] = run("systemd-creds", "has-tpm2")
    record["startup"] = run("systemd-analyze")["stdout"].strip()
    record["system_state"] = run("systemctl", "is-system-running")["stdout"].strip()
    record["failed_units"] = run("systemctl", "--failed", "--no-legend")["stdout"]
    record["blame"] = run("systemd-analyze", "blame", "--no-pager")["stdout"].splitlines()[:12]
    record["uptime_s"] = float(Path("/proc/uptime").read_text().split()[0])
    record["kernel_clock_synchronized"] = kernel_clock_synchronized()


def install_package(deb: Path, record: dict[str, Any]) -> None:
    """Install totpd as the deployment guide says: `apt install ./totpd_<version>_amd64.deb`.

    Offline: the image holds everything the package depends on. The package's own next step
    (sealing the credentials) is a step of its own. This function is the only place that
    knows how totpd is installed.
    """
    local = Path("/root") / deb.name
    shutil.copyfile(deb, local)
    command = ["apt", "install", "-y", "-o", "Dpkg::Options::=--force-confold", f"./{local.name}"]
    record.update(stream(command, cwd=local.parent, env={"DEBIAN_FRONTEND": "noninteractive"}))
    record["package_version"] = run("dpkg-query", "-W", "-f=${Version}", "totpd")["stdout"]
    record["version"] = run(TOTPD, "--version")["stdout"].strip()
    record["is_enabled"] = run("systemctl", "is-enabled", "totpd.service")["stdout"].strip()
    record["is_active"] = is_active("totpd.service")


def seal_credentials(record: dict[str, Any]) -> None:
    """The package's next step: `totpd-seal-credentials`, the signature secret on its standard
    input (a pipe, as the guide allows), the vault key sealed to the guest's TPM2."""
    record.update(stream(["totpd-seal-credentials"], stdin=PARAMS["signature_secret"] + "\n"))
    record["credentials"] = sorted(path.name for path in CREDSTORE.glob("*.cred"))


def stream(
    command: list[str], stdin: str = "", cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a long command; every output line with its time (what each part costs), on the
    progress log as it comes."""
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    assert process.stdin
    assert process.stdout
    process.stdin.write(stdin)
    process.stdin.close()
    lines = []
    for line in process.stdout:
        lines.append([round(time.monotonic() - started, 3), line.rstrip("\n")])
        log(f"{Path(command[0]).name}: {line.rstrip()}")
    return {
        "command": command,
        "rc": process.wait(),
        "lines": lines,
        "elapsed_s": round(time.monotonic() - started, 3),
    }


def configure(record: dict[str, Any]) -> None:
    """The guide's steps after the package: the config, the start, Caddy, socket activation,
    an account and a user."""
    # The config: public_url and the application id, then check it and start.
    text = CONFIG.read_text()
    text = text.replace('public_url = "https://totpd.example.org"', f'public_url = "{TLS_URL}"')
    text = text.replace(
        '# application_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"',
        f'application_id = "{PARAMS["application_id"]}"',
    )
    CONFIG.write_text(text)
    record["check_config"] = run("totpd-admin", "check-config", timeout_s=180)
    record["start"] = run("systemctl", "start", "totpd.service", timeout_s=180)
    record["is_active"] = is_active("totpd.service")
    # Caddy, as the guide's TLS section has it. No public DNS and no ACME here: the name is in
    # /etc/hosts and Caddy signs with its own local CA (local_certs), which the guest trusts.
    with Path("/etc/hosts").open("a") as hosts:
        hosts.write(f"127.0.0.1 {HOST_NAME}\n")
    caddyfile = Path("/opt/totpd/deploy/Caddyfile").read_text()  # the package's copy
    caddyfile = caddyfile.replace("totpd.example.org", HOST_NAME)
    caddyfile = caddyfile.replace("\n{\n", "\n{\n\tlocal_certs\n", 1)
    Path("/etc/caddy/Caddyfile").write_text(caddyfile)
    record["caddy_reload"] = run("systemctl", "reload-or-restart", "caddy.service")
    record["caddy_ca_s"] = wait_until("Caddy's local CA", CADDY_ROOT_CA.exists, timeout_s=60)
    # Trusted by appending it to the system bundle (update-ca-certificates would rehash every
    # certificate: a minute under emulation, for the same effect on OpenSSL's clients).
    with Path("/etc/ssl/certs/ca-certificates.crt").open("a") as bundle:
        bundle.write(CADDY_ROOT_CA.read_text())
    # Socket activation: systemd holds the ports. The service must not hold them
    # itself when the sockets start, so it is stopped first.
    record["sockets"] = run(
        "/bin/sh",
        "-c",
        "systemctl stop totpd.service && "
        "systemctl enable --now totpd.socket totpd-metrics.socket && "
        "systemctl start totpd.service",
    )
    # Accounts and users: the otpauth URI and the PIN through pipes.
    uri = f"otpauth://totp/GitHub:alice?secret={PARAMS['seed']}&issuer=GitHub"
    record["account_add"] = run(
        "totpd-admin", "account", "add", "github", "--label", "GitHub", stdin=uri + "\n"
    )
    record["user_add"] = run(
        "totpd-admin", "user", "add", "alice", "--accounts", "github", stdin=PARAMS["pin"] + "\n"
    )
    # The Vonage side: its own small config; the signature secret only in its environment.
    VONAGE_SIDE.mkdir(mode=0o700, exist_ok=True)
    (VONAGE_SIDE / "vonage.toml").write_text(
        f'[server]\npublic_url = "{TLS_URL}"\n'
        f'[vonage]\napplication_id = "{PARAMS["application_id"]}"\n'
        f'[paths]\nstate_dir = "{VONAGE_SIDE / "state"}"\n'
        '[secrets]\nbackend = "keyring.backends.null.Keyring"\n'
    )


def check_secrets_init(record: dict[str, Any]) -> None:
    """`totpd secrets init` with its default key choice, on a config of its own: the guest's
    TPM2 is one the firmware did not announce (no UEFI), which systemd-creds' own "auto"
    leaves out. The foreign TPM of the next boot must refuse what it sealed."""
    state = SCRATCH / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    SCRATCH.chmod(0o700)
    config = SCRATCH / "totpd.toml"
    config.write_text(
        f'[paths]\nstate_dir = "{state}"\n'
        f'[secrets]\nbackend = "vault"\nsealed_key_file = "{SCRATCH / "vault-key.cred"}"\n'
    )
    record["init"] = run(TOTPD, "--config", str(config), "secrets", "init", timeout_s=180)
    record["decrypt"] = decrypt(SCRATCH / "vault-key.cred", "totpd-vault-key")


def decrypt(path: Path, name: str) -> dict[str, Any]:
    """`systemd-creds decrypt` of a sealed file, its plaintext thrown away."""
    return run("systemd-creds", "decrypt", f"--name={name}", str(path), "/dev/null")


def check_socket_activation(record: dict[str, Any]) -> None:
    """Check 1: with only the sockets listening, the first webhook starts the daemon."""
    record["stop"] = run("systemctl", "stop", "totpd.service")
    record["before"] = {"service": is_active("totpd.service"), "socket": is_active("totpd.socket")}
    record["cold"] = signed_answer(SOCKET_URL)
    record["after"] = {"service": is_active("totpd.service"), "socket": is_active("totpd.socket")}
    record["warm"] = signed_answer(SOCKET_URL)


def check_call_through_tls(record: dict[str, Any]) -> None:
    """Check 2: a whole call through Caddy with TLS, placed by `totpd-admin call`."""
    record["call"] = call(PARAMS["pin"], admin=True)
    record["account_code"] = {"started": now(), **run("totpd-admin", "account", "code", "github")}


def check_security(record: dict[str, Any]) -> None:
    """Check 4: the exposure score of the running unit and of the unit file alone; the
    Argon2 threads of the running daemon at their niceness after the PIN check of check 2."""
    record["online"] = run("systemd-analyze", "security", "--no-pager", "totpd.service")
    record["unit_file"] = unit_property("totpd.service", "FragmentPath")  # the package's
    record["offline"] = run(
        "systemd-analyze", "security", "--offline=true", "--no-pager", record["unit_file"]
    )
    pid = main_pid()
    record["main_pid"] = pid
    record["thread_niceness"] = thread_niceness(pid) if pid else []
    status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    record["proc_status"] = {
        key: value.strip()
        for key, _, value in (line.partition(":") for line in status.splitlines())
        if key in ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff", "Uid")
    }


def check_reload(record: dict[str, Any]) -> None:
    """Check 6: `systemctl reload` re-reads the config (call.code_repeats), and a call that
    was answered before the reload finishes after it. (Check 2's call is the one before.)"""
    record["pid_before"] = main_pid()
    text = CONFIG.read_text()
    CONFIG.write_text(text + "\n[call]\ncode_repeats = 3\n")
    reloads: list[dict[str, Any]] = []

    def reload_when_asked_for_the_pin(line: str) -> None:
        if "PIN" in line and not reloads:
            reloads.append({**run("systemctl", "reload", "totpd.service"), **now()})

    record["in_flight"] = call(PARAMS["pin"], on_line=reload_when_asked_for_the_pin)
    record["reload"] = reloads[0] if reloads else None
    record["after"] = call(PARAMS["pin"])
    record["pid_after"] = main_pid()


def check_clock(record: dict[str, Any]) -> None:
    """Check 9: with the guest's clock wrong (behind, then ahead) and Vonage's right, totpd
    reads no code, says why, counts it and exports the skew."""
    record["kernel_clock_synchronized"] = kernel_clock_synchronized()
    record["ordered_after"] = unit_property("totpd.service", "After").split()
    record["metrics_before"] = totpd_metrics()
    for name, offset_s in (("behind", -30), ("ahead", 3600)):
        set_clock_off(offset_s)
        try:
            record[name] = {
                "offset_s": offset_s,
                "call": call(PARAMS["pin"], clock_offset_s=-offset_s),
                "metrics": totpd_metrics(),
            }
        finally:
            set_clock_off(-offset_s)
        save()
    # The sync flag, as the daemon reads it under ProtectClock=yes (adjtimex refused): the
    # guest has no NTP client, so no flag file, until one "synchronizes" and totpd restarts.
    record["timesyncd_flag_before"] = TIMESYNCD_FLAG.exists()
    TIMESYNCD_FLAG.parent.mkdir(parents=True, exist_ok=True)
    TIMESYNCD_FLAG.touch()
    record["restart"] = restart_totpd()
    record["metrics_synchronized"] = totpd_metrics()


def check_lockout_restart(record: dict[str, Any]) -> None:
    """Check 7, first half: three wrong PINs lock the caller out; the lockout survives
    `systemctl restart totpd` (a restart cannot create one, so `status` after it suffices)."""
    wrong = PARAMS["wrong_pin"]
    record["wrong"] = call(wrong, wrong, wrong, caller=ATTACKER)
    record["pid_before"] = main_pid()
    record["restart"] = restart_totpd()
    record["pid_after"] = main_pid()
    record["status_after"] = run("totpd-admin", "status")
    record["locked_caller_right_pin"] = call(PARAMS["pin"], caller=ATTACKER)
    record["owner"] = call(PARAMS["pin"])


def check_watchdog(record: dict[str, Any]) -> None:
    """Check 5: a stopped event loop (SIGSTOP) is killed by the watchdog and restarted."""
    record["watchdog_usec"] = unit_property("totpd.service", "WatchdogUSec")
    record["restart_usec"] = unit_property("totpd.service", "RestartUSec")
    pid = main_pid()
    record["pid_before"] = pid
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    record["stopped"] = now()
    record["gone_s"] = wait_until("the stopped process to go", lambda: main_pid() != pid, 180)
    wait_until(
        "totpd to be active again",
        lambda: main_pid() not in (0, pid) and is_active("totpd.service") == "active",
        timeout_s=180,
    )
    record["active_again_s"] = round(time.monotonic() - stopped, 3)
    record["pid_after"] = main_pid()
    record["restarts"] = unit_property("totpd.service", "NRestarts")
    record["call"] = call(PARAMS["pin"])


def check_after_reboot(record: dict[str, Any]) -> None:
    """Check 7, second half, and check 8 with the original TPM: after a reboot the unit
    starts, the lockout is still there, and calls work."""
    record["service"] = is_active("totpd.service")
    record["status"] = run("totpd-admin", "status")
    record["locked_caller_right_pin"] = call(PARAMS["pin"], caller=ATTACKER)
    record["owner"] = call(PARAMS["pin"])
    record["account_code"] = {"started": now(), **run("totpd-admin", "account", "code", "github")}
    record["secrets_init_decrypt"] = decrypt(SCRATCH / "vault-key.cred", "totpd-vault-key")


def check_foreign_tpm(record: dict[str, Any]) -> None:
    """Check 8: the same disk with a fresh TPM (as if copied to another machine). The vault
    key must not unseal, the unit fails, and no seed can be read by any route."""
    wait_until(
        "totpd.service to give up or settle",
        lambda: is_active("totpd.service") in ("failed", "inactive", "active"),
        timeout_s=120,
    )
    record["service"] = is_active("totpd.service")
    record["result"] = unit_property("totpd.service", "Result")
    record["exec_main_status"] = unit_property("totpd.service", "ExecMainStatus")
    record["call"] = call(PARAMS["pin"])
    record["account_code_admin"] = run("totpd-admin", "account", "code", "github")
    record["account_code_root"] = run(TOTPD, "--config", str(CONFIG), "account", "code", "github")
    record["decrypt"] = decrypt(CREDSTORE / "totpd-vault-key.cred", "totpd-vault-key")
    record["decrypt_signature_secret"] = decrypt(
        CREDSTORE / "vonage-signature-secret.cred", "vonage-signature-secret"
    )
    record["secrets_init_decrypt"] = decrypt(SCRATCH / "vault-key.cred", "totpd-vault-key")
    record["service_final"] = is_active("totpd.service")


def check_upgrade(record: dict[str, Any]) -> None:
    """Check 10: `apt install` of a newer build of the package; state, credentials and config
    survive, the service restarts on the new files, and calls work."""
    record["before"] = fingerprint()
    record["status_before"] = run("totpd-admin", "status")
    record["pid_before"] = main_pid()
    # The guide's upgrade: a backup first (the passphrase on standard input), then the package.
    backup = Path("/var/backups/totpd/before-upgrade.backup")
    record["backup"] = run(
        "totpd-admin", "secrets", "backup", str(backup), stdin=PARAMS["backup_passphrase"] + "\n"
    )
    if backup.exists():
        written = backup.stat()
        record["backup_file"] = {
            "mode": oct(written.st_mode & 0o777),
            "owner": unit_property("totpd.service", "User"),
            "uid_is_service_user": written.st_uid == STATE.stat().st_uid,
            "holds_the_seed_in_clear": PARAMS["seed"].encode() in backup.read_bytes(),
        }
    record["install"] = {}
    install_package(SHARE / PARAMS["newer_package"], record["install"])
    record["after"] = fingerprint()
    record["config_from_the_package"] = Path(f"{CONFIG}.dpkg-dist").exists()
    record["pid_after"] = main_pid()
    record["status_after"] = run("totpd-admin", "status")
    record["socket"] = is_active("totpd.socket")
    record["call"] = call(PARAMS["pin"])
    record["metrics"] = totpd_metrics()


def export_journal() -> None:
    """This boot's whole journal, every field, for the host to search and to quote."""
    done = run("journalctl", "-b", "-o", "json", "--all", "--no-pager", timeout_s=300)
    (OUT / f"{PHASE}-journal.json").write_text(done["stdout"])


def first_boot() -> None:
    """Install, configure, then checks 1-7 (first half) and 9 under the real unit."""
    with step("install") as record:
        install_package(SHARE / PARAMS["package"], record)
    if RESULTS["install"].get("rc") != 0:
        return
    with step("seal") as record:
        seal_credentials(record)
    with step("configure") as record:
        configure(record)
    with step("secrets_init") as record:
        check_secrets_init(record)
    with step("socket_activation") as record:
        check_socket_activation(record)
    with step("call_through_tls") as record:
        check_call_through_tls(record)
    with step("security") as record:
        check_security(record)
    with step("reload") as record:
        check_reload(record)
    with step("clock") as record:
        check_clock(record)
    with step("lockout_restart") as record:
        check_lockout_restart(record)
    with step("watchdog") as record:
        check_watchdog(record)


def foreign_tpm() -> None:
    """Check 8 with a TPM that never saw this disk."""
    with step("foreign_tpm") as record:
        check_foreign_tpm(record)


def original_tpm() -> None:
    """The original TPM again, after a reboot: checks 7 and 8 (second halves), then 10."""
    with step("after_reboot") as record:
        check_after_reboot(record)
    with step("upgrade") as record:
        check_upgrade(record)


PHASES = {"first-boot": first_boot, "foreign-tpm": foreign_tpm, "original-tpm": original_tpm}


def main() -> int:
    """Run this boot's phase; the journal is exported whatever happened."""
    log(f"phase {PHASE}")
    try:
        with step("boot") as record:
            record_boot(record)
        PHASES[PHASE]()
    finally:
        export_journal()
        RESULTS["done"] = True
        save()
        log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
