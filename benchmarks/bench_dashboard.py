"""The dashboard on a big run: time to first paint and per update in headless Chromium.

Writes a run directory of ``--evaluations`` ground-truth evaluations (NAS-Bench-NLP cells
sampled from the space, rounds of ``--promote`` promoted cells with the surrogate's
predictions, a refit and generations per round: the events a real search writes, through the
run directory's own writer), serves it, opens the page and times (1) the first paint: from
navigation to the table, plots and panels drawn with every evaluation; (2) updates: while
the page is open, ``--updates`` times ``--batch`` new evaluations are appended as a running
search appends them, and each update's fetch and drawing is timed in the page.

    python benchmarks/bench_dashboard.py --evaluations 10000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evo_nas.dashboard.server import make_server
from evo_nas.rundir.files import RunDir, to_jsonable
from search_spaces import get_space

CONFIG = {
    "name": "bench",
    "space": {"name": "nasbench_nlp", "options": {}},
    "ground_truth": {"name": "nasbench_nlp", "options": {}},
    "surrogate": {"name": "spd", "options": {}},
    "budget": {"evaluations": 20000},
}


def events(n: int, promote: int, start: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """The events of evaluations ``start`` .. ``start + n - 1`` of a surrogate-assisted search:
    a warm-up of ``promote`` cells, then per round a refit, five generations and ``promote``
    promoted cells whose predictions correlate with their objectives."""
    space = get_space("nasbench_nlp")
    rng = np.random.default_rng(seed + start)
    out: list[dict[str, Any]] = []
    for index in range(start, start + n):
        rnd = (index - 1) // promote
        if (index - 1) % promote == 0 and rnd > 0:
            out.append({"event": "fit", "round": rnd, "n": index - 1, "fit_s": 0.05,
                        "predict_s": 0.2, "screened": 60, "train_kendall_tau": 0.5})  # fmt: skip
            out += [{"event": "generation", "gen": 5 * rnd + g, "round": rnd} for g in range(5)]
            out.append({"event": "promote", "round": rnd, "keys": [], "predicted": []})
        g = space.sample(rng)
        diverged = rng.random() < 0.05
        objective = float("inf") if diverged else float(100 + 30 * rng.gamma(2.0, 1.0))
        predicted = None if rnd == 0 else objective / 200 + float(rng.normal(0, 0.2))
        out.append(
            {
                "event": "evaluation",
                "index": index,
                "key": space.key(g),
                "genotype": space.to_json(g),
                "objective": objective,
                "status": "diverged" if diverged else "ok",
                "cost_s": float(rng.uniform(3000, 20000)),
                "phase": "warmup" if rnd == 0 else "promote",
                "round": rnd,
                "predicted": predicted if predicted is None or np.isfinite(objective) else 0.5,
                "message": "loss is nan!" if diverged else "",
            }
        )
    for i, e in enumerate(out):
        e["elapsed_s"] = round(0.5 * (start + i), 3)
    return out


def append(rd: RunDir, evs: list[dict[str, Any]]) -> None:
    """Append events as the run directory writes them (one JSON line each, sorted keys)."""
    with rd.events_path.open("a") as fh:
        fh.writelines(json.dumps(to_jsonable(e), sort_keys=True) + "\n" for e in evs)


def page_ready(driver: Any, rows: int) -> bool:
    return bool(
        driver.execute_script(
            "const t = window.dashboardTimings || []; const p = document.getElementById"
            "('best-plot'); return t.length && t[t.length - 1].rows >= arguments[0] && p.data"
            " && document.querySelectorAll('#evals tbody tr').length > 0;",
            rows,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evaluations", type=int, default=10_000)
    ap.add_argument("--promote", type=int, default=10)
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1, help="evaluations appended per update")
    ap.add_argument("--refresh", type=float, default=1.0, help="the page's update interval")
    args = ap.parse_args()

    import headless

    reason = headless.missing()
    if reason:
        raise SystemExit(f"no headless browser: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        rd = RunDir(Path(tmp) / "bench")
        rd.create(CONFIG)
        rd.config_path.write_text(yaml.safe_dump(CONFIG))
        append(rd, events(args.evaluations, args.promote))
        size = rd.events_path.stat().st_size
        print(f"run: {args.evaluations:,} evaluations, events.jsonl {size / 1e6:.1f} MB")
        server = make_server([rd.path], port=0, refresh_s=args.refresh)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with headless.chromium() as driver:
            start = time.perf_counter()
            driver.get(server.url)
            while not page_ready(driver, args.evaluations):
                time.sleep(0.01)
            first = time.perf_counter() - start
            first_in_page = driver.execute_script(
                "return window.dashboardTimings[window.dashboardTimings.length - 1].at_ms;"
            )
            print(
                f"first paint: {first:.2f} s from navigation to every panel drawn "
                f"({first_in_page / 1000:.2f} s by the page's clock)"
            )
            updates, latencies = [], []
            n = args.evaluations
            for _ in range(args.updates):
                seen = driver.execute_script("return window.dashboardTimings.length;")
                t0 = time.perf_counter()
                append(rd, events(args.batch, args.promote, start=n + 1))
                n += args.batch
                while not page_ready(driver, n):
                    time.sleep(0.005)
                latencies.append(time.perf_counter() - t0)
                updates += driver.execute_script(
                    "return window.dashboardTimings.slice(arguments[0]);", seen
                )
        server.shutdown()
        server.server_close()
    render = [u["render_ms"] for u in updates if u["new_rows"]]
    fetch = [u["fetch_ms"] for u in updates if u["new_rows"]]
    print(
        f"per update ({args.batch} new evaluation(s), {len(render)} updates): drawing "
        f"median {statistics.median(render):.0f} ms (max {max(render):.0f}), fetch and parse "
        f"median {statistics.median(fetch):.0f} ms; from the write to the page showing it "
        f"median {statistics.median(latencies):.2f} s (the page asks every {args.refresh:g} s)"
    )


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
