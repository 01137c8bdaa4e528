"""Progress that reads well wherever it goes: a bar redrawn in place on a terminal, plain lines
on a timer in a log file or a pipe (never a carriage return), and one way to write a duration.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from tqdm import tqdm

#: seconds between two plain progress lines when the output is not a terminal
LINE_INTERVAL_S = 15.0
#: the environment variable that sets another interval (seconds; tests shorten it)
INTERVAL_VARIABLE = "EVO_NAS_PROGRESS_S"
#: seconds between two redraws of a terminal bar with nothing new (its clock keeps moving)
BAR_REFRESH_S = 1.0


def line_interval() -> float:
    """Seconds between two plain lines: ``$EVO_NAS_PROGRESS_S`` when it is a positive number,
    else :data:`LINE_INTERVAL_S`."""
    try:
        value = float(os.environ.get(INTERVAL_VARIABLE, ""))
    except ValueError:
        return LINE_INTERVAL_S
    return value if math.isfinite(value) and value > 0 else LINE_INTERVAL_S


def duration(seconds: float) -> str:
    """A duration or a cost in time, the one way every report writes it: ``0.4 s``, ``42 s``,
    ``3.5 min``, ``122.5 h`` (``?`` when unknown)."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    if seconds < 89.5:
        return f"{seconds:.0f} s"
    if seconds < 5370:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts work done (``update``) with a status text (``status``) and notes (``note``).

    On a terminal it is a tqdm bar, redrawn at least every :data:`BAR_REFRESH_S`; otherwise each
    line is complete, printed at the start, then whenever ``interval_s`` (default
    :func:`line_interval`) has passed since the last one, by a timer thread when nothing else
    happens (a long step still shows it is alive), and at the end, so a redirected log stays
    readable. With ``show`` false it prints nothing. The timer only prints: it never touches
    the work it reports on.
    """

    def __init__(
        self,
        desc: str,
        total: int | None = None,
        unit: str = "it",
        initial: int = 0,
        show: bool = True,
        stream: IO[str] | None = None,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.desc, self.total, self.unit = desc, total, unit
        self.n = initial
        self.show = show
        self.interval_s = line_interval() if interval_s is None else interval_s
        self.clock = clock
        self.text = ""
        isatty = getattr(self.stream, "isatty", None)
        self.bar: tqdm | None = None
        if show and isatty is not None and isatty():
            self.bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, file=self.stream, leave=True
            )
        self.began = self.start = self.clock()
        self.start_n = initial
        self.printed_at: float | None = None
        self.printed_state: tuple[int, str] | None = None
        self.lock = threading.RLock()
        self.stopped = threading.Event()
        self.timer: threading.Thread | None = None
        self.last_output = time.monotonic()  # real time, whatever ``clock`` is
        if show and self.bar is None:
            self._line()
        if show:
            self.timer = threading.Thread(target=self._tick, name=f"progress: {desc}", daemon=True)
            self.timer.start()

    def _tick(self) -> None:
        """The timer: a line (or a redraw of the bar) once the interval has passed in real time
        with nothing printed."""
        period = BAR_REFRESH_S if self.bar is not None else self.interval_s
        while not self.stopped.wait(max(0.01, period - (time.monotonic() - self.last_output))):
            with self.lock:
                if self.stopped.is_set() or time.monotonic() - self.last_output < period:
                    continue
                if self.bar is not None:
                    self.bar.refresh()
                    self.last_output = time.monotonic()
                else:
                    self._line()

    def _line(self) -> None:
        """One complete plain line: count, time so far, rate, time left and status."""
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        parts = [f"{self.desc}: {count} {self.unit}"]
        now = self.clock()
        if self.printed_at is not None:  # every line after the first
            parts.append(f"{duration(now - self.began)} elapsed")
        elapsed = now - self.start
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
        self.printed_at = now
        self.printed_state = (self.n, self.text)
        self.last_output = time.monotonic()

    def _maybe_line(self) -> None:
        if self.show and self.bar is None:
            if self.printed_at is None or self.clock() - self.printed_at >= self.interval_s:
                self._line()

    def update(self, n: int = 1) -> None:
        """``n`` more units done."""
        with self.lock:
            self.n += n
            if self.bar is not None:
                self.bar.update(n)
            self._maybe_line()

    def reset(self, total: int | None) -> None:
        """Start counting again from zero towards ``total`` (e.g. once it is known)."""
        with self.lock:
            self.total, self.n, self.start_n, self.start = total, 0, 0, self.clock()
            if self.bar is not None:
                self.bar.reset(total=total)

    def status(self, text: str, refresh: bool = True) -> None:
        """What is being done now (after the count); ``refresh`` false only stores it (shown
        with the next count)."""
        with self.lock:
            self.text = text
            if self.bar is not None:
                self.bar.set_postfix_str(text, refresh=refresh)
            elif refresh:
                self._maybe_line()

    def note(self, text: str, file: IO[str] | None = None) -> None:
        """A line of its own, to ``file`` (default: where the progress goes), above the bar
        on a terminal; shown even when the progress is not."""
        out = file if file is not None else self.stream
        with self.lock:
            if self.bar is not None:
                self.bar.write(text, file=out)
            else:
                print(text, file=out)
                out.flush()

    def close(self) -> None:
        """Finish: the timer stops, the bar is closed, or a last line says where it ended."""
        self.stopped.set()
        if self.timer is not None and self.timer is not threading.current_thread():
            self.timer.join()
        with self.lock:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            elif self.show and self.printed_state != (self.n, self.text):
                self._line()
            self.show = False
