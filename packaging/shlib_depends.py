"""Prints the Debian packages whose shared libraries the venv's binaries link to directly,
one a line, as dpkg-shlibdeps would for a package built by debhelper. Libraries a wheel
bundles (auditwheel's *.libs/) resolve inside the venv and need no package.

Run in the build chroot with its /usr/bin/python3:  python3 shlib_depends.py VENV
"""

import re
import subprocess
import sys
from pathlib import Path


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def main(venv: Path) -> None:
    """Print the packages, or exit non-zero naming a library this system lacks."""
    system_libraries: set[str] = set()
    for binary in sorted(venv.rglob("*.so*")):
        if not binary.is_file() or binary.read_bytes()[:4] != b"\x7fELF":
            continue
        needed = set(re.findall(r"\(NEEDED\).*\[(.+)\]", _run("readelf", "-d", str(binary))))
        for soname, path in re.findall(r"^\s*(\S+) => (\S+)", _run("ldd", str(binary)), re.M):
            if soname not in needed:
                continue
            if path == "not":
                sys.exit(f"{binary}: needs {soname}, which this system does not have")
            if not path.startswith(f"{venv}/"):
                system_libraries.add(path)
    packages = set()
    for path in system_libraries:
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True, check=False)
        if owner.returncode != 0:  # usrmerge: dpkg knows /lib/... where ldd says /usr/lib/...
            owner = subprocess.run(
                ["dpkg", "-S", str(Path(path).resolve())],
                capture_output=True,
                text=True,
                check=True,
            )
        packages.add(owner.stdout.split(":")[0])
    print("\n".join(sorted(packages)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
