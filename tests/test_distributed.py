"""Evaluation on Dask (a real LocalCluster on 127.0.0.1) and Ray, with faults survived."""

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
from evo_nas.search.engine import SearchEngine
from evo_nas.search.launch import run_search, start_run

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


def config(
    tmp_path: Path, demo_table: Path, name: str, strategy: str = "generational", **execution
) -> dict:
    return {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "seed": 5,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table), "delay_s": 0.05}},
        "surrogate": "random",
        "search": {"strategy": strategy, "population": 6, "sample": 3, "offspring": 4},
        "surrogate_loop": {"warmup": 6, "generations": 2, "promote": 4},
        "budget": {"evaluations": 18},
        "execution": execution,
    }


def _keys(tmp_path: Path, name: str) -> list[str]:
    return [r["key"] for r in RunDir(tmp_path / "runs" / name).read_evaluations()]


def test_dask_run_evaluates_the_same_cells_as_the_local_backend(tmp_path, demo_table):
    run_search(config(tmp_path, demo_table, "local", workers=2), progress=False)
    run_search(config(tmp_path, demo_table, "dask", backend="dask", workers=2), progress=False)
    assert sorted(_keys(tmp_path, "dask")) == sorted(_keys(tmp_path, "local"))
    assert len(set(_keys(tmp_path, "dask"))) == 18


def test_killed_dask_worker_is_retried_and_nothing_is_lost(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table, "kill", backend="dask", workers=2)
    cfg["ground_truth"]["options"]["delay_s"] = 0.6
    cfg["budget"]["evaluations"] = 8
    engine, rd = start_run(cfg, progress=False)
    killed = []

    def kill_a_busy_worker() -> None:
        client = engine.cache.dispatcher.executor.client
        pids = client.run(os.getpid)
        busy = {w: pids[w] for w, tasks in client.processing().items() if tasks and w in pids}
        if busy and not killed:
            pid = next(iter(busy.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    original = engine.cache.on_record

    def on_record(record):
        original(record)
        if record["index"] == 2:  # evaluations 3..6 are running now
            time.sleep(0.2)
            kill_a_busy_worker()

    engine.cache.on_record = on_record
    engine.run()
    assert killed, "no worker was busy to kill"
    rows = rd.read_evaluations()
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8
    assert all(r["status"] == "ok" for r in rows)
    retries = [e for e in rd.read_events() if e["event"] == "retry"]
    assert retries and "worker lost" in retries[0]["reason"]


def test_killed_driver_resumes_and_requeues_in_flight_cells(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table, "driver", "steady_state", backend="dask", workers=2)
    cfg["ground_truth"]["options"]["delay_s"] = 0.5
    cfg["budget"]["evaluations"] = 10
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    csv_path = tmp_path / "runs" / "driver" / "evaluations.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", "run", str(path), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not csv_path.exists() or len(csv_path.read_text().splitlines()) < 4:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the cluster it started
    proc.wait()
    done = subprocess.run(
        [sys.executable, "-m", "evo_nas.cli", "resume", str(csv_path.parent), "--quiet"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    rd = RunDir(csv_path.parent)
    keys = [r["key"] for r in rd.read_evaluations()]
    assert len(keys) == 10 == len(set(keys))
    requeued = [e for e in rd.read_events() if e["event"] == "requeue"]
    assert requeued and set(requeued[0]["keys"]) <= set(keys)


def test_asynchronous_local_search_keeps_workers_busy(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table, "async", "steady_state", workers=2)
    cfg["surrogate"] = "none"
    cfg["budget"]["evaluations"] = 20
    best = run_search(cfg, progress=False)
    keys = _keys(tmp_path, "async")
    assert len(keys) == 20 == len(set(keys))
    assert best["objective"] == min(
        float(r["objective"]) for r in RunDir(tmp_path / "runs" / "async").read_evaluations()
    )


def test_missing_engine_is_a_clear_config_error(tmp_path, demo_table, monkeypatch):
    from evo_nas.config.errors import ConfigError
    from evo_nas.config.schema import parse_config

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    cfg = parse_config(config(tmp_path, demo_table, "noray", backend="ray"), tmp_path)
    with pytest.raises(ConfigError, match=r"ray is not installed \(pip install evo-nas\[ray\]\)"):
        SearchEngine(cfg, RunDir(tmp_path / "runs" / "noray")).run()


def test_ray_backend_runs_a_search(tmp_path, demo_table):
    pytest.importorskip("ray", reason="ray does not install on this machine")
    run_search(config(tmp_path, demo_table, "local_r", workers=2), progress=False)
    run_search(config(tmp_path, demo_table, "ray", backend="ray", workers=2), progress=False)
    assert sorted(_keys(tmp_path, "ray")) == sorted(_keys(tmp_path, "local_r"))
