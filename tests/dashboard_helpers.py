"""What the dashboard tests share: a small real search over the demo table, a dashboard
server on a free loopback port, and raw HTTP requests to it."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evo_nas.dashboard.server import DashboardServer, make_server
from evo_nas.rundir.files import RunDir


def table_search(
    out: Path,
    table: Path,
    name: str = "live",
    evaluations: int = 8,
    delay_s: float = 0.0,
    surrogate: str | None = "random",
) -> dict[str, Any]:
    """A search config over the demo table (4-node DARTS cells): ``delay_s`` seconds a
    ground-truth answer, so that a run can be watched while it writes."""
    return {
        "name": name,
        "output_dir": str(out),
        "seed": 0,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table), "delay_s": delay_s}},
        "surrogate": surrogate,
        "search": {"algorithm": "regularized", "population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 4, "generations": 1, "promote": 2, "explore": 0},
        "budget": {"evaluations": evaluations},
        "logging": {"progress": False},
    }


@contextmanager
def serving(paths: list[Path], **options: Any) -> Iterator[DashboardServer]:
    """A dashboard over ``paths`` on a free loopback port, answering from a thread."""
    server = make_server(paths, port=0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(
    server: DashboardServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One GET of ``path`` exactly as written (no normalising): status, headers, body."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(server: DashboardServer, path: str) -> Any:
    """The JSON answer of a GET that must succeed."""
    status, _, body = get(server, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy (its value), failing after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")


def evaluations_written(run_dir: Path) -> int:
    """How many ``evaluation`` lines the run's events.jsonl holds now."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return 0
    return sum(b'"event": "evaluation"' in line for line in path.read_bytes().splitlines())


def evaluation(
    index: int,
    objective: float,
    rnd: int = 0,
    predicted: float | None = None,
    elapsed_s: float = 0.0,
) -> dict[str, Any]:
    """An ``evaluation`` event as the engine writes it (a made-up 4-node DARTS cell):
    warm-up in round 0, promoted after."""
    return {
        "event": "evaluation",
        "index": index,
        "key": f"cell{index}",
        "genotype": "tanh0 relu1 sigmoid1 identity2",
        "objective": objective,
        "status": "ok" if objective != float("inf") else "diverged",
        "cost_s": 60.0,
        "phase": "warmup" if rnd == 0 else "promote",
        "round": rnd,
        "predicted": predicted,
        "message": "",
        "elapsed_s": elapsed_s,
    }


def write_run(path: Path, config: dict[str, Any], events: list[dict[str, Any]]) -> RunDir:
    """A run directory holding ``config`` and ``events``, as a run that wrote them leaves it."""
    rd = RunDir(path)
    rd.create(config)
    for e in events:
        rd.append_event(e)
    return rd
