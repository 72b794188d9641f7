"""The hashed locks in requirements/ agree with pyproject.toml (no network: files only).

A dependency added to pyproject without `make lock`, or a floor raised past the pinned
version, fails here rather than in a package build on someone's Raspberry Pi.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
# Debian 12's Python on Linux: the environment every lock is installed into.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.2",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)(?:\s*;\s*(?P<marker>[^\\]+))?"
)


def _pins(lock: Path) -> dict[str, list[Version]]:
    """Name -> pinned versions that apply to the target (a universal lock may split by marker)."""
    pins: dict[str, list[Version]] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match is None:
            continue
        marker = match["marker"]
        if marker is not None and not Marker(marker.strip()).evaluate(TARGET):
            continue
        pins.setdefault(canonicalize_name(match["name"]), []).append(Version(match["version"]))
    return pins


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _requirements(*extras: str) -> list[Requirement]:
    project = _project()
    core = [Requirement(text) for text in project["dependencies"]]  # type: ignore[attr-defined]
    optional = project["optional-dependencies"]
    return core + [Requirement(text) for extra in extras for text in optional[extra]]  # type: ignore[index]


def _disagreements(lock: Path, requirements: list[Requirement]) -> list[str]:
    pins = _pins(lock)
    problems = []
    for requirement in requirements:
        versions = pins.get(canonicalize_name(requirement.name))
        if not versions:
            problems.append(f"{requirement.name}: not in {lock.name}")
        for version in versions or []:
            if not requirement.specifier.contains(version, prereleases=True):
                problems.append(f"{requirement.name}=={version} outside {requirement.specifier}")
    return problems


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("lock.txt", ("speedups", "qr", "ente")), ("lock-core.txt", ())],
)
def test_lock_pins_every_dependency_within_its_specifier(lock: str, extras: tuple[str]) -> None:
    assert _disagreements(REQUIREMENTS / lock, _requirements(*extras)) == []


def test_core_lock_leaves_out_the_extras() -> None:
    """armhf installs lock-core.txt: an extra in it would be built from source there."""
    optional = _requirements("speedups", "qr", "ente")[len(_requirements()) :]
    pinned = _pins(REQUIREMENTS / "lock-core.txt")
    assert [r.name for r in optional if canonicalize_name(r.name) in pinned] == []


def test_core_lock_pins_the_same_versions_as_the_full_lock() -> None:
    full = _pins(REQUIREMENTS / "lock.txt")
    core = _pins(REQUIREMENTS / "lock-core.txt")
    assert {name: versions for name, versions in core.items() if full.get(name) != versions} == {}


def test_build_lock_pins_the_build_backend_pyproject_asks_for() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    wanted = [Requirement(text) for text in build_system["requires"]]
    wanted += [
        Requirement(line.split("#")[0])
        for line in (REQUIREMENTS / "build.in").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert _disagreements(REQUIREMENTS / "build.txt", wanted) == []


@pytest.mark.parametrize("lock", ["lock.txt", "lock-core.txt", "build.txt"])
def test_every_pin_carries_a_hash(lock: str) -> None:
    """pip --require-hashes refuses a lock with one unhashed pin; say which one here."""
    entries = re.split(r"\n(?=\S)", (REQUIREMENTS / lock).read_text())
    unhashed = [e.split()[0] for e in entries if PIN.match(e) and "--hash=sha256:" not in e]
    assert unhashed == []


def test_a_missing_dependency_is_caught(tmp_path: Path) -> None:
    """The check itself can fail: a lock without aiohttp disagrees with pyproject."""
    lock = (REQUIREMENTS / "lock-core.txt").read_text()
    stripped = re.sub(r"(?m)^aiohttp==.*(\n    .*)*\n", "", lock)
    (tmp_path / "lock.txt").write_text(stripped)
    assert _disagreements(tmp_path / "lock.txt", _requirements()) == ["aiohttp: not in lock.txt"]


def test_a_pin_below_the_floor_is_caught(tmp_path: Path) -> None:
    (tmp_path / "lock.txt").write_text("aiohttp==3.8.0 \\\n    --hash=sha256:00\n")
    assert _disagreements(tmp_path / "lock.txt", [Requirement("aiohttp>=3.9")]) == [
        "aiohttp==3.8.0 outside >=3.9"
    ]
