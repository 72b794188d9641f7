"""A Unix socket to listen on, made safely (the admin page's `unix:/run/totpd/admin.sock`).

Its directory must be writable by totpd's user (or root) alone: then nobody else can plant or
swap a name in it between a check and the bind, and a change of mode by name is safe. A socket
left behind by an earlier run, with nobody listening, is replaced; anything else at the path (a
symlink, a file, a socket someone listens on) is refused, never followed and never removed.

The socket is mode 0660: the service's user and its group may connect, no other local user.
The group is the one the kernel gives a new file, the process's own (under the unit, `totpd`);
totpd does not chown, which the unit's system call filter forbids. At shutdown the socket is
removed, if it is still the one this process made.
"""

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

SOCKET_MODE = 0o660
BACKLOG = 64


class SocketRefused(OSError):
    """The path cannot safely hold a new socket; the message (no errno) says why."""


@dataclass(frozen=True)
class BoundSocket:
    """A listening Unix socket and the file it made, known by device and inode."""

    sock: socket.socket
    path: Path
    identity: tuple[int, int]

    def remove(self) -> None:
        """Remove the socket's file, unless something else has taken its name since."""
        try:
            now = self.path.lstat()
        except FileNotFoundError:
            return
        if (now.st_dev, now.st_ino) == self.identity:
            self.path.unlink()


def _check_directory(directory: Path) -> None:
    """Refuse a directory that a user other than this one (or root) may write."""
    found = directory.stat()  # a symlink above is fine: it is that directory that matters
    if not stat.S_ISDIR(found.st_mode):
        raise SocketRefused(f"{directory} is not a directory")
    others_write = found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if found.st_uid not in (os.geteuid(), 0) or others_write:
        raise SocketRefused(
            f"{directory} is writable by other users; put the socket in a directory only"
            " totpd can write (RuntimeDirectory=totpd gives /run/totpd)",
        )


def _clear_stale(path: Path) -> None:
    """Remove a socket nobody listens on at `path`; refuse anything else there."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise SocketRefused("it exists and is not a socket (totpd replaces only a stale socket)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        if probe.connect_ex(str(path)) == 0:
            raise SocketRefused("another process is listening on it")
    path.unlink()


def bind_unix_socket(path: Path) -> BoundSocket:
    """A socket listening at `path`, mode 0660; SocketRefused or OSError when it cannot be."""
    _check_directory(path.parent)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        # By name: safe, as nobody else can write the directory. The umask (0077 under the
        # unit) made it 0700 or so at bind; the group needs rw to connect.
        path.chmod(SOCKET_MODE)
        made = path.lstat()
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return BoundSocket(sock, path, (made.st_dev, made.st_ino))
