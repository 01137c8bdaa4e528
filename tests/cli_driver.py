"""The ``evo-nas`` command, with what a kill test needs to aim at an instant.

The kill tests start this script instead of ``python -m evo_nas.cli``. Environment variables
make an instant last long enough to be hit, or make the order of completions fixed:

- ``EVO_NAS_TEST_ORDERED=1``: local worker processes whose results are taken in the order
  they were submitted (real processes; only the order of completions is fixed), so that two
  runs with several workers can be compared exactly.
- ``EVO_NAS_TEST_PAUSE_FIT=K``: the K-th surrogate fit of this process touches
  ``RUN_DIR/.fitting`` and sleeps 30 s inside the fit.
- ``EVO_NAS_TEST_PAUSE_CHECKPOINT=K``: the K-th checkpoint write of this process sleeps 30 s
  between moving the latest checkpoint aside and renaming the new one into place (the
  instant when ``checkpoint.json`` does not exist).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import time
from pathlib import Path

import evo_nas.search.engine
from evo_nas.cli.commands import main
from evo_nas.execution.executors import LocalExecutor
from evo_nas.search.fitness import Fitness


class OrderedExecutor(LocalExecutor):
    """Local worker processes whose results are taken oldest first, one at a time."""

    def wait(self, handles, timeout):
        handles = list(handles)
        if not handles:
            return []
        done, _ = cf.wait(handles[:1], timeout=timeout)
        return list(done)


def _nth(variable: str) -> int | None:
    value = os.environ.get(variable)
    return int(value) if value else None


def _install() -> None:
    if os.environ.get("EVO_NAS_TEST_ORDERED"):
        evo_nas.search.engine.make_executor = lambda cfg: OrderedExecutor(cfg.workers)
    fit_at = _nth("EVO_NAS_TEST_PAUSE_FIT")
    if fit_at is not None:
        fit, calls = Fitness.fit, [0]

        def paused_fit(self: Fitness) -> None:
            calls[0] += 1
            if calls[0] == fit_at:
                (self.events.run_dir.path / ".fitting").touch()
                time.sleep(30)
            fit(self)

        Fitness.fit = paused_fit
    write_at = _nth("EVO_NAS_TEST_PAUSE_CHECKPOINT")
    if write_at is not None:
        replace, calls = os.replace, [0]

        def paused_replace(src, dst) -> None:
            replace(src, dst)
            if Path(dst).name == "checkpoint.prev.json":
                calls[0] += 1
                if calls[0] == write_at:
                    time.sleep(30)

        os.replace = paused_replace


if __name__ == "__main__":
    _install()
    sys.exit(main())
