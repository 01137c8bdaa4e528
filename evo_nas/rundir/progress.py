"""Progress that reads well wherever it goes: a bar redrawn in place on a terminal, plain lines
at a sensible interval in a log file or a pipe (never a line of carriage returns)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import IO

from tqdm import tqdm

#: seconds between two plain progress lines when the output is not a terminal
LINE_INTERVAL_S = 15.0


def duration(seconds: float) -> str:
    """A duration a person reads at a glance: ``42 s``, ``3.5 min``, ``2.1 h``."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts work done (``update``) with a status text (``status``) and notes (``note``).

    On a terminal it is a tqdm bar; otherwise each line is complete, printed at the start, then
    at most once per ``interval_s`` and at the end, so a redirected log stays readable. With
    ``show`` false it prints nothing.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        initial: int = 0,
        show: bool = True,
        stream: IO[str] | None = None,
        interval_s: float = LINE_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.desc, self.total, self.unit = desc, total, unit
        self.n = initial
        self.show = show
        self.interval_s = interval_s
        self.clock = clock
        self.text = ""
        isatty = getattr(self.stream, "isatty", None)
        self.bar: tqdm | None = None
        if show and isatty is not None and isatty():
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, file=self.stream, leave=True
            )
        self.start = self.clock()
        self.start_n = initial
        self.printed_at: float | None = None
        self.printed_state: tuple[int, str] | None = None
        if show and self.bar is None:
            self._line()

    def _line(self) -> None:
        """One complete plain line: count, rate and status."""
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        parts = [f"{self.desc}: {count} {self.unit}"]
        elapsed = self.clock() - self.start
        done = self.n - self.start_n
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(
                f"{rate:.3g} {self.unit}/s" if rate >= 1 else f"{1 / rate:.3g} s/{self.unit}"
            )
            if self.total is not None and self.n < self.total:
                parts.append(f"about {duration((self.total - self.n) / rate)} left")
        if self.text:
            parts.append(self.text)
        print(", ".join(parts), file=self.stream)
        self.stream.flush()
        self.printed_at = self.clock()
        self.printed_state = (self.n, self.text)

    def _maybe_line(self) -> None:
        if self.show and self.bar is None:
            if self.printed_at is None or self.clock() - self.printed_at >= self.interval_s:
                self._line()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        self._maybe_line()

    def reset(self, total: int | None) -> None:
        """Start counting again from zero towards ``total`` (e.g. once it is known)."""
        self.total, self.n, self.start_n, self.start = total, 0, 0, self.clock()
        if self.bar is not None:
            self.bar.reset(total=total)

    def status(self, text: str, refresh: bool = True) -> None:
        """What is being done now (after the count); ``refresh`` false only stores it (shown
        with the next count)."""
        self.text = text
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=refresh)
        elif refresh:
            self._maybe_line()

    def note(self, text: str, file: IO[str] | None = None) -> None:
        """A line of its own, to ``file`` (default: where the progress goes), above the bar
        on a terminal; shown even when the progress is not."""
        out = file if file is not None else self.stream
        if self.bar is not None:
            self.bar.write(text, file=out)
        else:
            print(text, file=out)
            out.flush()

    def close(self) -> None:
        """Finish: the bar is closed, or a last line says where it ended."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.show and self.printed_state != (self.n, self.text):
            self._line()
        self.show = False
