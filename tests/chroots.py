"""Throwaway Debian 12 chroots of any architecture for the package tests (root only).

The chroot tarballs come from packaging/chroot.sh (made once by mmdebstrap, cached); each test
module unpacks its own copy, mounts /proc, /sys and /dev into it, and removes it afterwards.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROOT_SH = ROOT / "packaging" / "chroot.sh"
SOURCED = f'source "{CHROOT_SH}" && {{}} "$@"'  # a function of chroot.sh, with arguments
ENV = {
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "DEBIAN_FRONTEND": "noninteractive",
}


def host_packages(*packages: str) -> None:
    """Install the chroot tools and `packages` on this host with apt, when missing."""
    done = subprocess.run(
        ["bash", "-c", SOURCED.format("host_packages"), "-", *packages],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def chroot_tarball(name: str, arch: str, *packages: str) -> Path:
    """The cached tarball of a bookworm chroot of `arch` with `packages` (made if missing)."""
    done = subprocess.run(
        [
            "bash",
            "-c",
            SOURCED.format("host_packages && chroot_tarball"),
            "-",
            name,
            arch,
            *packages,
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


class Chroot:
    """An unpacked chroot: run commands in it, with a clean environment."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _prefix(self, env: dict[str, str]) -> list[str]:
        variables = [f"{key}={value}" for key, value in {**ENV, **env}.items()]
        return ["chroot", str(self.path), "/usr/bin/env", "-i", *variables]

    def run(
        self,
        script: str,
        *,
        stdin: str = "",
        timeout_s: float = 600,
        check: bool = True,
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the chroot; on `check`, fail the test with its output."""
        done = subprocess.run(
            [*self._prefix(env), "sh", "-ec", script],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done

    def popen(self, script: str, **env: str) -> subprocess.Popen[str]:
        """Start a shell script in the chroot in the background (output to a pipe)."""
        return subprocess.Popen(
            [*self._prefix(env), "sh", "-ec", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


@contextmanager
def unpacked(tarball: Path, arch: str) -> Iterator[Chroot]:
    """A fresh copy of the chroot in `tarball`, unmounted and removed on exit."""
    subprocess.run(
        ["bash", "-c", SOURCED.format("binfmt"), "-", arch],
        check=True,
        timeout=60,
    )
    path = Path(tempfile.mkdtemp(prefix="totpd-test-chroot."))
    mounts: list[Path] = []
    try:
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(path)], check=True, timeout=600)
        for source, target, options in (
            ("proc", "proc", ["-t", "proc"]),
            ("/sys", "sys", ["--rbind"]),
            ("/dev", "dev", ["--rbind"]),
        ):
            subprocess.run(["mount", *options, source, str(path / target)], check=True)
            mounts.append(path / target)
        shutil.copy("/etc/resolv.conf", path / "etc/resolv.conf")
        # The host's trust store, as packaging/chroot.sh does: a TLS proxy it trusts works.
        if Path("/etc/ssl/certs/ca-certificates.crt").exists():
            (path / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
            shutil.copy("/etc/ssl/certs/ca-certificates.crt", path / "etc/ssl/certs")
        # No service may start in a chroot: the policy every Debian chroot tool installs.
        policy = path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        yield Chroot(path)
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "-R", str(mount)], check=False)
        if os.path.ismount(path / "proc") or os.path.ismount(path / "dev"):
            raise RuntimeError(f"{path}: still mounted; not removing it")
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
