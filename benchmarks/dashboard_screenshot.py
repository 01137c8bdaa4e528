"""The README's dashboard screenshot: examples/nbnlp_search.yaml with the dish, watched live.

Runs the example with the default dish and its warm start (as the ``spd`` method of
examples/compare_search_nbnlp.yaml: 10 warm-up cells, the best of 1,000 ranked zero-shot) in
another process, serves the dashboard on it, and once ``--after`` evaluations are in, clicks
the table's third row (to draw its cell) and saves what headless Chromium shows. About 3-5
minutes on two idle cores, most of it the dish screening its candidates. The picture holds
the whole page (``--height`` is the least).

    EVO_NAS_DATA=../shared/data python benchmarks/dashboard_screenshot.py --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from evo_nas.dashboard.server import make_server

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "nbnlp_search.yaml"


def evaluations(run_dir: Path) -> int:
    """Evaluations the run has written so far."""
    path = run_dir / "events.jsonl"
    return path.read_bytes().count(b'"event": "evaluation"') if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    ap.add_argument("--after", type=int, default=60, help="evaluations before the screenshot")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2300)
    args = ap.parse_args()

    import headless

    reason = headless.missing()
    if reason:
        raise SystemExit(f"no headless browser: {reason}")
    config = yaml.safe_load(EXAMPLE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        config.update(name="nbnlp_search", output_dir=tmp)
        config["surrogate"] = {"name": "spd", "options": {}}
        config["surrogate_loop"].update(warmup=10, warmup_candidates=1000)
        path = Path(tmp) / "nbnlp_search.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run = subprocess.Popen(  # one thread: the dish's tiny networks run fastest so
            [sys.executable, "-m", "evo_nas.cli", "run", str(path), "--quiet"],
            cwd=REPO,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        run_dir = Path(tmp) / "nbnlp_search"
        try:
            while not (run_dir / "config.yaml").exists():
                time.sleep(0.5)
            server = make_server([run_dir], port=0, refresh_s=1.0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            with headless.chromium(args.width, args.height) as browser:
                browser.get(server.url)
                while evaluations(run_dir) < args.after and run.poll() is None:
                    time.sleep(1)
                time.sleep(3)  # the page's next update
                browser.execute_script(
                    "document.querySelector('#evals tbody tr:nth-child(3)').click();"
                )
                time.sleep(3)  # the cell's drawing
                # the whole page, down to the best cell's drawing
                height = browser.execute_script("return document.body.scrollHeight;")
                browser.set_window_size(args.width, max(args.height, height + 140))
                time.sleep(2)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(args.out))
            server.shutdown()
            server.server_close()
        finally:
            run.kill()
            run.wait()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
