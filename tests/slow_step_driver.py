"""The ``evo-nas`` command with a surrogate, ``slow_fit``, whose every fit is a step that lasts
until the progress timer has shown it is alive.

Its ``fit`` blocks the thread that runs the work until the file ``$EVO_NAS_TEST_LOG`` (where
the test sends the command's stderr) has grown by two lines, so those lines can only come from
the progress display's timer; it then appends the lines it saw come (``2``, or fewer when it
gave up after a minute) to ``$EVO_NAS_TEST_WAITS`` and fits as the random floor does.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from evo_nas.cli.commands import main
from search_spaces import Genotype
from surrogates import SURROGATES
from surrogates.random_surrogate import RandomSurrogate

#: lines the timer must print while a fit waits
LINES = 2
#: seconds a fit waits at most (a missing timer then shows as fewer lines seen)
PATIENCE_S = 60.0


def _lines(path: Path) -> int:
    return path.read_text().count("\n")


class SlowFit(RandomSurrogate):
    """The random floor, with fits that last until the progress timer printed two lines."""

    def fit(self, genotypes: Sequence[Genotype], objectives: Sequence[float]) -> SlowFit:
        log = Path(os.environ["EVO_NAS_TEST_LOG"])
        before = _lines(log)
        deadline = time.monotonic() + PATIENCE_S
        while _lines(log) < before + LINES and time.monotonic() < deadline:
            time.sleep(0.01)
        with open(os.environ["EVO_NAS_TEST_WAITS"], "a") as fh:
            fh.write(f"{_lines(log) - before}\n")
        return super().fit(genotypes, objectives)


if __name__ == "__main__":
    SURROGATES.register("slow_fit", SlowFit)
    sys.exit(main())
