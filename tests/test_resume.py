"""SIGKILL a real run at several points, resume it, and get exactly the uninterrupted result."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from evo_nas.execution.executors import InlineExecutor
from evo_nas.rundir.files import RunDir
from evo_nas.search.checkpoint import CheckpointWarning
from evo_nas.search.launch import resume_search, run_search, start_run
from evo_nas_common import statefile
from surrogates import SURROGATES
from surrogates.random_surrogate import RandomSurrogate


def _rows(path: Path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, csv_path: Path, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while _rows(csv_path) < at_least:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "run made no progress"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize(
    "surrogate, algorithm, candidates",
    [("random", "regularized", 0), ("none", "mu_plus_lambda", 0), ("params", "regularized", 40)],
)
def test_kill_and_resume_equals_uninterrupted(
    tmp_path, demo_table, surrogate, algorithm, candidates
):
    cfg = {
        "name": "killed",
        "output_dir": str(tmp_path / "runs"),
        "seed": 11,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table), "delay_s": 0.04}},
        "surrogate": surrogate,
        "search": {"algorithm": algorithm, "population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {
            "warmup": 5,
            "warmup_candidates": candidates,  # the warm start: ranked, not random
            "generations": 2,
            "promote": 3,
            "explore": 1,
        },
        "budget": {"evaluations": 26},
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "runs" / "killed"
    csv_path = run_dir / "evaluations.csv"

    _kill_when(_cli("run", str(path)), csv_path, 3)  # during warm-up
    for point in (11, 19):  # mid-search, at two later points
        _kill_when(_cli("resume", str(run_dir)), csv_path, point)
    done = _cli("resume", str(run_dir))
    assert done.wait(timeout=180) == 0, done.stderr.read().decode()

    reference = dict(cfg, name="reference")
    reference["ground_truth"] = {"name": "table", "options": {"path": str(demo_table)}}
    run_search(reference, progress=False)
    ref = RunDir(tmp_path / "runs" / "reference")
    got = RunDir(run_dir)
    assert got.evaluations_path.read_text() == ref.evaluations_path.read_text()
    assert got.read_best() == ref.read_best()
    keys = [r["key"] for r in got.read_evaluations()]
    assert len(keys) == 26 == len(set(keys))
    events = got.read_events()
    assert sum(e["event"] == "resume" for e in events) == 3
    assert sum(e["event"] == "evaluation" for e in events) == 26

    # the replayed steps wrote their events once, as the uninterrupted run did (no second
    # `promote` or `warm_start`), with the same cost figures
    def logged(rd: RunDir) -> list[dict]:
        timings = {"elapsed_s", "fit_s", "predict_s"}
        return [
            {k: v for k, v in e.items() if k not in timings}
            for e in rd.read_events()
            # what a resume says about itself (a kill during a checkpoint write recovers the
            # one before it) is not the search's
            if e["event"] not in ("resume", "requeue", "checkpoint_recovered")
        ]

    assert logged(got) == logged(ref)


class PairedExecutor(InlineExecutor):
    """Two workers whose evaluations finish together, as equally long trainings do."""

    workers = 2

    def __init__(self) -> None:
        self._waited: set[int] = set()

    def wait(self, handles, timeout):
        handles = list(handles)
        if len(handles) >= 2 or id(handles[0]) in self._waited:
            return handles
        self._waited.add(id(handles[0]))  # a lone evaluation finishes on the next poll
        return []


def test_asynchronous_checkpoints_hold_the_cells_the_workers_run(tmp_path, demo_table, monkeypatch):
    """A killed driver can re-queue only what its last checkpoint says is running."""
    monkeypatch.setattr("evo_nas.search.engine.make_executor", lambda cfg: PairedExecutor())
    cfg = {
        "name": "paired",
        "output_dir": str(tmp_path / "runs"),
        "seed": 3,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogate": "none",
        "search": {"strategy": "steady_state", "population": 4, "sample": 2, "offspring": 2},
        "budget": {"evaluations": 10},
        "execution": {"workers": 2},
    }
    engine, rd = start_run(cfg, progress=False)
    running = {}
    original = engine.cache.on_record

    def on_record(record):
        original(record)  # writes the checkpoint
        running[record["index"]] = set(
            statefile.loads(rd.checkpoint_path.read_bytes())["in_flight"]
        )

    engine.cache.on_record = on_record
    engine.run()
    assert sorted(running) == list(range(1, 11))
    # both workers busy after every record but the last two: the finished pair's successors
    # were submitted before its records (and checkpoints) were written
    # (its partner still waits for its own record after the first of a pair)
    assert [len(running[i]) for i in range(1, 11)] == [3, 2] * 4 + [1, 0]


class VersionedSurrogate(RandomSurrogate):
    """Refuses a state saved by another version, as the Petri dish refuses other options."""

    version = 1

    def state_dict(self) -> dict:
        return {**super().state_dict(), "version": self.version}

    def load_state_dict(self, state: dict) -> None:
        if state["version"] != self.version:
            raise ValueError("state was saved by another version\nsecond line")
        super().load_state_dict(state)


@pytest.fixture
def versioned():
    SURROGATES.register("versioned", VersionedSurrogate)
    yield
    SURROGATES.unregister("versioned")
    VersionedSurrogate.version = 1


def test_a_surrogate_state_that_no_longer_loads_is_refitted_on_resume(
    tmp_path, demo_table, versioned
):
    cfg = {
        "name": "upgraded",
        "output_dir": str(tmp_path / "runs"),
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogate": "versioned",
        "search": {"algorithm": "regularized", "population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 4, "generations": 1, "promote": 2, "explore": 0},
        "budget": {"evaluations": 8},
    }
    run_search(cfg, progress=False)
    run_dir = tmp_path / "runs" / "upgraded"
    rd = RunDir(run_dir)  # killed as the search ended, before its `done` was checkpointed
    os.replace(rd.previous_checkpoint_path, rd.checkpoint_path)
    VersionedSurrogate.version = 2  # the installed surrogate changed between kill and resume
    with pytest.warns(CheckpointWarning, match="refitting it on the 8 results so far"):
        resume_search(run_dir, progress=False)
    events = [e["event"] for e in RunDir(run_dir).read_events()]
    at = events.index("surrogate_refit")
    assert events[at - 1] == "resume" and events[at + 1] == "fit"
    refit = RunDir(run_dir).read_events()[at]
    assert refit["reason"] == "state was saved by another version"
