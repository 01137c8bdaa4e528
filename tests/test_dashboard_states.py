"""What the dashboard says of a run with little or nothing to show: why each plot is empty,
why a run stopped (finished, crashed, killed), rounds too small for their own tau, what the
spent-and-saved panel claims with no training, runs of different ground truths, a run folder
that does not exist yet, and the cell drawing's node names (the key's)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from dashboard_helpers import evaluation, table_search, write_run
from scipy.stats import kendalltau

from evo_nas.dashboard.runs import (
    MIN_TAU_CELLS,
    DashboardError,
    RunFeed,
    RunSet,
    ground_truth_of,
)
from evo_nas.rundir.lock import RunLock
from evo_nas.search.launch import run_search
from search_spaces import get_space
from surrogates.random_surrogate import RandomSurrogate


def _config(tmp_path: Path, **changes) -> dict:
    """A table search's config as a run directory holds it (4 warm-up cells)."""
    return {**table_search(tmp_path, tmp_path / "table.csv"), **changes}


def _feed(path: Path) -> RunFeed:
    feed = RunFeed(path, path.name)
    feed.refresh()
    return feed


# -- why a run stopped -------------------------------------------------------------------------
def test_a_finished_run_gives_the_done_events_reason(tmp_path, demo_table) -> None:
    run_search(table_search(tmp_path, demo_table, name="done", evaluations=6), progress=False)
    feed = _feed(tmp_path / "done")
    assert feed.state() == "finished"
    assert feed.reason() == "finished: evaluation budget spent"
    assert feed.payload(None, 0)["reason"] == "finished: evaluation budget spent"


def test_a_run_without_a_done_event_says_so_with_its_last_step(tmp_path) -> None:
    events = [evaluation(i, 100.0 + i, elapsed_s=i) for i in range(1, 5)]
    events += [
        {"event": "fit", "round": 1, "n": 4, "fit_s": 0.1, "elapsed_s": 4.5},
        evaluation(5, 101.0, rnd=1, predicted=0.3, elapsed_s=6.0),
    ]
    rd = write_run(tmp_path / "killed", _config(tmp_path), events)
    feed = _feed(rd.path)
    assert feed.state() == "stopped"
    assert feed.reason() == (
        "stopped without finishing: no 'done' event and no process writes it (killed, or "
        "ended before it could say why); its last step, 6.0 s in: it recorded evaluation 5 "
        "(promote, round 1: ok)"
    )
    # the crash the engine records before the exception propagates
    rd.append_event(
        {"event": "error", "type": "ValueError", "message": "cannot reshape", "elapsed_s": 7}
    )
    feed.refresh()
    page = feed.payload(None, 0)
    assert page["state"] == "crashed"
    assert page["reason"] == (
        "crashed with ValueError: cannot reshape (its last step, 6.0 s in: it recorded "
        "evaluation 5 (promote, round 1: ok))"
    )
    assert page["log"][-1]["text"] == "crashed: ValueError: cannot reshape"
    # a resume (a later process) is news: the crash is history
    rd.append_event({"event": "resume", "evaluations": 5, "elapsed_s": 7.5})
    feed.refresh()
    assert feed.state() == "stopped" and "resumed with 5 evaluations" in feed.reason()
    lock = RunLock(rd.lock_path).acquire()
    try:
        feed.refresh()
        assert feed.state() == "running" and feed.reason() is None
    finally:
        lock.release()


def test_a_search_that_raises_leaves_an_error_event_the_page_shows(
    tmp_path, demo_table, monkeypatch
) -> None:
    def broken_fit(self, genotypes, objectives):
        raise ValueError("cannot reshape array of size 0\nthe rest of the message")

    monkeypatch.setattr(RandomSurrogate, "fit", broken_fit)
    with pytest.raises(ValueError, match="cannot reshape"):
        run_search(table_search(tmp_path, demo_table, name="crash"), progress=False)
    run_dir = tmp_path / "crash"
    last = json.loads((run_dir / "events.jsonl").read_text().splitlines()[-1])
    assert {k: last[k] for k in ("event", "type", "message")} == {
        "event": "error",
        "type": "ValueError",
        "message": "cannot reshape array of size 0",
    }
    page = _feed(run_dir).payload(None, 0)
    assert page["state"] == "crashed" and len(page["rows"]) == 4  # the warm-up, then the fit
    assert page["reason"].startswith("crashed with ValueError: cannot reshape array of size 0 (")
    assert page["empty"]["predictions"] == (
        "no promoted cell has its ground-truth result yet; the run crashed "
        "(ValueError: cannot reshape array of size 0)"
    )


# -- spent and saved ---------------------------------------------------------------------------
def test_nothing_is_kept_from_the_ground_truth_when_nothing_was_trained(tmp_path) -> None:
    done = {"event": "done", "reason": "time budget spent", "screened": 500, "elapsed_s": 20}
    feed = _feed(write_run(tmp_path / "none", _config(tmp_path), [done]).path)
    spend = feed.spend()
    assert spend["evaluations"] == 0 and spend["screened"] == 500
    assert spend["kept_from_truth"] is None and spend["saved_s"] is None
    assert feed.empty()["evaluations"] == (
        "no ground-truth result: the run finished (time budget spent) before any"
    )
    trained = [evaluation(1, 100.0), evaluation(2, 110.0), done]
    spend = _feed(write_run(tmp_path / "two", _config(tmp_path), trained).path).spend()
    assert spend["kept_from_truth"] == 498 and spend["saved_s"] == pytest.approx(498 * 60.0)


# -- why a plot is empty -----------------------------------------------------------------------
def test_each_empty_plot_says_why(tmp_path) -> None:
    rd = write_run(tmp_path / "live", _config(tmp_path), [])
    lock = RunLock(rd.lock_path).acquire()
    try:
        feed = _feed(rd.path)
        starting = "no ground-truth result yet: the run is starting"
        assert feed.empty() == {"evaluations": starting, "predictions": starting, "tau": starting}
        rd.append_event({"event": "screen", "done": 40, "total": 500, "elapsed_s": 1})
        feed.refresh()
        screening = (
            "no ground-truth result yet: the surrogate is screening candidate cells (40 of 500)"
        )
        assert feed.empty()["evaluations"] == screening
        rd.append_event(evaluation(1, 100.0))
        rd.append_event(evaluation(2, 101.0))
        feed.refresh()
        assert feed.empty() == {
            "evaluations": None,
            "predictions": "no prediction to check yet: the first 4 cells are the warm-up, "
            "chosen before the surrogate is fitted (2 in)",
            "tau": "no prediction to check yet: the first 4 cells are the warm-up, "
            "chosen before the surrogate is fitted (2 in)",
        }
        rd.append_event(evaluation(3, float("inf"), rnd=1, predicted=0.2))
        feed.refresh()
        assert feed.empty()["predictions"].startswith("every cell predicted so far diverged")
        rd.append_event(evaluation(4, 103.0, rnd=1, predicted=0.1))
        feed.refresh()
        empty = feed.empty()
        assert empty["predictions"] is None
        assert empty["tau"] == (
            "1 cell(s) with a prediction and a result so far: a rank correlation needs two "
            "of one round with different results"
        )
        rd.append_event(evaluation(5, 102.0, rnd=1, predicted=0.4))
        feed.refresh()
        assert feed.empty() == {"evaluations": None, "predictions": None, "tau": None}
    finally:
        lock.release()
    plain = write_run(tmp_path / "plain", _config(tmp_path, surrogate=None), [evaluation(1, 9.0)])
    empty = _feed(plain.path).empty()
    assert empty["evaluations"] is None
    assert empty["predictions"] == empty["tau"]
    assert empty["predictions"].startswith("this run has no surrogate")


# -- rounds too small for a tau ----------------------------------------------------------------
def test_a_rounds_own_tau_needs_enough_cells_and_small_rounds_count_when_pooled(tmp_path):
    assert MIN_TAU_CELLS == 5
    rng = np.random.default_rng(0)
    events, index, sizes = [], 0, {1: 2, 2: 4, 3: 5, 4: 9}
    truth: dict[int, tuple[list[float], list[float]]] = {}
    for rnd, n in sizes.items():
        for _ in range(n):
            index += 1
            objective, predicted = float(rng.normal(100, 5)), float(rng.normal())
            events.append(evaluation(index, objective, rnd=rnd, predicted=predicted))
            truth.setdefault(rnd, ([], []))[0].append(predicted)
            truth[rnd][1].append(objective)
    honesty = _feed(write_run(tmp_path / "r", _config(tmp_path), events).path).honesty()
    assert [h["round"] for h in honesty] == [1, 2, 3, 4]
    assert [h["n"] for h in honesty] == [2, 4, 5, 9]
    assert honesty[0]["tau"] is None and honesty[1]["tau"] is None  # 2 and 4 cells: none
    taus = {r: kendalltau(*truth[r]).statistic for r in sizes}
    assert honesty[2]["tau"] == pytest.approx(taus[3])
    assert honesty[3]["tau"] == pytest.approx(taus[4])
    pairs = {r: n * (n - 1) / 2 for r, n in sizes.items()}
    pooled = sum(taus[r] * pairs[r] for r in sizes) / sum(pairs.values())
    assert honesty[3]["pooled_tau"] == pytest.approx(pooled)  # every round's pairs count


# -- runs of different ground truths -----------------------------------------------------------
def test_runs_of_different_ground_truths_get_an_axis_each(tmp_path) -> None:
    def table(path: str, **options) -> dict:
        return {"name": "table", "options": {"path": path, **options}}

    runs = {
        "a": table("/data/first.csv"),
        "b": table("/data/first.csv", delay_s=0.5),  # how it runs, not what it measures
        "c": table("/data/second.csv"),
    }
    paths = [
        write_run(tmp_path / name, _config(tmp_path, ground_truth=gt), [evaluation(1, 1.0)]).path
        for name, gt in runs.items()
    ]
    overview = RunSet(paths).overview()
    assert overview["axes"] == [
        {"label": "table (path: first.csv)", "runs": [0, 1]},
        {"label": "table (path: second.csv)", "runs": [2]},
    ]
    assert [s["axis"] for s in overview["series"]] == [0, 0, 1]
    nb = {"name": "nasbench_nlp", "options": {"metric": "val_ppl", "epoch": None}}
    other = {"name": "nasbench_nlp", "options": {"metric": "test_ppl", "epoch": None}}
    assert ground_truth_of({"ground_truth": nb})[1] == "nasbench_nlp (metric: val_ppl)"
    assert ground_truth_of({"ground_truth": nb})[0] != ground_truth_of({"ground_truth": other})[0]


# -- a run folder that does not exist yet ------------------------------------------------------
def test_a_run_folder_that_does_not_exist_yet_is_waited_for(tmp_path, demo_table) -> None:
    later = tmp_path / "later"
    runs = RunSet([later])
    first = runs.overview()
    assert first["runs"] == [] and first["waiting"] == [str(later.resolve())]
    assert runs.overview(first["version"]) == {"unchanged": True, "version": first["version"]}
    run_search(table_search(tmp_path, demo_table, name="later", evaluations=5), progress=False)
    now = runs.overview(first["version"])
    assert now["waiting"] == [] and [(r["name"], r["evaluations"]) for r in now["runs"]] == [
        ("later", 5)
    ]
    # a compare folder, waited for the same way, is followed as one once it appears
    folder = tmp_path / "cmp"
    runs = RunSet([folder])
    write_run(folder / "runs" / "evolution__s0", _config(tmp_path), [evaluation(1, 1.0)])
    assert [(r["name"], r["group"]) for r in runs.overview()["runs"]] == [
        ("evolution__s0", "evolution")
    ]


def test_a_path_that_cannot_become_a_run_is_refused(tmp_path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(DashboardError, match="file: not a directory"):
        RunSet([tmp_path / "file"])
    with pytest.raises(DashboardError, match="neither a run directory"):
        RunSet([tmp_path])  # holds a file that is no run's
    starting = tmp_path / "starting"
    starting.mkdir()
    (starting / "run.lock").write_text("")  # a run takes its lock before writing its config
    assert RunSet([starting]).pending == [starting.resolve()]


def test_the_command_waits_for_a_run_folder_and_says_so(tmp_path) -> None:
    later = tmp_path / "later"
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", "dashboard", str(later), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout.readline().startswith("evo-nas dashboard of 0 run(s): http://")
        assert proc.stdout.readline().strip() == (
            f"waiting for {later.resolve()}: no run there yet; the page shows it once one starts"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# -- node names --------------------------------------------------------------------------------
def test_the_cell_drawing_names_nodes_as_the_key_does() -> None:
    space = get_space("nasbench_nlp")
    rng = np.random.default_rng(3)
    for _ in range(30):
        genotype = space.sample(rng)
        labels, edges = space.graph(genotype)
        drawn = {
            name: (label.split(": ")[1], sorted(a for a, b in edges if b == name))
            for name, label in labels.items()
            if ": " in label
        }
        keyed = {}
        for part in space.key(genotype).split(";"):
            name, op, inputs = re.fullmatch(r"(\w+)=(\w+)\((.*)\)", part).groups()
            keyed[name] = (op.removeprefix("activation_"), sorted(inputs.split(",")))
        assert drawn == keyed
        assert any(name.startswith("node_") for name, _, _ in genotype)  # renamed, not kept
