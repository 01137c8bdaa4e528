"""The dashboard in a real browser: headless Chromium opens the page of a search that another
process is still running and sees new evaluations arrive in the table and in the plot, with no
reload. Skipped, with the reason, where no browser can be driven (``.ci/run`` installs one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO
from dashboard_helpers import evaluations_written, serving, table_search, wait_for

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
