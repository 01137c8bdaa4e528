"""Plain-text reports of a run directory: the best cells and the progress of the search."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from evo_nas.rundir.files import RunDir, atomic_write_text
from evo_nas.rundir.progress import duration


def _objective(text: str) -> float:
    """An objective as ``evaluations.csv`` holds it; no value or NaN reads as diverged (inf)."""
    value = float(text) if text not in ("", "inf") else math.inf
    return math.inf if math.isnan(value) else value


def _count(event: dict[str, Any], key: str) -> float:
    """A cost figure of an event (0 where it has none, or no finite number)."""
    value = event.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else 0


def format_objective(value: float | str) -> str:
    """An objective with the precision that tells cells apart: four decimals (``103.4212``),
    four significant digits below 1 or from a million on (``0.01234``), ``inf`` for a failed
    or diverged cell (CSV text such as ``"inf"`` is read first)."""
    x = _objective(value) if isinstance(value, str) else float(value)
    if not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if x != 0 and (abs(x) < 1 or abs(x) >= 1e6):
        return f"{x:.4g}"
    return f"{x:.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(out)


def ranked_evaluations(run_dir: Path) -> list[dict[str, str]]:
    """The rows of a run's ``evaluations.csv``, best first (ties: the earlier evaluation):
    the ranks that ``show`` prints and ``train --run DIR --rank N`` reads."""
    rows = RunDir(run_dir).read_evaluations()
    return sorted(rows, key=lambda r: (_objective(r["objective"]), int(r["index"])))


def _cost(text: str) -> str:
    """An evaluation's cost as ``evaluations.csv`` holds it (seconds), for a person."""
    try:
        return duration(float(text))
    except ValueError:
        return "?"


def top_table(run_dir: Path, top: int = 10) -> str:
    """The ``top`` best ground-truth results of a run, best first, each with its cost and its
    key in full (what ``train --genotype`` and a config's ``initial`` take)."""
    rows = ranked_evaluations(run_dir)
    body = [
        [str(rank), r["index"], format_objective(r["objective"]), r["status"], r["phase"]]
        + [_cost(r["cost_s"]), r["key"]]
        for rank, r in enumerate(rows[:top], start=1)
    ]
    header = ["rank", "eval", "objective", "status", "phase", "cost", "key"]
    return f"best {len(body)} of {len(rows)} evaluated cells\n" + _table(header, body)


def best_so_far(run_dir: Path) -> np.ndarray:
    """Best objective after each ground-truth evaluation of a run."""
    values = [_objective(r["objective"]) for r in RunDir(run_dir).read_evaluations()]
    return np.minimum.accumulate(np.array(values)) if values else np.array([])


def surrogate_costs(run_dir: Path) -> tuple[float, int]:
    """The surrogate's own wall time in a run (fits and predictions) and the cells it
    screened, summed from the events."""
    seconds, screened = 0.0, 0
    for e in RunDir(run_dir).read_events():
        if e.get("event") in ("fit", "warm_start", "done"):
            seconds += _count(e, "fit_s") + _count(e, "predict_s")
            screened += int(_count(e, "screened"))
    return seconds, screened


def cost_line(run_dir: Path) -> str:
    """What a run spent on the ground truth, and what its surrogate did instead."""
    rows = RunDir(run_dir).read_evaluations()
    trained = sum(float(r["cost_s"] or 0) for r in rows)
    line = f"{len(rows)} ground-truth evaluations ({duration(trained)} in all)"
    seconds, screened = surrogate_costs(run_dir)
    if not screened:
        return line
    line += f"; the surrogate screened {screened:,} cells in {duration(seconds)}"
    if rows and trained > 0:
        unseen = max(0, screened - len(rows))
        saved = unseen * trained / len(rows)
        line += (
            f": evaluating the {unseen:,} it kept from the ground truth would have cost about "
            f"{duration(saved)} more at this run's mean evaluation time"
        )
    return line


def progress_table(run_dir: Path, points: int = 10) -> str:
    """Best-so-far objective against ground-truth evaluations, and what the run has spent."""
    rd = RunDir(run_dir)
    rows = rd.read_evaluations()
    if not rows:
        return "no ground-truth evaluation yet"
    curve = best_so_far(run_dir)
    n = len(curve)
    marks = sorted({max(1, round(n * i / points)) for i in range(1, points + 1)})
    body = [[str(m), format_objective(curve[m - 1])] for m in marks]
    statuses = Counter(r["status"] for r in rows)
    cost = sum(float(r["cost_s"] or 0) for r in rows)
    events = rd.read_events()
    done = [e for e in events if e.get("event") == "done"]
    reason = done[-1].get("reason") if done else None
    state = f"finished: {reason}" if done else "not finished (resume it to continue)"
    summary = (
        f"{n} evaluations ({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}), "
        f"ground-truth cost {duration(cost)}; {state}"
    )
    return summary + "\n" + _table(["evaluations", "best so far"], body)


def space_config(run_dir: Path) -> Any:
    """The ``space`` section of a run's ``config.yaml``: its name and options."""
    from evo_nas.config.schema import parse_config

    rd = RunDir(run_dir)
    return parse_config(rd.read_config(), rd.path.resolve()).space


def space_of(run_dir: Path) -> Any:
    """The search space a run's ``config.yaml`` names (its base space in pool mode)."""
    from evo_nas.config.components import construct

    return construct("space", space_config(run_dir))


def write_run_plots(run_dir: Path, top: int = 3) -> list[Path]:
    """best_so_far.png, refits.png and drawings of the ``top`` best cells, in RUN_DIR/plots."""
    from evo_nas.reports.plots import draw_cell, plot_best_so_far, plot_refits

    rd = RunDir(run_dir)
    out = rd.own_folder("plots")
    paths = [plot_best_so_far({rd.path.name: [best_so_far(rd.path)]}, out / "best_so_far.png")]
    rows = ranked_evaluations(run_dir)
    points = [
        (int(r["round"]), float(r["predicted"]), _objective(r["objective"]))
        for r in rows
        if r["predicted"] and math.isfinite(_objective(r["objective"]))
    ]
    paths.append(plot_refits(points, out / "refits.png"))
    space = space_of(run_dir)
    for rank, r in enumerate(rows[:top], start=1):
        g = space.from_json(json.loads(r["genotype"]))
        title = f"#{rank}: objective {format_objective(r['objective'])} (evaluation {r['index']})"
        paths.append(draw_cell(space, g, out / f"cell_{rank}.png", title))
    return paths


_SNIPPET = '''"""Rebuild the exported cells as torch modules (written by `evo-nas export`)."""

import json
from pathlib import Path

from search_spaces import get_space

space = get_space({name!r}, **{options!r})
cells = json.loads((Path(__file__).parent / "top_cells.json").read_text())
modules = {{
    c["key"]: space.build_cell(space.from_json(c["genotype"]), input_size=32, hidden_size=32)
    for c in cells
}}

if __name__ == "__main__":
    for c in cells:
        n = sum(p.numel() for p in modules[c["key"]].parameters())
        print(f"#{{c['rank']}} objective {{c['objective']}}: {{n}} parameters at size 32")
'''


def export_files(run_dir: Path, top: int) -> dict[str, str]:
    """The ``top`` best genotypes (``top_cells.json``) and a script that rebuilds them as
    modules (``rebuild_cells.py``), by file name; the run's config and every exported genotype
    are checked, and nothing is written."""
    rd = RunDir(run_dir)
    space = space_of(run_dir)
    ranked = ranked_evaluations(run_dir)[:top]
    for r in ranked:
        try:
            space.from_json(json.loads(r["genotype"]))
        except ValueError as e:
            raise ValueError(
                f"{rd.evaluations_path} evaluation {r['index']}: not a genotype of the run's "
                f"space ({str(e)[:200]})"
            ) from None
    cells = [
        {
            "rank": rank,
            "key": r["key"],
            "genotype": json.loads(r["genotype"]),
            "objective": "inf" if math.isinf(_objective(r["objective"])) else float(r["objective"]),
            "status": r["status"],
            "evaluation": int(r["index"]),
        }
        for rank, r in enumerate(ranked, start=1)
    ]
    space_cfg = space_config(run_dir)
    snippet = _SNIPPET.format(name=space_cfg.name, options=space_cfg.options)
    return {"top_cells.json": json.dumps(cells, indent=2), "rebuild_cells.py": snippet}


def export_top(run_dir: Path, top: int, out_dir: Path | None = None) -> Path:
    """Write :func:`export_files` into ``out_dir`` (default ``RUN_DIR/export``, refused when
    it is a link); everything is checked before anything is written."""
    files = export_files(run_dir, top)
    out = Path(out_dir) if out_dir is not None else RunDir(run_dir).own_folder("export")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return out
