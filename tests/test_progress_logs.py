"""Logs that read well: a bar only on a terminal, plain lines at an interval in a file or a
pipe; the surrogate's screening shown and (when long) recorded as rare ``screen`` events that
the report, a resume and the dashboard take in their stride."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence

import numpy as np
import pytest
from click.testing import CliRunner
from dashboard_helpers import table_search

import evo_nas.rundir.events as events_module
from evo_nas.cli.commands import main
from evo_nas.dashboard.runs import RunFeed
from evo_nas.reports.summary import progress_table
from evo_nas.rundir.events import EventSink
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.progress import Progress
from evo_nas.search.launch import resume_search, run_search
from search_spaces import Genotype
from surrogates import SURROGATES
from surrogates.base import Capabilities
from surrogates.random_surrogate import RandomSurrogate


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    """An output that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal_at_most_once_an_interval() -> None:
    out, clock = io.StringIO(), Clock()
    bar = Progress("training", total=100, unit="batch", stream=out, interval_s=15, clock=clock)
    for _ in range(60):  # 60 batches, one a second
        clock.now += 1
        bar.status(f"loss {clock.now:.1f}", refresh=False)
        bar.update()
    bar.note("epoch 1: valid ppl 123.45")
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "training: 0/100 batch"
    # then every 15 s: the count, the speed, the time left and the status
    assert lines[1] == "training: 15/100 batch, 1 batch/s, about 85 s left, loss 15.0"
    assert lines[4] == "training: 60/100 batch, 1 batch/s, about 40 s left, loss 60.0"
    assert lines[5:] == ["epoch 1: valid ppl 123.45"]  # close: nothing new since line 4


def test_a_bar_only_on_a_terminal_and_nothing_when_hidden() -> None:
    tty = Terminal()
    bar = Progress("training", total=10, unit="batch", stream=tty)
    for _ in range(10):
        bar.update()
    bar.close()
    assert "\r" in tty.getvalue() and "10/10" in tty.getvalue()
    quiet = io.StringIO()
    bar = Progress("training", total=10, stream=quiet, show=False)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_a_long_screening_leaves_rare_screen_events_and_plain_lines(tmp_path, capsys) -> None:
    rd = RunDir(tmp_path / "run")
    rd.create({"name": "run"})
    clock = Clock()
    sink = EventSink(rd, clock, tensorboard=False)
    sink.open_progress(total=12, done=0, show=True)
    for done in range(50, 501, 50):  # 500 cells in 4 s: no event for so short a pass
        clock.now += 0.4
        sink.training_progress({"event": "screen", "done": done, "total": 500})
    assert rd.read_events() == []
    for done in range(100, 2001, 100):  # 2000 cells in 30 s: a first event 5 s into the
        clock.now += 1.5  # pass, then one each 5 s at most, and one at its end
        sink.training_progress({"event": "screen", "done": done, "total": 2000})
    sink.close_progress()
    screens = rd.read_events()
    assert [(e["done"], e["elapsed_s"]) for e in screens] == [
        (500, 11.5),
        (900, 17.5),
        (1300, 23.5),
        (1700, 29.5),
        (2000, 34.0),
    ]
    assert screens[0] == {
        "event": "screen",
        "done": 500,
        "total": 2000,
        "cells_per_s": 66.7,
        "left_s": 22.5,
        "elapsed_s": 11.5,
    }
    assert sink.written == len(screens)
    rd.check_events(sink.written, 0)  # what a resume checks before cutting the log back
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert lines[0] == "ground-truth evaluations: 0/12 eval"
    assert lines[1] == (  # 15 s after the first line
        "ground-truth evaluations: 0/12 eval, "
        "surrogate screening cells: 800/2000, 66.7 cells/s, about 18 s left"
    )


class ScreeningSurrogate(RandomSurrogate):
    """The random floor, reporting its predictions as the dish reports its screening."""

    capabilities = Capabilities(ranks_unfitted=True, progress=True)

    def predict(self, genotypes: Sequence[Genotype]) -> np.ndarray:
        for done in range(4, len(genotypes) + 4, 4):
            if self.progress is not None:
                self.progress({"event": "screen", "done": min(done, len(genotypes)),
                               "total": len(genotypes)})  # fmt: skip
        return super().predict(genotypes)


@pytest.fixture
def screening(monkeypatch):
    SURROGATES.register("screening", ScreeningSurrogate)
    monkeypatch.setattr(events_module, "SCREEN_EVENT_S", 0.0)  # every report is a line
    yield
    SURROGATES.unregister("screening")


def test_screen_events_are_counted_so_a_resume_cuts_the_log_right(
    tmp_path, demo_table, screening
) -> None:
    cfg = table_search(tmp_path, demo_table, name="screened", evaluations=8)
    cfg["surrogate"] = "screening"
    cfg["surrogate_loop"]["warmup_candidates"] = 30
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "screened")
    kinds = [e["event"] for e in rd.read_events()]
    assert kinds.count("screen") > 8 and kinds.count("evaluation") == 8
    head = json.loads(rd.checkpoint_path.read_bytes())
    assert head["events_written"] == len(kinds)  # screen lines and the done event included
    resume_search(rd.path, progress=False)  # checks every line; a finished run stays as it is
    assert [e["event"] for e in rd.read_events()] == kinds
    assert "8 evaluations" in progress_table(rd.path)
    feed = RunFeed(rd.path, "screened")
    feed.refresh()
    page = feed.payload(None, 0)
    assert len(page["rows"]) == 8 and page["notices"] == [] and page["screen"] is None


def test_run_prints_plain_lines_off_a_terminal(tmp_path, demo_table) -> None:
    cfg = table_search(tmp_path, demo_table, name="cli", evaluations=8)
    cfg["logging"]["progress"] = True
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(cfg))
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(path)])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output
    assert result.output.startswith("ground-truth evaluations: 0/8 eval\n")
    assert re.search(
        r"^ground-truth evaluations: 8/8 eval, .*best \d+\.\d{4}$", result.output, re.M
    )
    assert re.search(r"^best objective \d+\.\d{4} \(evaluation \d+ of 8\)", result.output, re.M)
