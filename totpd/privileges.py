"""Root's commands run as the owner of the state directory.

The state directory belongs to the service user, who (or code running as it: a compromised
daemon) can plant anything there: a symlink under any name totpd uses, swapped in while a
command runs. So a `totpd` command started as root (`sudo totpd ...`) first takes the owner's
user and group as its effective ones, before it touches anything there. Every open, create,
rename and chmod is then checked by the kernel against the owner's rights: a planted name
reaches nothing the owner could not reach already, and every file the command writes is the
owner's, readable by the daemon. Nothing in totpd chowns a file by its name.

The real and saved user ids stay root's, for the steps that need root and touch nothing in the
state directory (`as_root`): unsealing the vault key from /etc/credstore.encrypted, and in
`secrets init` sealing a new one and writing it there while the vault is locked. The owner
cannot signal, trace or read the memory of a process whose real uid is root; the kernel also
marks it not dumpable once its effective uid changes.

A state directory owned by root but writable by other users is refused: there is no owner to
become, and anyone could plant names in it.
"""

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from totpd.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    """`path`, or the closest ancestor of it that exists (the state dir may be created)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def run_as_state_owner(state_dir: Path, daemon: bool = False) -> None:
    """As root, take the owner of `state_dir` as the effective user and group (see above).

    A no-op for any other user. ConfigError for a root-owned state directory that other users
    can write, and for the daemon (`daemon`), which runs as the owner from the start.
    """
    if os.geteuid() != 0:
        return
    where = _nearest_existing(state_dir)
    st = where.stat()
    if st.st_uid == 0:
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(
                f"paths.state_dir: {where} is writable by other users"
                f" (mode {stat.S_IMODE(st.st_mode):04o}); root will not work in it:"
                " chmod go-w it, or give it to the service user"
            )
        return
    if daemon:
        raise ConfigError(
            f"paths.state_dir: {where} belongs to uid {st.st_uid}: run the daemon as that"
            " user (User= in totpd.service), not as root"
        )
    # Groups first: changing them needs root, which the next two calls give up.
    os.setgroups([st.st_gid])
    os.setegid(st.st_gid)
    os.seteuid(st.st_uid)


@contextmanager
def as_root() -> Iterator[None]:
    """Root again for the body, when `run_as_state_owner` gave it up; otherwise nothing.

    Only for files of root's own (/etc/credstore.encrypted) and `systemd-creds`; never for
    anything in the state directory.
    """
    uid, gid = os.geteuid(), os.getegid()
    if os.getuid() != 0 or uid == 0:
        yield
        return
    os.seteuid(0)
    os.setegid(0)
    try:
        yield
    finally:
        os.setegid(gid)
        os.seteuid(uid)
