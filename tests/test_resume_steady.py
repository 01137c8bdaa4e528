"""SIGKILL real steady-state runs at targeted instants (a row just landed, a refit under
way, a checkpoint half replaced), resume them, and get exactly what an uninterrupted run
writes: with one worker at any instant, with two whenever the order of completions is fixed
(``tests/cli_driver.py``); results, best cell, events and cost summary alike."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_driver import OrderedExecutor

import evo_nas.search.engine
from evo_nas.reports.summary import cost_line
from evo_nas.rundir.files import RunDir
from evo_nas.search.launch import run_search

DRIVER = Path(__file__).with_name("cli_driver.py")
#: events a resume adds, and the fields that hold wall-clock times
RESUME_EVENTS = {"resume", "requeue", "checkpoint_recovered"}
TIMINGS = {"elapsed_s", "fit_s", "predict_s"}


def _config(tmp_path: Path, table: Path, name: str, surrogate: str, workers: int) -> Path:
    cfg = {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "seed": 5,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table), "delay_s": 0.005}},
        "surrogate": surrogate,
        "search": {"strategy": "steady_state", "population": 8, "sample": 3, "offspring": 4},
        "surrogate_loop": {"warmup": 6, "generations": 2, "promote": 3, "explore": 1},
        "budget": {"evaluations": 40},
        "execution": {"workers": workers},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def _rows(rd: RunDir) -> int:
    try:
        return max(0, len(rd.evaluations_path.read_bytes().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], delay_s: float = 0.0) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the run never reached the instant"
        time.sleep(0.002)
    time.sleep(delay_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _absent_for(path: Path, seconds: float) -> bool:
    """Whether ``path`` is missing now and still after ``seconds``."""
    if path.exists():
        return False
    time.sleep(seconds)
    return not path.exists()


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(timeout=180) == 0, proc.stderr.read().decode()


def _events(rd: RunDir) -> list[dict]:
    return [
        {k: v for k, v in e.items() if k not in TIMINGS}
        for e in rd.read_events()
        if e["event"] not in RESUME_EVENTS
    ]


def _same_run(got: RunDir, ref: RunDir) -> None:
    assert got.evaluations_path.read_bytes() == ref.evaluations_path.read_bytes()
    assert got.read_best() == ref.read_best()
    assert _events(got) == _events(ref)
    durations = re.compile(r"[0-9.]+ (s|min|h)\b")
    assert durations.sub("T", cost_line(got.path)) == durations.sub("T", cost_line(ref.path))
    keys = [r["key"] for r in got.read_evaluations()]
    assert len(keys) == len(set(keys)) == 40


def _reference(tmp_path: Path, table: Path, surrogate: str, workers: int) -> RunDir:
    """The uninterrupted run, in this process (two workers: in the fixed order)."""
    cfg = yaml.safe_load(_config(tmp_path, table, "reference", surrogate, workers).read_text())
    if workers == 1:
        run_search(cfg, progress=False)
    else:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(evo_nas.search.engine, "make_executor", lambda c: OrderedExecutor(workers))
            run_search(cfg, progress=False)
    return RunDir(tmp_path / "runs" / "reference")


def test_one_worker_killed_after_rows_land_resumes_byte_identical(tmp_path, demo_table):
    ref = _reference(tmp_path, demo_table, "random", 1)
    rd = RunDir(tmp_path / "runs" / "killed")
    cfg = _config(tmp_path, demo_table, "killed", "random", 1)
    _kill_when(_start("run", str(cfg)), lambda: _rows(rd) >= 4, 0.005)  # in the warm-up
    for n, delay in ((9, 0.0), (15, 0.01), (22, 0.02), (31, 0.03)):
        _kill_when(_start("resume", str(rd.path)), lambda n=n: _rows(rd) >= n, delay)
    _finish(_start("resume", str(rd.path)))
    _same_run(rd, ref)
    assert sum(e["event"] == "resume" for e in rd.read_events()) == 5
    # a finished run resumed changes nothing
    before = rd.events_path.read_bytes()
    _finish(_start("resume", str(rd.path)))
    assert rd.events_path.read_bytes() == before


def test_one_worker_killed_during_a_refit_and_a_checkpoint_write(tmp_path, demo_table):
    ref = _reference(tmp_path, demo_table, "random", 1)
    rd = RunDir(tmp_path / "runs" / "killed")
    fitting = rd.path / ".fitting"
    cfg = _config(tmp_path, demo_table, "killed", "random", 1)
    _kill_when(_start("run", str(cfg), EVO_NAS_TEST_PAUSE_FIT="3"), fitting.exists)
    fitting.unlink()
    proc = _start("resume", str(rd.path), EVO_NAS_TEST_PAUSE_CHECKPOINT="6")
    _kill_when(proc, lambda: _absent_for(rd.checkpoint_path, 0.2))  # the paused write
    proc = _start("resume", str(rd.path), EVO_NAS_TEST_PAUSE_FIT="2")
    _kill_when(proc, fitting.exists)
    assert b"checkpoint.json: missing; resumed from the checkpoint before it" in proc.stderr.read()
    _finish(_start("resume", str(rd.path)))
    _same_run(rd, ref)


def test_two_workers_in_a_fixed_order_resume_exactly(tmp_path, demo_table):
    ref = _reference(tmp_path, demo_table, "none", 2)
    ordered = {"EVO_NAS_TEST_ORDERED": "1"}
    rd = RunDir(tmp_path / "runs" / "killed")
    cfg = _config(tmp_path, demo_table, "killed", "none", 2)
    _kill_when(_start("run", str(cfg), **ordered), lambda: _rows(rd) >= 5, 0.01)
    for n in (14, 27):
        _kill_when(_start("resume", str(rd.path), **ordered), lambda n=n: _rows(rd) >= n, 0.01)
    _finish(_start("resume", str(rd.path), **ordered))
    _same_run(rd, ref)
    # every resume re-queued the cells its checkpoint held in flight: two workers' worth
    requeued = [e["keys"] for e in rd.read_events() if e["event"] == "requeue"]
    assert len(requeued) == 3 and all(len(keys) == 2 for keys in requeued)
