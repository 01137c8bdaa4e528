"""One process at a time in a run directory: an exclusive ``flock`` on the directory itself.

The lock is taken on the run directory, not on a file in it, so that deleting or replacing a
file cannot let a second process in. The holder writes its pid and host name into
``run.lock`` (never through a symbolic link), so a refused second ``run`` or ``resume`` can
say who holds it; the kernel drops the lock when the holder exits, SIGKILL included, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path


class RunDirError(ValueError):
    """A run directory that cannot be used as asked, described in one line."""


class RunLocked(RunDirError):
    """Another process holds the run directory."""


def _holder(path: Path) -> str:
    """What the holder wrote in ``path`` (it may not have written yet: wait a little)."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            text = ""
        else:
            try:
                text = os.read(fd, 200).decode("utf-8", "replace").strip()
            finally:
                os.close(fd)
        if text:
            return text
        time.sleep(0.05)
    return "another process"


def open_no_follow(path: Path, flags: int) -> int:
    """``os.open(path, flags)`` that refuses a symbolic link at ``path`` in one line."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RunDirError(
                f"{path}: a symbolic link; refusing to write through it (remove it)"
            ) from None
        if e.errno == errno.EISDIR:
            raise RunDirError(f"{path}: not a regular file (a run file was replaced)") from None
        raise


class RunLock:
    """An exclusive lock on the directory of ``path`` (the ``run.lock`` file that names the
    holder), held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fds: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._fds is not None

    def _lock_directory(self) -> int:
        """The directory's descriptor, locked; raises :class:`RunLocked` naming the holder."""
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: in use by {_holder(self.path)} (it holds the run "
                "directory); wait for it to finish or stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        return fd

    def refuse_if_held(self) -> None:
        """Raise :class:`RunLocked` while another process holds the lock (takes nothing)."""
        os.close(self._lock_directory())

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLocked` naming its holder's pid."""
        dir_fd = self._lock_directory()
        try:
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT)
        except BaseException:
            os.close(dir_fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fds = (dir_fd, fd)
        return self

    def release(self) -> None:
        """Give the lock up (and empty the file: nobody holds it)."""
        if self._fds is None:
            return
        (dir_fd, fd), self._fds = self._fds, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
            os.close(dir_fd)  # closing the descriptor drops the flock
