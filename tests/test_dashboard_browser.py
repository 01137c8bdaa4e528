"""The dashboard in a real browser: headless Chromium opens the page of a search that another
process is still running and sees new evaluations arrive in the table and in the plot, with no
reload; a run folder that does not exist yet, then a run with no result yet, shows why each
plot is empty; a killed run and a crashed one say so, and why. Skipped, with the reason, where
no browser can be driven (``.ci/run`` installs one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from dashboard_helpers import evaluations_written, serving, table_search, wait_for, write_run

from evo_nas.rundir.lock import RunLock
from evo_nas.search.launch import run_search

sys.path.insert(0, str(REPO / "benchmarks"))

import headless  # noqa: E402

MISSING = headless.missing()

#: what the page shows, read in the browser: the table's count, its first row (newest first),
#: the best-so-far curve's last evaluation, the run's badge, and a mark a reload would erase
PAGE = """
const plot = document.getElementById('best-plot');
const curve = plot && plot.data ? plot.data[0] : null;
const first = document.querySelector('#evals tbody tr td');
return {
  count: document.getElementById('eval-count').textContent,
  first: first ? first.textContent : null,
  last_x: curve && curve.x.length ? curve.x[curve.x.length - 1] : null,
  dots: plot && plot.data ? plot.data[plot.data.length - 1].x.length : null,
  state: document.getElementById('run-state').textContent,
  mark: window.evoNasMark || null,
};
"""


@pytest.mark.skipif(MISSING is not None, reason=f"no headless browser to drive: {MISSING}")
def test_a_running_search_updates_the_page_without_a_reload(tmp_path, demo_table) -> None:
    cfg = table_search(tmp_path, demo_table, name="watched", evaluations=60, delay_s=0.4)
    config = tmp_path / "search.yaml"
    config.write_text(json.dumps(cfg))  # YAML reads JSON
    run = subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", "run", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    run_dir = tmp_path / "watched"
    try:
        wait_for(lambda: evaluations_written(run_dir) >= 1, 120, "the run's first evaluation")
        with serving([run_dir], refresh_s=0.5) as server, headless.chromium() as browser:
            browser.get(server.url)
            seen = wait_for(
                lambda: (p := browser.execute_script(PAGE))["last_x"] and p, 60, "a first paint"
            )
            browser.execute_script("window.evoNasMark = 'not reloaded';")
            shown = int(seen["count"].split(" of ")[1])
            assert seen["state"] == "running" and seen["first"] == str(shown)
            assert run.poll() is None, "the search ended before the page could watch it"
            later = wait_for(
                lambda: (
                    (p := browser.execute_script(PAGE))["last_x"] > seen["last_x"]
                    and int(p["count"].split(" of ")[1]) > shown
                    and p
                ),
                60,
                "a new evaluation on the page",
            )
            newest = int(later["count"].split(" of ")[1])
            assert later["first"] == str(newest)  # the new row, at the top of the table
            assert later["dots"] >= seen["dots"] and later["last_x"] <= newest
            assert later["mark"] == "not reloaded"
    finally:
        run.kill()
        run.wait(timeout=30)


#: what the page says where it has nothing to draw, and why a run stopped (None: hidden)
STATES = """
const shown = (id) => {
  const e = document.getElementById(id);
  return e.hidden ? null : e.textContent;
};
return {
  state: document.getElementById('run-state').textContent,
  stop: shown('stop'),
  best_plot: shown('best-plot-empty'),
  scatter: shown('honesty-scatter-empty'),
  tau: shown('honesty-tau-empty'),
  table: shown('evals-empty'),
  best_cell: document.getElementById('best').textContent,
  spend: document.getElementById('spend').textContent,
  log: document.getElementById('log').textContent,
  note: shown('best-note'),
  mark: window.evoNasMark || null,
};
"""

#: the honesty scatter as drawn: its points and axes
SCATTER = """
const plot = document.getElementById('honesty-scatter');
if (plot.hidden || !plot.data) return null;
return {x: plot.data[1].x, y: plot.data[1].y, range: plot.layout.xaxis.range,
        ytitle: plot.layout.yaxis.title.text,
        note: document.getElementById('honesty-note').textContent};
"""


def _page(browser, condition, what: str) -> dict:
    """The page's :data:`STATES` once ``condition`` holds for them."""
    return wait_for(lambda: (p := browser.execute_script(STATES)) and condition(p) and p, 30, what)


@pytest.mark.skipif(MISSING is not None, reason=f"no headless browser to drive: {MISSING}")
def test_a_run_folder_not_there_yet_and_a_run_with_no_result_say_why_plots_are_empty(tmp_path):
    later = tmp_path / "later"
    waiting = f"waiting for {later.resolve()} to be created"
    with serving([later], refresh_s=0.3) as server, headless.chromium() as browser:
        browser.get(server.url)
        page = _page(browser, lambda p: p["state"] == "waiting", "the waiting page")
        assert all(page[k].startswith(waiting) for k in ("best_plot", "scatter", "tau", "table"))
        assert page["stop"] == f"Waiting for {later.resolve()}: no run there yet."
        browser.execute_script("window.evoNasMark = 'not reloaded';")
        rd = write_run(later, table_search(tmp_path, tmp_path / "t.csv", name="later"), [])
        lock = RunLock(rd.lock_path).acquire()  # the run has started: no result yet
        try:
            starting = "no ground-truth result yet: the run is starting"
            page = _page(browser, lambda p: p["state"] == "running", "the run's first look")
            assert [page[k] for k in ("best_plot", "scatter", "tau", "table")] == [starting] * 4
            assert page["stop"] is None and starting in page["best_cell"]
            assert "nothing trained yet, so nothing kept from training" in page["spend"]
            rd.append_event({"event": "screen", "done": 40, "total": 500, "cells_per_s": 8.0})
            screening = "the surrogate is screening candidate cells (40 of 500)"
            page = _page(browser, lambda p: screening in (p["best_plot"] or ""), "the screening")
            assert screening in page["scatter"] and page["mark"] == "not reloaded"
        finally:
            lock.release()


@pytest.mark.skipif(MISSING is not None, reason=f"no headless browser to drive: {MISSING}")
def test_a_killed_and_a_crashed_run_say_so_and_why(tmp_path, demo_table) -> None:
    run_search(table_search(tmp_path, demo_table, name="done", evaluations=12), progress=False)
    config = table_search(tmp_path, demo_table)
    events = [json.loads(line) for line in (tmp_path / "done" / "events.jsonl").open()]
    events = [e for e in events if e["event"] != "done"]  # killed: no done event
    for e in events:
        if e.get("index") == 11:
            e["objective"] = 15000.0  # an outlier must not squash the axes
    killed = write_run(tmp_path / "killed", config, events)
    crash = {"event": "error", "type": "ValueError", "message": "cannot reshape array of size 0"}
    early = write_run(tmp_path / "early", config, [{**crash, "elapsed_s": 3.0}])
    with (
        serving([killed.path, early.path], refresh_s=0.3) as server,
        headless.chromium() as browser,
    ):
        browser.get(server.url)
        page = _page(browser, lambda p: p["state"] == "stopped", "the killed run")
        assert page["stop"].startswith(
            "This run stopped without finishing: no 'done' event and no process writes it"
        )
        assert "it recorded evaluation 12 (promote, round 4: ok)" in page["stop"]
        assert page["best_plot"] is None and page["scatter"] is None and page["tau"] is None
        assert "1 of these evaluations lie above the axis (up to 15,000)" in page["note"]
        scatter = browser.execute_script(SCATTER)
        # predictions shown by rank within their round, in the objective's units: each round's
        # drawn predictions are its true objectives in another order
        assert "predicted rank in its round" in scatter["ytitle"]
        assert sorted(scatter["y"]) == pytest.approx(sorted(scatter["x"]))
        assert scatter["range"][1] < 200 and "as far as 15,000" in scatter["note"]
        killed.append_event({**crash, "elapsed_s": 9.0})
        page = _page(browser, lambda p: p["state"] == "crashed", "the crash")
        assert page["stop"].startswith(
            "This run crashed with ValueError: cannot reshape array of size 0 (its last step"
        )
        assert "crashed: ValueError: cannot reshape array of size 0" in page["log"]
        browser.execute_script(
            "const s = document.getElementById('run-select'); s.value = '1';"
            "s.dispatchEvent(new Event('change'));"
        )
        before = "no ground-truth result: the run crashed (ValueError: cannot reshape array of "
        page = _page(browser, lambda p: (p["table"] or "").startswith(before), "the early crash")
        assert page["scatter"] == page["tau"] == page["table"]
        assert page["best_plot"] is None  # it draws the killed run's curve
        assert "nothing trained yet, so nothing kept from training" in page["spend"]
