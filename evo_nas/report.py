"""Plain-text reports of a run directory: the best cells and the progress of the search."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from evo_nas.rundir import RunDir


def _objective(text: str) -> float:
    return float(text) if text not in ("", "inf") else math.inf


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def top_table(run_dir: Path, top: int = 10) -> str:
    """The ``top`` best ground-truth results of a run, best first."""
    rows = RunDir(run_dir).read_evaluations()
    ranked = sorted(rows, key=lambda r: (_objective(r["objective"]), int(r["index"])))[:top]
    body = []
    for rank, r in enumerate(ranked, start=1):
        genotype = r["genotype"] if len(r["genotype"]) <= 72 else r["genotype"][:69] + "..."
        body.append([str(rank), r["index"], r["objective"], r["status"], r["phase"], genotype])
    header = ["rank", "eval", "objective", "status", "phase", "genotype"]
    return f"best {len(ranked)} of {len(rows)} evaluated cells\n" + _table(header, body)


def progress_table(run_dir: Path, points: int = 10) -> str:
    """Best-so-far objective against ground-truth evaluations, and what the run has spent."""
    rd = RunDir(run_dir)
    rows = rd.read_evaluations()
    if not rows:
        return "no ground-truth evaluation yet"
    best, curve = math.inf, []
    for r in rows:
        best = min(best, _objective(r["objective"]))
        curve.append(best)
    n = len(curve)
    marks = sorted({max(1, round(n * i / points)) for i in range(1, points + 1)})
    body = [[str(m), f"{curve[m - 1]:.6g}"] for m in marks]
    statuses = Counter(r["status"] for r in rows)
    cost = sum(float(r["cost_s"] or 0) for r in rows)
    events = rd.read_events()
    done = [e for e in events if e.get("event") == "done"]
    state = f"finished: {done[-1]['reason']}" if done else "not finished (resume it to continue)"
    summary = (
        f"{n} evaluations ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}), "
        f"ground-truth cost {cost:.1f} s; {state}"
    )
    return summary + "\n" + _table(["evaluations", "best so far"], body)
