"""Files in the state directory: crash-safe writes (a reader sees the old file or the new one,
never a torn one), and opens that follow no symlink.

The state directory belongs to the service user, so anything in it may have been planted by
that user: every name totpd opens there is opened with O_NOFOLLOW and must be a regular file.
A FIFO or a device is refused before it can block a read (O_NONBLOCK). The first line of
defence is elsewhere: root's commands run as the directory's owner (totpd.privileges). Root
that did not (a library caller) hands each file it creates to the owner by its descriptor,
before the file has its name; nothing is ever chowned by name.
"""

import errno
import os
import stat
import tempfile
from pathlib import Path

_NO_SURPRISES = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def give_to_directory_owner(fd: int, directory: Path) -> None:
    """Hand a file totpd has just created, by its descriptor, to the owner of `directory`.

    Only for root working in another user's directory without having become that user (a
    library caller such as the `keyring` command): the daemon must still be able to read it.
    """
    if os.geteuid() != 0:
        return
    st = directory.stat()
    if st.st_uid != 0:
        os.fchown(fd, st.st_uid, st.st_gid)


def _opened(path: Path, flags: int, mode: int = 0o600) -> int:
    """`os.open` with O_NOFOLLOW, refusing anything but a regular file, with a clear reason.

    With O_CREAT, the file is created with O_EXCL first, so that only a file made here is
    handed to the directory's owner, never one that was already there.
    """
    try:
        if flags & os.O_CREAT:
            try:
                fd = os.open(path, flags | os.O_EXCL | _NO_SURPRISES, mode)
            except FileExistsError:
                fd = os.open(path, (flags & ~os.O_CREAT) | _NO_SURPRISES)
            else:
                give_to_directory_owner(fd, path.parent)
        else:
            fd = os.open(path, flags | _NO_SURPRISES)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, not followed", str(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def open_lock(path: Path) -> int:
    """The file descriptor of the lock file `path`, created 0600 if absent (flock it)."""
    return _opened(path, os.O_RDWR | os.O_CREAT)


def open_append(path: Path) -> int:
    """`path` opened to append to (and to read back with pread), created 0600 if absent."""
    return _opened(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)


def open_read(path: Path) -> int:
    """`path` opened to read; FileNotFoundError when it is absent."""
    return _opened(path, os.O_RDONLY)


def read_file(path: Path, max_bytes: int = -1) -> bytes:
    """The content of the regular file `path` (at most `max_bytes` when given)."""
    with os.fdopen(open_read(path), "rb") as file:
        return file.read(max_bytes)


def write_atomic(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `content`: temp file in the same directory, fsync, rename, fsync dir.

    The temp file is created with O_EXCL (no planted name is reused), gets its owner and mode
    by its descriptor, and the rename replaces whatever `path` is, a symlink included,
    without following it.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        give_to_directory_owner(fd, path.parent)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the entries of `directory` (a rename, a new file) durable."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


FileVersion = tuple[int, int]


def file_version(path: Path) -> FileVersion | None:
    """(inode, mtime) of `path`, or None when it is absent: it changes on every atomic write."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)
