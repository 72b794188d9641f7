"""The host's side of `make test-vm`: the cached guest image, the Debian packages the guest
installs (the one `make deb` built, and a newer build of it for the upgrade), and booting the
guest under QEMU with a swtpm TPM2.

One `Machine` is one disk (a qcow2 overlay over the cached image, so every boot of a test run
sees what the previous one left) and any number of TPM states. Each boot runs one phase of
tests/vm/guest/phase.py; the guest reports through a 9p share and a second serial port.
"""

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
# TCG (full emulation) by default: it works everywhere, nested virtualisation often does not.
# TOTPD_VM_ACCEL=kvm on a host with a real /dev/kvm is several times faster.
ACCEL = os.environ.get("TOTPD_VM_ACCEL", "tcg")
MEMORY_MIB = 2048
CPUS = 2


def cache_dir() -> Path:
    """Where the image and the wheels are kept between runs (outside the checkout)."""
    explicit = os.environ.get("TOTPD_VM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "totpd-vm"


_HELD_LOCKS: list[IO[str]] = []  # a run's lock on its work directory, until the process ends


def new_workdir() -> Path:
    """A work directory for one run, under the cache (not /tmp: other pytest runs clean up
    there). Earlier runs' directories are removed unless a run still holds their lock, so the
    last run's logs stay for a look after a failure, and concurrent runs keep theirs."""
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for old in runs.iterdir():
        with (old / ".lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a run in progress
            shutil.rmtree(old, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))
    lock = (workdir / ".lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    _HELD_LOCKS.append(lock)
    return workdir


def run(*command: str | Path, timeout_s: float = 1800) -> str:
    """Run a host command that must succeed; its stdout."""
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def package() -> Path:
    """dist/totpd_<version>_amd64.deb, which `make test-vm` builds first (packaging/build-deb)."""
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    deb = PROJECT / "dist" / f"totpd_{version}_amd64.deb"
    if not deb.is_file():
        raise RuntimeError(
            f"{deb} is missing: `make test-vm` builds it (packaging/build-deb amd64)"
        )
    return deb


def image(deb: Path) -> Path:
    """The cached guest image (kernel, initrd, disk.raw) for installing `deb`, built when its
    inputs changed."""
    return Path(run(HERE / "build-image", deb).strip().splitlines()[-1])


def newer_package(deb: Path, dest: Path, label: str) -> Path:
    """`deb` again as a newer build, version V+label (dpkg and PEP 440 both order it after V),
    in `dest`: the version in the control file and in the Python package's metadata (what
    `totpd_build_info` reports), "label" in its build line (`totpd --version`), and one more
    comment line in the config, a conffile, which the admin has changed in the meantime.
    Repacked with dpkg-deb, gzip at its fastest: the package is built once per run."""
    tree = dest / "newer-tree"
    run("dpkg-deb", "--raw-extract", deb, tree)
    control = tree / "DEBIAN" / "control"
    version = re.search(r"^Version: (\S+)$", control.read_text(), re.M)
    assert version, control.read_text()
    newer = f"{version[1]}+{label}"
    _replace(control, f"Version: {version[1]}\n", f"Version: {newer}\n")
    (metadata,) = tree.glob("opt/totpd/venv/lib/python3*/site-packages/totpd-*.dist-info/METADATA")
    _replace(metadata, f"\nVersion: {version[1]}\n", f"\nVersion: {newer}\n")
    (build,) = tree.glob("opt/totpd/venv/lib/python3*/site-packages/totpd/BUILD")
    build.write_text(build.read_text().strip() + f", {label}\n")
    config = tree / "etc/totpd/totpd.toml"
    config.write_text(config.read_text() + f"\n# totpd {newer}\n")
    _rewrite_md5sums(tree, [metadata, build])
    newer_deb = dest / deb.name.replace(f"_{version[1]}_", f"_{newer}_")
    run("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", tree, newer_deb)
    shutil.rmtree(tree)
    return newer_deb


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    path.write_text(text.replace(old, new))


def _rewrite_md5sums(tree: Path, changed: list[Path]) -> None:
    """DEBIAN/md5sums with the sums of the changed files (dpkg --verify checks them)."""
    md5sums = tree / "DEBIAN" / "md5sums"
    # MD5 is what dpkg's md5sums format holds (a check for damage, not a security measure).
    sums = {
        str(path.relative_to(tree)): hashlib.md5(
            path.read_bytes(), usedforsecurity=False
        ).hexdigest()
        for path in changed
    }
    lines = []
    for line in md5sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        lines.append(f"{sums.pop(name, digest)}  {name}")
    assert not sums, f"not in md5sums: {sorted(sums)}"
    md5sums.write_text("\n".join(lines) + "\n")


@dataclass
class Boot:
    """What one boot left behind: the guest's results, its logs and its journal."""

    phase: str
    elapsed_s: float
    qemu_status: int | None  # None: killed after the timeout
    results: dict[str, Any]
    console: str
    progress: str
    journal: list[dict[str, Any]] = field(default_factory=list)

    def step(self, name: str) -> dict[str, Any]:
        """One step's record; an AssertionError naming what the guest said when it is missing."""
        record = self.results.get(name)
        if record is None:
            raise AssertionError(
                f"the guest never ran step {name!r} in phase {self.phase}"
                f" (qemu exit status {self.qemu_status}, {self.elapsed_s:.0f} s)\n"
                f"--- guest progress (second serial port), last lines ---\n"
                + "\n".join(self.progress.splitlines()[-40:])
                + "\n--- guest console, last lines ---\n"
                + "\n".join(self.console.splitlines()[-20:])
            )
        return dict(record)


class Machine:
    """One guest disk (an overlay over the cached image) and the share it boots with."""

    def __init__(self, image_dir: Path, workdir: Path) -> None:
        self.image = image_dir
        self.workdir = workdir
        self.share = workdir / "share"
        (self.share / "out").mkdir(parents=True, exist_ok=True)
        shutil.copytree(HERE / "guest", self.share / "guest", dirs_exist_ok=True)
        self.disk = workdir / "disk.qcow2"
        run(
            "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw",
            "-b", image_dir / "disk.raw", self.disk,
        )  # fmt: skip

    def tpm(self, name: str) -> Path:
        """A TPM state directory (a fresh TPM the first time it is used)."""
        path = self.workdir / f"tpm-{name}"
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def boot(
        self, phase: str, tpm: Path, params: dict[str, Any], *, timeout_s: float, snapshot: bool
    ) -> Boot:
        """Boot the guest to run `phase`; returns when it powered off (or was killed).

        `snapshot` discards the boot's disk writes (the next boot sees the disk as before).
        """
        params_file = self.share / "params.json"
        params_file.write_text(json.dumps({**params, "phase": phase}))
        params_file.chmod(0o600)
        logs = self.workdir / phase
        logs.mkdir(exist_ok=True)
        socket_path = self.workdir / "swtpm.sock"
        socket_path.unlink(missing_ok=True)
        swtpm = subprocess.Popen(
            [
                "swtpm", "socket", "--tpm2", "--tpmstate", f"dir={tpm}",
                "--ctrl", f"type=unixio,path={socket_path}",
                "--log", f"file={logs / 'swtpm.log'}", "--terminate",
            ]
        )  # fmt: skip
        started = time.monotonic()
        status: int | None = None  # None: killed after the timeout
        try:
            while not socket_path.exists():
                if swtpm.poll() is not None or time.monotonic() - started > 10:
                    raise RuntimeError(f"swtpm did not start (see {logs / 'swtpm.log'})")
                time.sleep(0.05)
            command = self._qemu(logs, socket_path, snapshot)
            with (logs / "qemu.log").open("wb") as qemu_log:
                qemu = subprocess.Popen(command, stdout=qemu_log, stderr=subprocess.STDOUT)
                try:
                    status = qemu.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    pass
                finally:  # also when the test run is interrupted
                    if qemu.poll() is None:
                        qemu.kill()
                        qemu.wait()
        finally:
            if swtpm.poll() is None:
                swtpm.terminate()
                swtpm.wait(timeout=10)
        return Boot(
            phase=phase,
            elapsed_s=time.monotonic() - started,
            qemu_status=status,
            results=_json_or_empty(self.share / "out" / f"{phase}.json"),
            console=_read(logs / "console.log"),
            progress=_read(logs / "progress.log"),
            journal=_journal(self.share / "out" / f"{phase}-journal.json"),
        )

    def _qemu(self, logs: Path, tpm_socket: Path, snapshot: bool) -> list[str]:
        """The QEMU command line: serial ports to files, the TPM, the share; no network."""
        drive = f"file={self.disk},format=qcow2,if=virtio,cache=unsafe"
        return [
            "qemu-system-x86_64", "-accel", ACCEL, "-m", str(MEMORY_MIB),
            "-smp", str(CPUS), "-display", "none", "-monitor", "none",
            "-no-reboot", "-nic", "none",
            "-serial", f"file:{logs / 'console.log'}",
            "-serial", f"file:{logs / 'progress.log'}",
            "-kernel", str(self.image / "vmlinuz"),
            "-initrd", str(self.image / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyS0 quiet systemd.firstboot=off",
            "-drive", drive + (",snapshot=on" if snapshot else ""),
            "-chardev", f"socket,id=chrtpm,path={tpm_socket}",
            "-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
            "-device", "tpm-tis,tpmdev=tpm0",
            "-virtfs", f"local,path={self.share},mount_tag=host0,security_model=none,id=host0",
        ]  # fmt: skip


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _json_or_empty(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _journal(path: Path) -> list[dict[str, Any]]:
    """`journalctl -o json` output: one JSON object per line."""
    entries = []
    for line in _read(path).splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries
