"""Logs that read well: a bar only on a terminal, plain lines at an interval in a file or a
pipe; the surrogate's screening shown and (when long) recorded as rare ``screen`` events that
the report, a resume and the dashboard take in their stride."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO
from dashboard_helpers import table_search

import evo_nas.rundir.events as events_module
from evo_nas.cli.commands import main
from evo_nas.dashboard.runs import RunFeed
from evo_nas.reports.summary import progress_table
from evo_nas.rundir.events import EventSink
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.progress import INTERVAL_VARIABLE, Progress, duration, line_interval
from evo_nas.search.launch import resume_search, run_search
from search_spaces import Genotype
from surrogates import SURROGATES
from surrogates.base import Capabilities
from surrogates.random_surrogate import RandomSurrogate

DRIVER = REPO / "tests" / "slow_step_driver.py"


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
    assert lines[1] == "training: 15/100 batch, 15 s elapsed, 1 batch/s, about 85 s left, loss 15.0"
    assert lines[4] == "training: 60/100 batch, 60 s elapsed, 1 batch/s, about 40 s left, loss 60.0"
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
        "ground-truth evaluations: 0/12 eval, 16 s elapsed, "
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


# -- the timer ----------------------------------------------------------------------------------
class Signalling(io.StringIO):
    """An output (not a terminal) that tells a waiting test each line written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Condition()

    def write(self, text: str) -> int:
        with self.written:
            n = super().write(text)
            self.written.notify_all()
        return n

    def wait_lines(self, count: int, timeout: float = 60.0) -> list[str]:
        with self.written:
            self.written.wait_for(lambda: self.getvalue().count("\n") >= count, timeout)
            return self.getvalue().splitlines()


def test_the_timer_prints_a_line_while_a_step_reports_nothing() -> None:
    out = Signalling()
    bar = Progress("searches", total=4, unit="search", stream=out, interval_s=0.05)
    bar.status("last: a__s0", refresh=False)
    printed = len(out.wait_lines(1))
    lines = out.wait_lines(printed + 2)  # nothing else prints now: these lines are the timer's
    bar.close()
    assert not bar.timer.is_alive()
    assert lines[0] == "searches: 0/4 search"
    for line in lines[printed : printed + 2]:
        assert re.fullmatch(r"searches: 0/4 search, \S+ s elapsed, last: a__s0", line), line


def test_a_screening_shows_while_its_first_part_runs(tmp_path, monkeypatch) -> None:
    rd = RunDir(tmp_path / "run")
    rd.create({"name": "run"})
    monkeypatch.setenv(INTERVAL_VARIABLE, "0.05")
    monkeypatch.setattr(sys, "stderr", out := Signalling())
    sink = EventSink(rd, time.monotonic, tensorboard=False)
    sink.open_progress(total=12, done=0, show=True)
    sink.training_progress({"event": "screen", "done": 0, "total": 500})  # the dish starts
    printed = len(out.wait_lines(1))
    lines = out.wait_lines(printed + 1)  # while it records its first cells: the timer's line
    sink.close_progress()
    assert lines[0] == "ground-truth evaluations: 0/12 eval"
    assert re.fullmatch(
        r"ground-truth evaluations: 0/12 eval, \S+ s elapsed, surrogate screening cells: 0/500",
        lines[printed],
    )


def test_the_interval_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)
    assert line_interval() == 15.0
    for value, expected in (("0.5", 0.5), ("2", 2.0), ("0", 15.0), ("-1", 15.0), ("x", 15.0)):
        monkeypatch.setenv(INTERVAL_VARIABLE, value)
        assert line_interval() == expected
        assert Progress("x", show=False).interval_s == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.04, "0.0 s"),
        (0.4, "0.4 s"),
        (9.9, "9.9 s"),
        (42.4, "42 s"),
        (89.4, "89 s"),
        (90, "1.5 min"),
        (3600, "60.0 min"),
        (5400, "1.5 h"),
        (440868.8, "122.5 h"),
        (math.inf, "?"),
    ],
)
def test_one_way_to_write_a_cost_or_a_duration(seconds, text) -> None:
    assert duration(seconds) == text


# -- redirected logs of the commands --------------------------------------------------------------
def _command(tmp_path, *args: str) -> tuple[str, str, list[int]]:
    """``evo-nas ARGS`` (with the ``slow_fit`` surrogate) in a subprocess writing to files, the
    progress timer every 0.05 s; its stdout, its stderr and the lines each fit saw the timer
    print while it held the work up."""
    out, err, waits = (tmp_path / n for n in ("stdout.log", "stderr.log", "waits.txt"))
    env = {
        **os.environ,
        INTERVAL_VARIABLE: "0.05",
        "EVO_NAS_TEST_LOG": str(err),
        "EVO_NAS_TEST_WAITS": str(waits),
    }
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.run(
            [sys.executable, str(DRIVER), *args],
            stdout=o,
            stderr=e,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
    assert proc.returncode == 0, err.read_text()[-2000:]
    seen = [int(x) for x in waits.read_text().split()] if waits.exists() else []
    return out.read_text(), err.read_text(), seen


def _plain(*texts: str) -> None:
    for text in texts:
        assert "\r" not in text and "\x1b" not in text


def test_a_redirected_run_log_is_plain_lines_on_a_timer(tmp_path, demo_table) -> None:
    cfg = table_search(tmp_path / "runs", demo_table, name="logged", surrogate="slow_fit")
    cfg["logging"]["progress"] = True
    (tmp_path / "search.yaml").write_text(json.dumps(cfg))
    out, err, waits = _command(tmp_path, "run", "search.yaml")
    _plain(out, err)
    assert len(waits) >= 2 and min(waits) >= 2  # every fit: the timer's lines came meanwhile
    assert err.startswith("ground-truth evaluations: 0/8 eval\n")
    assert re.search(r"^ground-truth evaluations: \d/8 eval, \S+ s elapsed, .*best \d+", err, re.M)
    # the end says where the results are and what to run next, with paths that work from here
    tail = out.splitlines()[-5:]
    assert tail[0] == "results in runs/logged; next:"
    assert [line.split("#")[0].split() for line in tail[1:]] == [
        ["evo-nas", "show", "runs/logged", "--plots"],
        ["evo-nas", "dashboard", "runs/logged"],
        ["evo-nas", "export", "runs/logged", "--top", "5"],
        ["evo-nas", "train", "--run", "runs/logged", "--rank", "1"],
    ]


def test_redirected_compare_logs_are_plain_lines_on_a_timer(tmp_path, demo_table) -> None:
    table = {"name": "table", "options": {"path": str(demo_table)}}
    space = {"name": "darts_rnn", "options": {"nodes": 4}}
    predict = {
        "name": "cmp",
        "output_dir": "out",
        "space": space,
        "ground_truth": table,
        "surrogates": ["slow_fit", "random"],
        "sizes": [5],
        "seeds": [0],
        "test": {"size": 30},
        "n_jobs": 1,
    }
    (tmp_path / "predict.yaml").write_text(json.dumps(predict))
    out, err, waits = _command(tmp_path, "compare", "predict", "predict.yaml")
    _plain(out, err)
    assert waits and min(waits) >= 2
    assert err.startswith("grid cells: 0/2 cell\n")
    assert re.search(r"^grid cells: 0/2 cell, \S+ s elapsed$", err, re.M)  # while slow_fit fits
    assert "| slow_fit | 5 | 1 |" in out
    base = table_search(tmp_path, demo_table, surrogate="slow_fit")
    (tmp_path / "base.yaml").write_text(json.dumps(base))
    search = {"name": "cs", "output_dir": "out", "base": "base.yaml", "seeds": [0, 1], "n_jobs": 1}
    search["methods"] = [{"label": "slow", "surrogate": "slow_fit"}]
    (tmp_path / "search.yaml").write_text(json.dumps(search))
    out, err, waits = _command(tmp_path, "compare", "search", "search.yaml")
    _plain(out, err)
    assert len(waits) >= 4 and min(waits) >= 2  # two searches, each fitting more than once
    assert err.startswith("searches: 0/2 search\n")
    assert re.search(r"^searches: 1/2 search, \S+ s elapsed, .*last: slow__s0$", err, re.M)
    assert "surrogate time per run" in out
