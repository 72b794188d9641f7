"""Sealing and unsealing small secrets with `systemd-creds` (TPM2 when present, host key else).

The secret only ever travels through pipes: it goes to `systemd-creds encrypt` on standard
input and comes back from `systemd-creds decrypt` on standard output, never on a command line
and never through a file on disk. `credential_path` finds a credential systemd has already
unsealed for the running service.
"""

import os
import shutil
import subprocess
from pathlib import Path

from totpd.errors import SecretStoreError

SYSTEMD_CREDS = "systemd-creds"
WITH_KEY_CHOICES = ("auto", "host", "tpm2", "host+tpm2")
TIMEOUT_S = 120  # a TPM2 can take seconds per operation; a hung one must not hang the CLI
# systemd-creds' own "auto" (systemd 252) seals to a TPM2 only when the UEFI firmware announced
# it: a TPM2 the kernel drives without that (a TPM module on a Raspberry Pi, a BIOS machine, a VM
# booted without UEFI) is left out without a word, and the sealed key then opens on any copy of
# the disk. These three features are what sealing to it needs; the firmware's is not.
_TPM2_NEEDS = {"+driver", "+system", "+subsystem"}
# Harmless notices systemd-creds prints on hosts whose credential secret is not on encrypted media.
_NOISE = ("is not located on encrypted media",)


def _systemd_creds() -> str:
    found = shutil.which(SYSTEMD_CREDS)
    if found is None:
        raise SecretStoreError(
            f"{SYSTEMD_CREDS} not found: sealing the vault key needs systemd 250 or newer"
        )
    return found


def _reason(stderr: bytes) -> str:
    lines = [
        line.strip()
        for line in stderr.decode(errors="replace").splitlines()
        if line.strip() and not any(noise in line for noise in _NOISE)
    ]
    return lines[-1] if lines else "no reason given"


def _run(arguments: list[str], stdin: bytes, what: str) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, no shell, no secret in arguments
            [_systemd_creds(), *arguments],
            input=stdin,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SecretStoreError(f"{what}: {SYSTEMD_CREDS} took over {TIMEOUT_S} s") from None
    except OSError as exc:
        raise SecretStoreError(f"{what}: cannot run {SYSTEMD_CREDS}: {exc.strerror}") from None
    if done.returncode != 0:
        raise SecretStoreError(f"{what}: {SYSTEMD_CREDS} failed: {_reason(done.stderr)}")
    return done.stdout


def tpm2_usable(has_tpm2_report: str, in_container: bool) -> bool:
    """Whether `systemd-creds has-tpm2`'s report (one +/-feature a line) shows a TPM2 that the
    kernel drives and systemd supports, outside a container."""
    return not in_container and _TPM2_NEEDS.issubset(has_tpm2_report.split())


def choose_key(with_key: str) -> str:
    """The key to seal with: "auto" is host+tpm2 whenever this host can use a TPM2, as
    totpd-seal-credentials chooses; any other choice stands."""
    if with_key != "auto":
        return with_key
    # has-tpm2 exits non-zero unless every part is there, the firmware's included: its report
    # is what counts.
    report = _probe([_systemd_creds(), "has-tpm2"])
    detect_virt = shutil.which("systemd-detect-virt")
    container = _probe([detect_virt, "--container"]).strip() if detect_virt else "none"
    return "host+tpm2" if tpm2_usable(report, container not in ("", "none")) else "auto"


def _probe(command: list[str]) -> str:
    """The standard output of a command that reports (its exit status says little)."""
    try:
        done = subprocess.run(  # noqa: S603 - fixed programs, no shell, no secret
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SecretStoreError(f"cannot run {command[0]}: {exc}") from None
    return done.stdout


def seal(secret: bytes, name: str, with_key: str = "auto") -> bytes:
    """Encrypt `secret` as the systemd credential `name` with the key `with_key` (after
    `choose_key`); returns the .cred file's content."""
    if with_key not in WITH_KEY_CHOICES:
        raise SecretStoreError(f"--with-key must be one of {', '.join(WITH_KEY_CHOICES)}")
    return _run(
        ["encrypt", f"--with-key={with_key}", f"--name={name}", "-", "-"],
        stdin=secret,
        what=f"sealing credential {name!r}",
    )


def unseal_bytes(sealed: bytes, name: str, what: str) -> bytes:
    """Decrypt the content of a credential file that must carry the embedded name `name`."""
    return _run(
        ["decrypt", f"--name={name}", "--newline=no", "-", "-"],
        stdin=sealed,
        what=what,
    )


def unseal(path: Path, name: str) -> bytes:
    """Decrypt the credential file `path`, which must carry the embedded name `name`."""
    try:
        sealed = path.read_bytes()
    except FileNotFoundError:
        raise SecretStoreError(f"{path}: sealed credential not found") from None
    except OSError as exc:
        raise SecretStoreError(f"{path}: cannot read sealed credential: {exc.strerror}") from None
    return unseal_bytes(
        sealed, name, f"{path}: cannot unseal (needs root on the host that sealed it)"
    )


def credential_path(name: str) -> Path | None:
    """`$CREDENTIALS_DIRECTORY/name` when systemd loaded that credential for this service."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    return path if path.exists() else None
