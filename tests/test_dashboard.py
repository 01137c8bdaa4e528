"""The data the dashboard's page reads: real runs read while they are written, a compare
folder by method, damaged lines skipped with a notice, nothing outside the runs served and
nothing in a run directory written; and the command line that starts it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import refused
from click.testing import CliRunner
from conftest import REPO
from dashboard_helpers import evaluations_written, get, get_json, serving, table_search, wait_for
from scipy.stats import kendalltau

from evo_nas.cli.commands import main
from evo_nas.compare.search import SearchCompareConfig, run_search_comparison
from evo_nas.config.schema import validate_model
from evo_nas.dashboard.runs import RunFeed, RunSet, checkpoint_head, kendall
from evo_nas.dashboard.server import is_loopback, required_token
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.lock import RunLock
from evo_nas.search.launch import run_search


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, demo_table: Path) -> Path:
    """A real search over the demo table, finished: 12 evaluations with a surrogate."""
    out = tmp_path_factory.mktemp("runs")
    run_search(table_search(out, demo_table, name="done", evaluations=12), progress=False)
    return out / "done"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_a_run_is_read_while_a_real_search_writes_it(tmp_path, demo_table) -> None:
    cfg = table_search(tmp_path, demo_table, evaluations=8, delay_s=0.25)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (run_search(cfg, progress=False), done.set()))
    thread.start()
    run_dir = tmp_path / "live"
    try:
        wait_for(lambda: evaluations_written(run_dir) >= 2, what="two evaluations")
        with serving([run_dir]) as server:
            first = get_json(server, "/api/run/0")
            assert first["state"] == "running" and f"pid {os.getpid()}" in first["holder"]
            assert first["restart"] and 2 <= len(first["rows"]) < 8
            n = len(first["rows"])
            assert [r["i"] for r in first["rows"]] == list(range(1, n + 1))
            thread.join(timeout=120)
            assert done.is_set()
            query = f"epoch={first['epoch']}&n={n}&v={first['version']}"
            second = get_json(server, f"/api/run/0?{query}")
            # only what the page lacks, from where it stopped
            assert not second["restart"] and second["start"] == n
            assert [r["i"] for r in second["rows"]] == list(range(n + 1, 9))
            assert second["state"] == "finished" and second["finished"] == "evaluation budget spent"
            # the promoted cells' predictions, made before the ground truth answered
            promoted = [r for r in first["rows"] + second["rows"] if r["p"] == "promote"]
            assert promoted and all(r["pr"] is not None for r in promoted)
            assert [h["round"] for h in second["honesty"]] == [1, 2]
            # rounds of 2 cells: no tau of their own (it could only be -1 or 1), but pooled
            assert all(h["n"] == 2 and h["tau"] is None for h in second["honesty"])
            assert all(-1 <= h["pooled_tau"] <= 1 for h in second["honesty"])
            spend = second["spend"]
            assert spend["evaluations"] == 8 and spend["evaluations_left"] == 0
            assert spend["screened"] > 0 and spend["in_flight"] == []
            third = get_json(
                server, f"/api/run/0?epoch={second['epoch']}&n=8&v={second['version']}"
            )
            assert third == {"unchanged": True, "version": second["version"], "epoch": 1}
            curve = get_json(server, "/api/overview")["series"][0]
            assert curve["x"][-1] == 8 and curve["y"] == sorted(curve["y"], reverse=True)
    finally:
        thread.join(timeout=120)


def test_a_resumed_run_is_read_again_from_its_new_log(finished_run, tmp_path) -> None:
    rd = RunDir(tmp_path / "copy")
    rd.path.mkdir()
    for name in ("config.yaml", "events.jsonl", "evaluations.csv", "checkpoint.json"):
        (rd.path / name).write_bytes((finished_run / name).read_bytes())
    feed = RunFeed(rd.path, "copy")
    feed.refresh()
    before = feed.payload(None, 0)
    assert len(before["rows"]) == 12
    rd.truncate_events(5)  # what a resume does to the lines its checkpoint does not know
    rd.append_event({"event": "resume", "evaluations": 3, "elapsed_s": 1.0})
    assert feed.refresh()
    after = feed.payload(before["epoch"], 12)
    assert after["restart"] and after["epoch"] == before["epoch"] + 1
    kept = [json.loads(line) for line in rd.events_path.read_text().splitlines()]
    assert [r["i"] for r in after["rows"]] == [e["index"] for e in kept if "index" in e]
    assert after["log"][-1]["text"] == "resumed with 3 evaluations"
    assert after["finished"] is None and after["state"] == "stopped"


def test_damaged_and_half_written_lines_are_skipped_with_a_notice(finished_run, tmp_path) -> None:
    run_dir = tmp_path / "damaged"
    run_dir.mkdir()
    lines = (finished_run / "events.jsonl").read_bytes().splitlines(keepends=True)
    evaluations = [ln for ln in lines if b'"event": "evaluation"' in ln]
    damaged = [
        evaluations[0],
        b'{"event": "evaluation", "index": 2, "obj\n',  # cut by a kill, then appended after
        b"\xff\xfe not text\n",
        b"[1, 2, 3]\n",
        b'{"event": "evaluation", "index": 3}\n',  # no objective
        evaluations[1],
        evaluations[2][:40],  # still being written
    ]
    (run_dir / "events.jsonl").write_bytes(b"".join(damaged))
    with serving([run_dir]) as server:
        page = get_json(server, "/api/run/0")
        assert [r["i"] for r in page["rows"]] == [1, 2]
        notices = page["notices"]
        assert notices[0] == "events.jsonl line 2: not a JSON event (damaged or cut); skipped"
        assert notices[1].startswith("events.jsonl line 3: not a JSON event")
        assert notices[2] == "events.jsonl line 4: not a JSON object; skipped"
        assert notices[3].startswith("events.jsonl line 5: a 'evaluation' event without")
        assert "incomplete line (40 bytes" in notices[4]
        with (run_dir / "events.jsonl").open("ab") as fh:  # the writer finishes its line
            fh.write(evaluations[2][40:])
        page = get_json(server, f"/api/run/0?epoch={page['epoch']}&n=2")
        assert [r["i"] for r in page["rows"]] == [3] and len(page["notices"]) == 4


def test_a_compare_folder_shows_its_runs_by_method(tmp_path, demo_table) -> None:
    base = table_search(tmp_path, demo_table, evaluations=10, surrogate=None)
    cfg = validate_model(
        SearchCompareConfig,
        {
            "name": "cmp",
            "output_dir": str(tmp_path),
            "base": "base.yaml",
            "methods": [
                {"label": "evolution", "surrogate": "none"},
                {"label": "random_surrogate", "surrogate": "random"},
            ],
            "seeds": [0, 1, 2],
        },
    )
    folder = run_search_comparison(cfg, base, tmp_path, progress=False)
    overview = RunSet([folder]).overview()
    assert [(r["name"], r["group"]) for r in overview["runs"]] == [
        (f"{m}__s{s}", m) for m in ("evolution", "random_surrogate") for s in (0, 1, 2)
    ]
    series = {s["label"]: s for s in overview["series"]}
    assert set(series) == {"evolution", "random_surrogate"}
    for s in series.values():
        assert s["kind"] == "group" and len(s["runs"]) == 3 and s["x"][-1] == 10
        assert all(lo <= y <= hi for lo, y, hi in zip(s["lo"], s["y"], s["hi"]) if lo is not None)
        finals = sorted(overview["runs"][i]["best"] for i in s["runs"])
        assert s["y"][-1] == finals[1]  # the median of three runs' final best
        assert s["lo"][-1] <= finals[1] <= s["hi"][-1] and s["ty"][-1] == finals[1]
    assert RunSet([folder]).overview(overview["version"]) == {
        "unchanged": True,
        "version": overview["version"],
    }


def test_nothing_outside_the_runs_is_served_and_nothing_is_written(finished_run) -> None:
    before = _snapshot(finished_run)
    with serving([finished_run]) as server:
        for path in (
            "/../../../../etc/passwd",
            "/static/../../../../etc/passwd",
            "/static/%2e%2e/%2e%2e/etc/passwd",
            "/api/run/0/../../config.yaml",
            "/api/run/0/config.yaml",
            "/api/run/..%2f..%2fetc%2fpasswd",
            "/api/run/7",
            "/api/run/-1",
            "/api/run/0/cell/999",
            "/api/run/0/cell/1.png/../../../checkpoint.json",
            "/" + str(finished_run / "config.yaml"),
            "/static/dashboard.py",
        ):
            status, _, body = get(server, path)
            assert status == 404, path
            assert b"root:" not in body and b"output_dir" not in body, path
        # everything the page asks for, including the export and two drawings
        assert get(server, "/")[0] == 200
        assert get(server, "/static/plotly.min.js")[0] == 200
        get_json(server, "/api/overview")
        get_json(server, "/api/run/0")
        assert get_json(server, "/api/run/0/cell/3")["row"]["i"] == 3
        status, headers, png = get(server, "/api/run/0/cell/3.png")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert png.startswith(b"\x89PNG")
        status, headers, data = get(server, "/api/run/0/export.zip?top=3")
        assert status == 200 and "attachment" in headers["Content-Disposition"]
        files = zipfile.ZipFile(io.BytesIO(data))
        assert sorted(files.namelist()) == ["rebuild_cells.py", "top_cells.json"]
        cells = json.loads(files.read("top_cells.json"))
        assert [c["rank"] for c in cells] == [1, 2, 3]
        assert cells[0]["objective"] == min(c["objective"] for c in cells)
    assert _snapshot(finished_run) == before  # read-only: no export/, no lock taken, no file


def test_a_request_for_another_host_or_without_the_token_is_refused(finished_run) -> None:
    with serving([finished_run]) as server:
        status, _, body = get(server, "/api/overview", {"Host": "evil.example:8765"})
        assert status == 403 and b"only on localhost" in body
    with serving([finished_run], token="s3cret") as server:
        assert server.url.endswith("/?token=s3cret")
        assert get(server, "/api/overview")[0] == 401
        assert get(server, "/?token=wrong")[0] == 401
        status, headers, _ = get(server, "/?token=s3cret")
        assert status == 200 and headers["Set-Cookie"].startswith("evo_nas_token=s3cret;")
        assert get(server, "/api/overview", {"Cookie": "evo_nas_token=s3cret"})[0] == 200
        assert get(server, "/api/overview", {"X-Evo-Nas-Token": "s3cret"})[0] == 200
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert required_token("127.0.0.1", None) is None
    token = required_token("0.0.0.0", None)
    assert token and len(token) >= 20 and required_token("0.0.0.0", None) != token


def test_the_surrogates_screening_shows_while_the_run_holds_its_lock(finished_run, tmp_path):
    run_dir = tmp_path / "screening"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_bytes((finished_run / "events.jsonl").read_bytes())
    feed = RunFeed(run_dir, "screening")
    RunDir(run_dir).append_event(
        {"event": "screen", "done": 40, "total": 500, "cells_per_s": 8.0, "left_s": 57.5}
    )
    feed.refresh()
    assert feed.payload(None, 0)["screen"] is None  # nobody is running it: old news
    lock = RunLock(run_dir / "run.lock").acquire()
    try:
        feed.refresh()
        page = feed.payload(None, 0)
        assert page["state"] == "running"
        assert page["screen"] == {
            "done": 40,
            "total": 500,
            "cells_per_s": 8.0,
            "left_s": 57.5,
            "t": 0.0,
        }
        RunDir(run_dir).append_event({"event": "screen", "done": 500, "total": 500})
        feed.refresh()
        assert feed.payload(None, 0)["screen"] is None
    finally:
        lock.release()


def test_the_checkpoints_head_is_read_without_its_records(finished_run) -> None:
    head = checkpoint_head(finished_run / "checkpoint.json")
    assert head["format"] == "evo-nas checkpoint" and head["in_flight"] == {}
    assert "records" not in head and "config" not in head
    kinds = [json.loads(line)["event"] for line in (finished_run / "events.jsonl").open()]
    assert head["events_written"] == len(kinds)  # the last checkpoint holds the done event


def test_the_command_prints_its_address_and_serves_the_page(finished_run) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo_nas.cli", "dashboard", str(finished_run), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("evo-nas dashboard of 1 run(s): http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(url + "api/overview", timeout=20) as r:
            assert json.load(r)["runs"][0]["evaluations"] == 12
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_command_refuses_in_one_line(tmp_path, monkeypatch) -> None:
    runner = CliRunner()
    (tmp_path / "notes.txt").write_text("not a run")
    refused(runner.invoke(main, ["dashboard", str(tmp_path)]), "neither a run directory")
    refused(runner.invoke(main, ["dashboard", str(tmp_path / "notes.txt")]), "not a directory")
    shadow = tmp_path / "shadow"  # a plotly without its JavaScript: the extra is missing
    (shadow / "plotly").mkdir(parents=True)
    (shadow / "plotly" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(shadow))
    refused(
        runner.invoke(main, ["dashboard", str(tmp_path)]),
        "needs the 'dashboard' extra: pip install 'evo-nas[dashboard]'",
    )


def test_a_rounds_kendall_tau_is_scipys_tau_b() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 40, 600):
        for _ in range(5):
            predicted = rng.integers(0, 6, n).astype(float)  # ties, as predictions may have
            truth = rng.normal(size=n)
            expected = kendalltau(predicted, truth).statistic
            got = kendall(list(predicted), list(truth))
            assert got is None if not np.isfinite(expected) else got == pytest.approx(expected)
    assert kendall([1.0], [2.0]) is None and kendall([1.0, 1.0], [2.0, 3.0]) is None
