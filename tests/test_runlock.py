"""One process at a time in a run directory: a second `run` or `resume` is refused in one line
naming the holder's pid, and the first one's results are intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from evo_nas.rundir.files import RunDir
from evo_nas.rundir.lock import RunLock, RunLocked


def _config(tmp_path: Path, table: Path, name: str, delay_s: float) -> Path:
    cfg = {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "seed": 4,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table), "delay_s": delay_s}},
        "surrogate": "random",
        "search": {"population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 4, "generations": 2, "promote": 3},
        "budget": {"evaluations": 14},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", *args, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_rows(proc: subprocess.Popen, rd: RunDir, n: int) -> None:
    deadline = time.monotonic() + 120
    while not rd.evaluations_path.exists() or len(rd.read_evaluations()) < n:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.01)


def _wait_for_lock(proc: subprocess.Popen, rd: RunDir) -> None:
    """Until ``proc`` holds the run directory (its pid is in the lock file)."""
    deadline = time.monotonic() + 120
    while not (rd.lock_path.exists() and rd.lock_path.read_text().startswith(f"pid {proc.pid} ")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the resumed run never took the lock"
        time.sleep(0.01)


@pytest.fixture
def reference(tmp_path, demo_table) -> str:
    from evo_nas.search.launch import run_search

    cfg = yaml.safe_load(_config(tmp_path, demo_table, "reference", 0.0).read_text())
    run_search(cfg, progress=False)
    return (tmp_path / "runs" / "reference" / "evaluations.csv").read_text()


def _refused_while(first: subprocess.Popen, *args: str) -> str:
    """Run the CLI with ``args`` while ``first`` is in the middle of its run (stopped there,
    so that it cannot finish first); the second one's one line of refusal."""
    os.kill(first.pid, signal.SIGSTOP)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "evo_nas.cli", *args, "--quiet"],
            capture_output=True,
            text=True,
        )
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stderr)
    (line,) = proc.stderr.strip().splitlines()
    return line


def test_a_second_process_is_refused_and_the_first_ends_intact(tmp_path, demo_table, reference):
    config = _config(tmp_path, demo_table, "shared", 0.05)
    rd = RunDir(tmp_path / "runs" / "shared")
    first = _cli("run", str(config))
    _wait_for_rows(first, rd, 2)
    assert rd.lock_path.read_text().startswith(f"pid {first.pid} on ")
    for second in (
        ["run", str(config)],
        ["run", str(config), "--overwrite"],
        ["resume", str(rd.path)],
    ):
        line = _refused_while(first, *second)
        assert line.startswith(f"error: {rd.path}: in use by pid {first.pid} on "), line
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert rd.evaluations_path.read_text() == reference  # nothing twice, nothing lost
    assert rd.lock_path.read_text() == ""  # released


def test_two_resumes_of_one_killed_run(tmp_path, demo_table, reference):
    config = _config(tmp_path, demo_table, "shared", 0.05)
    rd = RunDir(tmp_path / "runs" / "shared")
    first = _cli("run", str(config))
    _wait_for_rows(first, rd, 2)
    first.kill()  # SIGKILL: the kernel drops its lock; the file still names it
    first.wait()
    assert rd.lock_path.read_text().startswith(f"pid {first.pid} ")
    a = _cli("resume", str(rd.path))
    _wait_for_lock(a, rd)  # (the killed run's rows are there already: they prove nothing)
    line = _refused_while(a, "resume", str(rd.path))
    assert line.startswith(f"error: {rd.path}: in use by pid {a.pid} on "), line
    assert a.wait(timeout=120) == 0, a.stderr.read()
    assert rd.evaluations_path.read_text() == reference


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    lock = RunLock(tmp_path / "run.lock").acquire()
    with pytest.raises(RunLocked, match=r"in use by pid \d+ on "):
        RunLock(tmp_path / "run.lock").acquire()
    lock.release()
    RunLock(tmp_path / "run.lock").acquire().release()  # free again
    assert (tmp_path / "run.lock").read_text() == ""
