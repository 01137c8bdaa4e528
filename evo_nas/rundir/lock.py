"""One process at a time in a run directory: an exclusive ``flock`` on its ``run.lock``.

The holder writes its pid and host name into the file, so a refused second ``run`` or
``resume`` can say who holds it; the kernel drops the lock when the holder exits, SIGKILL
included, so a killed run never leaves a stale lock behind. The file itself is never
deleted (deleting a lock file lets two processes lock two different files of one name).
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path


class RunDirError(ValueError):
    """A run directory that cannot be used as asked, described in one line."""


class RunLocked(RunDirError):
    """Another process holds the run directory."""


def _holder(fd: int) -> str:
    """What the holder wrote (it may not have written yet: wait a little for it)."""
    for _ in range(20):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "another process"


class RunLock:
    """An exclusive lock on ``path``, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunLocked` naming its holder's pid."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunLocked(
                f"{self.path.parent}: in use by {holder} (it holds {self.path.name}); "
                "wait for it to finish or stop it first"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (and empty the file: nobody holds it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock
