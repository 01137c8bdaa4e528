"""Run directories read while another process writes them: never a write, never a lock.

:class:`RunFeed` follows one run. ``events.jsonl`` is read from where the last read stopped;
a file that a resume replaced (a new inode, or a shorter file) is read again from its start;
a complete line that is not a JSON event is skipped with a notice, and a line still being
written waits for its newline. The cells in flight come from the head of ``checkpoint.json``
(which the engine replaces atomically), the budget from ``config.yaml``, whether the run is
alive from what its holder wrote in ``run.lock`` (read, never locked).
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import kendalltau

from evo_nas.compare.search import method_of
from evo_nas_common.statefile import StateError, decode

#: damaged lines named on the page (more are counted, not listed)
MAX_NOTICES = 20
#: entries kept of the run's notable events (resume, refit, recovered checkpoint, final...)
MAX_LOG = 50
#: the checkpoint's head (everything before its config) is looked for in this many bytes
HEAD_BYTES = 4 << 20
#: points of the wall-time grid on which a group's quartiles are taken
TIME_GRID = 300
#: a round's own Kendall tau is shown only from this many checked cells on (with 2 cells it
#: can only be -1 or 1, with 4 only one of 7 values); smaller rounds still count in the pooled tau
MIN_TAU_CELLS = 5
#: ground-truth options that change how it runs, not what it measures (runs that differ only
#: in these share an objective axis)
RUN_OPTIONS = frozenset({"delay_s", "cost_scale", "cache", "device"})

_NOTABLE = {
    "resume": "resumed with {evaluations} evaluations",
    "done": "finished: {reason}",
    "surrogate_refit": "surrogate refitted: {reason}",
    "checkpoint_recovered": "checkpoint recovered: {reason}",
    "requeue": "cells in flight at the kill re-queued",
    "final": "final stage result",
    "warm_start": "warm start: the surrogate ranked {candidates} candidates",
    "error": "crashed: {type}: {message}",
}
#: what a run was doing, by the kind of its last event (the reason of a run that stopped)
_DOING = {
    "evaluation": "recorded evaluation {index} ({phase}, round {round}: {status})",
    "screen": "was screening candidate cells with the surrogate ({done} of {total})",
    "fit": "refitted the surrogate on {n} results (round {round})",
    "generation": "evolved generation {gen} (round {round})",
    "promote": "sent round {round}'s promoted cells to the ground truth",
    "retry": "resubmitted a cell ({reason})",
    "resume": "resumed with {evaluations} evaluations",
    "warm_start": "ranked {candidates} warm-start candidates with the surrogate",
    "requeue": "re-queued the cells in flight at the kill",
}


class DashboardError(ValueError):
    """A path that the dashboard cannot show, in one line."""


def _number(value: Any) -> float | None:
    """A finite float, or None (``inf`` as events.jsonl writes it, null, missing)."""
    if value is None or isinstance(value, bool):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _duration(seconds: float) -> str:
    """Seconds as the page writes them: ``42 s``, ``4.7 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.{1 if seconds < 10 else 0}f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _short(value: Any) -> str:
    """An option's value in a label: a path by its file name, a mapping as compact JSON."""
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return Path(value).name
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def ground_truth_of(config: dict[str, Any]) -> tuple[str, str]:
    """What a run's objective measures, from its config: ``(signature, label)``; runs with
    different signatures (another ground truth, table, metric or training) are not drawn on
    one objective axis. Options in :data:`RUN_OPTIONS` are left out of both."""
    gt = config.get("ground_truth")
    if isinstance(gt, str):
        gt = {"name": gt}
    if not isinstance(gt, dict):
        return "?", "ground truth not known yet"
    options = gt.get("options") if isinstance(gt.get("options"), dict) else {}
    kept = {k: v for k, v in sorted(options.items()) if k not in RUN_OPTIONS}
    signature = json.dumps([gt.get("name"), kept], sort_keys=True, default=str)
    shown = ", ".join(f"{k}: {_short(v)}" for k, v in kept.items() if v is not None)
    return signature, f"{gt.get('name')}" + (f" ({shown})" if shown else "")


def _holder(lock_path: Path) -> tuple[str, str]:
    """Whether the run is being written now, from what ``run.lock``'s holder wrote in it:
    (``running``, holder) or (``idle``, why not)."""
    try:
        text = lock_path.read_text(errors="replace").strip()[:200]
    except OSError:
        return "idle", ""
    if not text:
        return "idle", ""
    parts = text.split()
    if len(parts) == 4 and parts[0] == "pid" and parts[1].isdigit() and parts[2] == "on":
        pid, host = int(parts[1]), parts[3]
        if host != socket.gethostname():
            return "running", f"pid {pid} on {host}"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "idle", f"pid {pid} ended without releasing the lock (killed?)"
        except PermissionError:
            pass
        return "running", f"pid {pid} on {host}"
    return "running", text


def checkpoint_head(path: Path) -> dict[str, Any] | None:
    """The small fields at the start of ``checkpoint.json`` (format, events written, elapsed
    time, cells in flight), read without loading its records or surrogate state; None when
    the file is missing or does not start as a checkpoint does."""
    try:
        with path.open("rb") as fh:
            data = fh.read(HEAD_BYTES)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    out: dict[str, Any] = {}
    i = 0
    try:
        i = _skip(text, i, "{")
        while True:
            key, i = decoder.raw_decode(text, i)
            i = _skip(text, i, ":")
            if key in ("config", "boundary", "records"):  # the big parts: stop here
                return out
            out[key], i = decoder.raw_decode(text, i)
            i = _skip(text, i, ",}")
            if text[i - 1] == "}":
                return out
    except (ValueError, IndexError):
        return out or None


def _skip(text: str, i: int, chars: str) -> int:
    """Past whitespace and one of ``chars`` at ``i`` (ValueError if another character)."""
    while text[i].isspace():
        i += 1
    if text[i] not in chars:
        raise ValueError(f"expected one of {chars!r} at {i}")
    return i + 1


def kendall(predicted: list[float], truth: list[float]) -> float | None:
    """Kendall's tau-b of predictions against the truth (None without two distinct values
    on either side). A round's few cells are counted pair by pair, in microseconds; a large
    set goes to scipy's O(n log n) version."""
    n = len(predicted)
    if n < 2:
        return None
    if n > 500:
        tau = kendalltau(predicted, truth).statistic
        return None if tau is None or not math.isfinite(tau) else float(tau)
    i, j = np.triu_indices(n, 1)
    p, t = np.asarray(predicted, dtype=float), np.asarray(truth, dtype=float)
    a, b = np.sign(p[i] - p[j]), np.sign(t[i] - t[j])
    denominator = math.sqrt(float(np.count_nonzero(a)) * float(np.count_nonzero(b)))
    return float((a * b).sum() / denominator) if denominator else None


class RunFeed:
    """One run directory, followed as it grows (see the module's docstring); ``version``
    changes whenever what the page shows of it changed."""

    def __init__(self, path: Path, name: str, group: str | None = None) -> None:
        self.path = Path(path)
        self.name = name
        self.group = group
        self.lock = threading.Lock()
        self.version = 0
        self.epoch = 0
        self.config_text = ""
        self.config: dict[str, Any] = {}
        self.config_sig: tuple[int, int] | None = None
        self.checkpoint_sig: tuple[int, int, int] | None = None
        self.in_flight: list[dict[str, Any]] = []
        self.flight_seen: dict[str, float] = {}
        self.holder: tuple[str, str] = ("idle", "")
        self.cache: dict[str, Any] = {}
        self._restart()

    def _restart(self) -> None:
        """Forget what was read of ``events.jsonl`` (a resume replaced it): read it anew."""
        self.epoch += 1
        self.file_id: tuple[int, int] | None = None
        self.offset = 0
        self.lines = 0
        self.partial = 0
        self.rows: list[dict[str, Any]] = []
        self.genotypes: dict[int, Any] = {}
        self.by_index: dict[int, dict[str, Any]] = {}
        self.steps: list[tuple[int, float, float]] = []
        self.best: float = math.inf
        self.fits: dict[int, dict[str, Any]] = {}
        self.taus: dict[tuple[int, int], float | None] = {}
        self.retries: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.notices: list[str] = []
        self.damaged = 0
        self.screened = 0
        self.surrogate_s = 0.0
        self.screen: dict[str, Any] | None = None
        self.generations = 0
        self.elapsed = 0.0
        self.finished: str | None = None
        self.error: dict[str, Any] | None = None
        self.doing: tuple[float, str] | None = None

    # -- reading ------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Read what the run wrote since the last call; whether anything changed."""
        with self.lock:
            changed = self._read_config()
            changed = self._read_events() or changed
            changed = self._read_checkpoint() or changed
            holder = _holder(self.path / "run.lock")
            changed = changed or holder != self.holder
            self.holder = holder
            if changed:
                self.version += 1
                self.cache.clear()
            return changed

    def _read_config(self) -> bool:
        path = self.path / "config.yaml"
        try:
            st = path.stat()
            sig = (st.st_mtime_ns, st.st_size)
            if sig == self.config_sig:
                return False
            text = path.read_text(errors="replace")
        except OSError:
            return False
        self.config_sig, self.config_text = sig, text
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError:
            config = None
        self.config = config if isinstance(config, dict) else {}
        return True

    def _read_events(self) -> bool:
        try:
            fh = (self.path / "events.jsonl").open("rb")
        except OSError:
            if self.file_id is None:
                return False
            self._restart()
            return True
        with fh:
            st = os.fstat(fh.fileno())
            changed = False
            file_id = (st.st_dev, st.st_ino)
            if self.file_id is not None and (file_id != self.file_id or st.st_size < self.offset):
                self._restart()  # replaced (a resume cut it back) or cut: read it all again
                changed = True
            self.file_id = file_id
            if st.st_size == self.offset:
                return changed
            fh.seek(self.offset)
            data = fh.read(st.st_size - self.offset)
        end = data.rfind(b"\n") + 1
        partial = len(data) - end
        changed = changed or partial != self.partial
        self.partial = partial
        for raw in data[:end].split(b"\n")[:-1]:
            self.lines += 1
            self._take(raw, self.lines)
        self.offset += end
        return changed or end > 0

    def _damaged(self, line: int, why: str) -> None:
        self.damaged += 1
        if len(self.notices) < MAX_NOTICES:
            self.notices.append(f"events.jsonl line {line}: {why}; skipped")

    def _take(self, raw: bytes, line: int) -> None:
        """One complete line of ``events.jsonl``."""
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            self._damaged(line, "not a JSON event (damaged or cut)")
            return
        if not isinstance(event, dict):
            self._damaged(line, "not a JSON object")
            return
        try:
            self._event(event)
        except (KeyError, TypeError, ValueError) as e:
            self._damaged(line, f"a {event.get('event')!r} event without a usable {e}")

    def _event(self, e: dict[str, Any]) -> None:
        """One event of ``events.jsonl`` taken into the feed; a missing or unusable field
        raises (:meth:`_take` counts the line as damaged)."""
        kind = e.get("event")
        t = _number(e.get("elapsed_s")) or 0.0
        if kind == "evaluation":
            self._evaluation(e, t)
        elif kind == "fit":
            fit = {
                "round": int(e["round"]),
                "n": int(e.get("n") or 0),
                "fit_s": _number(e.get("fit_s")),
                "tau": _number(e.get("train_kendall_tau")),
            }
            self.fits[fit["round"]] = fit
            self.screen = None
        elif kind == "retry":
            self.retries.append(
                {
                    "key": str(e["key"]),
                    "attempt": int(e["attempt"]),
                    "reason": str(e.get("reason")),
                    "t": t,
                }
            )
        elif kind == "screen":
            done, total = int(e["done"]), int(e["total"])
            self.screen = None if done >= total else {**_screen_fields(e), "t": t}
        elif kind == "generation":
            self.generations += 1
        if kind in ("fit", "warm_start", "done"):
            self.screened += int(e.get("screened") or 0)
            self.surrogate_s += (_number(e.get("fit_s")) or 0) + (_number(e.get("predict_s")) or 0)
        if kind == "done":
            self.finished = str(e.get("reason") or "finished")
        elif kind == "resume":
            self.finished = None
        if kind == "error":  # the last thing a crashing run writes: any later event is news
            self.error = {"type": str(e.get("type") or "error"), "message": str(e.get("message"))}
        else:
            self.error = None
            self.doing = (t, _fill(_DOING, kind, e) or f"wrote a '{kind}' event")
        if kind in _NOTABLE:
            self._log_notable(kind, e, t)
        self.elapsed = max(self.elapsed, t)

    def _evaluation(self, e: dict[str, Any], t: float) -> None:
        """An ``evaluation`` event at ``t`` s: its row (the table's, and by its index), its
        genotype, a step of the best objective when it beats it; it ends a screening."""
        index = int(e["index"])
        objective = _number(e["objective"])
        row = {
            "i": index,
            "k": str(e["key"]),
            "o": objective,
            "s": str(e["status"]),
            "c": _number(e.get("cost_s")),
            "p": str(e.get("phase")),
            "r": int(e.get("round") or 0),
            "pr": _number(e.get("predicted")),
            "t": t,
            "m": str(e.get("message") or ""),
        }
        self.rows.append(row)
        self.by_index[index] = row
        self.genotypes[index] = e.get("genotype")
        if objective is not None and objective < self.best:
            self.best = objective
            self.steps.append((index, t, objective))
        if self.screen is not None:
            self.screen = None  # the ground truth answered: a screening before it is over

    def _log_notable(self, kind: str, e: dict[str, Any], t: float) -> None:
        """An entry of the run's log (the last ``MAX_LOG``) for a notable event at ``t`` s,
        its kind's text filled from the event, or the bare kind where a field is missing."""
        text = _fill(_NOTABLE, kind, e) or str(kind)
        self.log = (self.log + [{"t": t, "event": kind, "text": text}])[-MAX_LOG:]

    def _read_checkpoint(self) -> bool:
        path = self.path / "checkpoint.json"
        try:
            st = path.stat()
        except OSError:
            changed = bool(self.in_flight)
            self.in_flight, self.checkpoint_sig = [], None
            return changed
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if sig == self.checkpoint_sig:
            return False
        self.checkpoint_sig = sig
        head = checkpoint_head(path) or {}
        try:
            flight = decode(head.get("in_flight") or {}, "in_flight")
        except StateError:
            flight = {}
        now = time.time()
        cells = []
        for key, meta in sorted(flight.items()) if isinstance(flight, dict) else []:
            meta = meta if isinstance(meta, dict) else {}
            self.flight_seen.setdefault(key, now)
            cells.append(
                {
                    "key": str(key),
                    "phase": str(meta.get("phase")),
                    "round": meta.get("round"),
                    "predicted": _number(meta.get("predicted")),
                    "seen_at": self.flight_seen[key],
                }
            )
        self.flight_seen = {c["key"]: c["seen_at"] for c in cells}
        changed = cells != self.in_flight
        self.in_flight = cells
        return changed

    # -- what the page shows ------------------------------------------------------------------
    def curve(self) -> dict[str, Any]:
        """Best objective so far as steps: the evaluation and elapsed time of each
        improvement, and the end of the run so far (the line goes on flat to it)."""
        steps = list(self.steps)
        if self.rows and steps:
            last = self.rows[-1]
            steps.append((last["i"], max(last["t"], steps[-1][1]), steps[-1][2]))
        return {
            "x": [s[0] for s in steps],
            "t": [s[1] for s in steps],
            "y": [s[2] for s in steps],
        }

    def state(self) -> str:
        """``running``; else ``crashed`` (its log ends in an ``error`` event), ``finished`` (a
        ``done`` event since it last started) or ``stopped`` (neither: killed, or its log cut)."""
        if self.holder[0] == "running":
            return "running"
        if self.error is not None:
            return "crashed"
        return "finished" if self.finished is not None else "stopped"

    def reason(self) -> str | None:
        """Why a run that is not running stopped, in a sentence (None while it runs): the
        ``done`` event's reason, or the error it raised, or that it stopped without saying,
        with the last thing it did."""
        state = self.state()
        if state == "running":
            return None
        if state == "finished":
            return f"finished: {self.finished}"
        if self.doing is None:
            last = "it wrote no event"
        else:
            last = f"its last step, {_duration(self.doing[0])} in: it {self.doing[1]}"
        flight = len(self.in_flight)
        if flight:
            last += f"; {flight} training{'s' if flight > 1 else ''} were in flight"
        if state == "crashed":
            assert self.error is not None
            return f"crashed with {self.error['type']}: {self.error['message']} ({last})"
        why = f"; {self.holder[1]}" if self.holder[1] else ""
        return (
            "stopped without finishing: no 'done' event and no process writes it (killed, or "
            f"ended before it could say why{why}); {last}"
        )

    def _ended(self) -> str:
        """How a run that is not running ended, in a few words (the banner says more)."""
        if self.error is not None:
            return f"crashed ({self.error['type']}: {self.error['message']})"
        if self.finished is not None:
            return f"finished ({self.finished})"
        return "stopped without saying why (killed?)"

    def has_surrogate(self) -> bool:
        """Whether the run's config names a surrogate (``surrogate: none`` is written null)."""
        surrogate = self.config.get("surrogate")
        if isinstance(surrogate, dict):
            surrogate = surrogate.get("name")
        return surrogate not in (None, "none", "")

    def empty(self, honesty: list[dict[str, Any]] | None = None) -> dict[str, str | None]:
        """Why each of the page's plots has nothing to draw yet, by plot (None where it has):
        ``evaluations`` (best so far, the table), ``predictions`` (the honesty scatter),
        ``tau`` (the rank correlations; ``honesty`` is :meth:`honesty` when already taken)."""
        state, n = self.state(), len(self.rows)
        evaluations = None
        if n == 0:
            if state != "running":
                evaluations = f"no ground-truth result: the run {self._ended()} before any"
            elif self.screen is not None:
                evaluations = (
                    "no ground-truth result yet: the surrogate is screening candidate cells "
                    f"({self.screen['done']:,} of {self.screen['total']:,})"
                )
            elif self.in_flight:
                evaluations = (
                    f"no ground-truth result yet: {len(self.in_flight)} training(s) running"
                )
            else:
                evaluations = "no ground-truth result yet: the run is starting"
        checked = [r for r in self.rows if r["pr"] is not None and r["o"] is not None]
        predictions = None
        if not self.has_surrogate():
            predictions = (
                "this run has no surrogate (evolution asks the ground truth about every cell): "
                "there are no predictions to check"
            )
        elif evaluations is not None:
            predictions = evaluations
        elif not checked:
            predictions = self._unchecked(state, n)
        tau = predictions
        if tau is None and not any(
            h["pooled_tau"] is not None or h["fit_tau"] is not None
            for h in (self.honesty() if honesty is None else honesty)
        ):
            tau = (
                f"{len(checked)} cell(s) with a prediction and a result so far: a rank "
                "correlation needs two of one round with different results"
            )
        return {"evaluations": evaluations, "predictions": predictions, "tau": tau}

    def _unchecked(self, state: str, n: int) -> str:
        """Why no prediction has a result to be checked against yet, ``n`` results in."""
        if any(r["pr"] is not None for r in self.rows):
            return (
                "every cell predicted so far diverged or failed (objective inf): no result "
                "to check a prediction against"
            )
        loop = self.config.get("surrogate_loop")
        warmup = loop.get("warmup") if isinstance(loop, dict) else None
        if isinstance(warmup, int) and n < warmup:
            why = (
                f"no prediction to check yet: the first {warmup} cells are the warm-up, "
                f"chosen before the surrogate is fitted ({n} in)"
            )
        else:
            why = "no promoted cell has its ground-truth result yet"
        if state != "running":
            return f"{why}; the run {self._ended()}"
        if self.screen is not None:
            why += (
                f"; the surrogate is screening candidate cells ({self.screen['done']:,} of "
                f"{self.screen['total']:,})"
            )
        return why

    def brief(self, run_id: int) -> dict[str, Any]:
        """The run in the list of runs."""
        return {
            "id": run_id,
            "name": self.name,
            "group": self.group,
            "state": self.state(),
            "evaluations": len(self.rows),
            "best": None if not math.isfinite(self.best) else self.best,
            "version": self.version,
        }

    def honesty(self) -> list[dict[str, Any]]:
        """Per round: the out-of-sample Kendall tau of the predictions made before the ground
        truth answered (the cells sent to it that round; None below :data:`MIN_TAU_CELLS`
        cells), the tau over every such round so far (the rounds' taus weighted by their
        pairs, small rounds included: predictions of different fits are never compared), and
        the refit's in-sample tau for contrast."""
        by_round: dict[int, tuple[list[float], list[float]]] = {}
        for r in self.rows:
            if r["pr"] is not None and r["o"] is not None:
                pred, truth = by_round.setdefault(r["r"], ([], []))
                pred.append(r["pr"])
                truth.append(r["o"])
        out, weighted, pairs = [], 0.0, 0
        for rnd in sorted(set(by_round) | set(self.fits)):
            pred, truth = by_round.get(rnd, ([], []))
            key = (rnd, len(pred))
            if key not in self.taus:
                self.taus[key] = kendall(pred, truth)
            tau = self.taus[key]
            if tau is not None:
                n_pairs = len(pred) * (len(pred) - 1) // 2
                weighted += tau * n_pairs
                pairs += n_pairs
            fit = self.fits.get(rnd, {})
            out.append(
                {
                    "round": rnd,
                    "n": len(pred),
                    "tau": tau if len(pred) >= MIN_TAU_CELLS else None,
                    "pooled_tau": weighted / pairs if pairs else None,
                    "fit_tau": fit.get("tau"),
                    "fit_n": fit.get("n"),
                }
            )
        return out

    def spend(self) -> dict[str, Any]:
        """What the run spent and saved: trainings by status and their cost, the cells the
        surrogate screened instead, the budget left, what is in flight on which executor,
        failures and retries."""
        statuses: dict[str, int] = {}
        cost = 0.0
        for r in self.rows:
            statuses[r["s"]] = statuses.get(r["s"], 0) + 1
            cost += r["c"] or 0.0
        n = len(self.rows)
        budget = self.config.get("budget") if isinstance(self.config.get("budget"), dict) else {}
        execution = self.config.get("execution")
        execution = execution if isinstance(execution, dict) else {}
        max_evals = budget.get("evaluations", 100) if budget else None
        wall = budget.get("wall_time_s") if budget else None
        evals_left = (
            max(0, int(max_evals) - n - len(self.in_flight))
            if isinstance(max_evals, (int, float))
            else None
        )
        # cells screened and never trained; with no training at all nothing was kept from it
        unseen = max(0, self.screened - n) if n else None
        return {
            "evaluations": n,
            "statuses": statuses,
            "ground_truth_s": cost,
            "mean_cost_s": cost / n if n else None,
            "screened": self.screened,
            "surrogate_s": self.surrogate_s,
            "kept_from_truth": unseen,
            "saved_s": unseen * cost / n if unseen is not None and cost > 0 else None,
            "budget_evaluations": max_evals,
            "evaluations_left": evals_left,
            "budget_wall_s": wall,
            "elapsed_s": self.elapsed,
            "wall_left_s": max(0.0, float(wall) - self.elapsed)
            if isinstance(wall, (int, float))
            else None,
            "backend": execution.get("backend", "local"),
            "workers": execution.get("workers", 1),
            "address": execution.get("address"),
            "in_flight": self.in_flight,
            "retries": self.retries[-MAX_LOG:],
            "retry_count": len(self.retries),
            "failures": [
                {"i": r["i"], "s": r["s"], "m": r["m"], "k": r["k"]}
                for r in self.rows
                if r["s"] != "ok"
            ][-MAX_LOG:],
            "generations": self.generations,
            "rounds": len(self.fits),
        }

    def best_cell(self) -> dict[str, Any] | None:
        """The best evaluation so far (the earliest among equals)."""
        finite = [r for r in self.rows if r["o"] is not None]
        if not finite:
            return None
        best = min(finite, key=lambda r: (r["o"], r["i"]))
        return {**best, "genotype": self.genotypes.get(best["i"])}

    def payload(self, epoch: int | None, known: int) -> dict[str, Any]:
        """What the page needs of this run: the evaluations it does not have yet (all of them
        when its ``epoch`` is not the feed's: a resume replaced the log) and the rest whole."""
        with self.lock:
            restart = epoch != self.epoch
            start = 0 if restart else max(0, min(known, len(self.rows)))
            if "summary" not in self.cache:
                honesty = self.honesty()
                self.cache["summary"] = {
                    "name": self.name,
                    "group": self.group,
                    "path": str(self.path),
                    "state": self.state(),
                    "holder": self.holder[1] if self.holder[0] == "running" else "",
                    "finished": self.finished,
                    "reason": self.reason(),
                    "empty": self.empty(honesty),
                    "min_tau_cells": MIN_TAU_CELLS,
                    "spend": self.spend(),
                    "honesty": honesty,
                    "screen": self.screen if self.holder[0] == "running" else None,
                    "best": self.best_cell(),
                    "config": self.config_text,
                    "notices": self._notices(),
                    "log": self.log,
                    "curve": self.curve(),
                }
            return {
                "version": self.version,
                "epoch": self.epoch,
                "restart": restart,
                "start": start,
                "rows": self.rows[start:],
                **self.cache["summary"],
            }

    def _notices(self) -> list[str]:
        out = list(self.notices)
        if self.damaged > len(self.notices):
            out.append(f"... and {self.damaged - len(self.notices)} more damaged lines skipped")
        if self.partial and self.holder[0] != "running":
            out.append(
                f"events.jsonl ends in an incomplete line ({self.partial} bytes, cut by a kill?); "
                "not shown"
            )
        return out

    def genotype(self, index: int) -> tuple[dict[str, Any], Any] | None:
        """Evaluation ``index``'s row and genotype (None if there is no such evaluation)."""
        with self.lock:
            row = self.by_index.get(index)
            return None if row is None else (row, self.genotypes.get(index))


def _fill(texts: dict[str, str], kind: Any, e: dict[str, Any]) -> str | None:
    """The text ``texts`` gives an event's kind, filled from the event (None when it has no
    text or lacks a field)."""
    try:
        return texts[kind].format(**e) if kind in texts else None
    except (KeyError, IndexError, ValueError):
        return None


def _screen_fields(e: dict[str, Any]) -> dict[str, Any]:
    return {
        "done": int(e["done"]),
        "total": int(e["total"]),
        "cells_per_s": _number(e.get("cells_per_s")),
        "left_s": _number(e.get("left_s")),
    }


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` holds a run (its config, events or checkpoint)."""
    return any((path / f).is_file() for f in ("config.yaml", "events.jsonl", "checkpoint.json"))


class RunSet:
    """The runs a dashboard shows, by number: the run directories it was given, and the runs
    of each ``compare search`` folder (its ``runs/``, grouped by method; looked for again
    as the comparison starts new ones). A path that does not exist yet (or is an empty
    folder) is waited for: it joins as a run or a compare folder once it holds one. A request
    names a run by its number, never a path."""

    def __init__(self, paths: list[Path]) -> None:
        self.lock = threading.Lock()
        self.feeds: list[RunFeed] = []
        self.seen: set[Path] = set()
        self.folders: list[Path] = []
        self.pending: list[Path] = []
        for p in paths:
            path = Path(p).resolve()
            if path.exists() and not path.is_dir():
                raise DashboardError(f"{p}: not a directory")
            if not self._place(path):
                if not _not_yet_written(path):
                    raise DashboardError(
                        f"{p}: neither a run directory (config.yaml, events.jsonl) nor a "
                        "'compare search' folder (runs/)"
                    )
                self.pending.append(path)
        self.scan()

    def _place(self, path: Path) -> bool:
        """Follow ``path`` as a run or a compare folder, if it is one by now."""
        if is_run_dir(path):
            self._add(path, None)
        elif (path / "runs").is_dir():
            self.folders.append(path)
        else:
            return False
        return True

    def _add(self, path: Path, group: str | None) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        names = {f.name for f in self.feeds}
        name = path.name if path.name not in names else f"{path.parent.name}/{path.name}"
        self.feeds.append(RunFeed(path, name, group))

    def scan(self) -> None:
        """Add the paths waited for that now hold a run, and the runs that the compare
        folders hold by now."""
        with self.lock:
            self.pending = [p for p in self.pending if not self._place(p)]
            for folder in self.folders:
                try:
                    children = sorted(p for p in (folder / "runs").iterdir() if p.is_dir())
                except OSError:
                    continue
                for child in children:
                    if is_run_dir(child):
                        self._add(child.resolve(), method_of(child.name) or child.name)

    def feed(self, run_id: int) -> RunFeed | None:
        """Run number ``run_id``, if there is one."""
        with self.lock:
            return self.feeds[run_id] if 0 <= run_id < len(self.feeds) else None

    def overview(self, known: str | None = None) -> dict[str, Any]:
        """Every run's line in the list and its best-so-far curve; for each method of a
        compare folder, the median and quartiles over its runs (by evaluations and by
        wall time); the objective axes (one per ground truth the runs measure, each series
        with its ``axis``); the paths still waited for. Only ``{"unchanged": true}`` when the
        page's ``known`` version is current."""
        self.scan()
        with self.lock:
            feeds = list(self.feeds)
            waiting = [str(p) for p in self.pending]
        for f in feeds:
            f.refresh()
        version = "-".join(f"{f.epoch}.{f.version}" for f in feeds) + f"/{len(waiting)}"
        if version == known:
            return {"unchanged": True, "version": version}
        runs = [f.brief(i) for i, f in enumerate(feeds)]
        curves = [f.curve() for f in feeds]
        truths = [ground_truth_of(f.config) for f in feeds]
        axes: list[dict[str, Any]] = []
        axis_of: dict[str, int] = {}
        for i, (signature, label) in enumerate(truths):
            if signature not in axis_of:
                axis_of[signature] = len(axes)
                axes.append({"label": label, "runs": []})
            axes[axis_of[signature]]["runs"].append(i)
        series: list[dict[str, Any]] = []
        groups: dict[str, list[int]] = {}
        for i, f in enumerate(feeds):
            if f.group is None:
                axis = axis_of[truths[i][0]]
                series.append({"kind": "run", "label": f.name, "runs": [i], "axis": axis})
                series[-1].update(curves[i])
            else:
                groups.setdefault(f.group, []).append(i)
        for label, ids in groups.items():
            axis = axis_of[truths[ids[0]][0]]
            series.append({"kind": "group", "label": label, "runs": ids, "axis": axis})
            series[-1].update(band([curves[i] for i in ids]))
        return {
            "version": version,
            "runs": runs,
            "series": series,
            "axes": axes,
            "waiting": waiting,
        }


def _not_yet_written(path: Path) -> bool:
    """Whether ``path`` may still become a run: missing, or a folder holding at most the
    lock a starting run takes before it writes its config."""
    try:
        return {p.name for p in path.iterdir()} <= {"run.lock"}
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _step_values(curve: dict[str, Any], xs: np.ndarray, axis: str) -> np.ndarray:
    """A best-so-far step curve read at ``xs`` (NaN before its first finite value)."""
    at = np.asarray(curve[axis], dtype=float)
    ys = np.asarray(curve["y"], dtype=float)
    if not at.size:
        return np.full(xs.shape, np.nan)
    pos = np.searchsorted(at, xs, side="right") - 1
    return np.where(pos >= 0, ys[np.clip(pos, 0, None)], np.nan)


def _quartiles(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with warnings.catch_warnings():  # points where no run has a value yet
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, med, hi = np.nanquantile(mat, [0.25, 0.5, 0.75], axis=0)
    return lo, med, hi


def _changes(*columns: np.ndarray) -> np.ndarray:
    """Indices where any column changes, and the last one (a band drawn as steps)."""
    n = columns[0].size
    if n == 0:
        return np.arange(0)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    for c in columns:
        c = np.nan_to_num(c, nan=np.inf)
        keep[1:] |= c[1:] != c[:-1]
    return np.nonzero(keep)[0]


def _clean(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def band(curves: list[dict[str, Any]]) -> dict[str, Any]:
    """The median and quartiles over runs of their best so far, against evaluations (a run
    that has ended holds its last value) and against wall time (a grid of ``TIME_GRID``)."""
    ends = [c["x"][-1] for c in curves if c["x"]]
    out: dict[str, Any] = {k: [] for k in ("x", "y", "lo", "hi", "t", "ty", "tlo", "thi")}
    if not ends:
        return out
    xs = np.arange(1, max(ends) + 1, dtype=float)
    lo, med, hi = _quartiles(np.array([_step_values(c, xs, "x") for c in curves]))
    keep = _changes(lo, med, hi)
    out.update(x=xs[keep].tolist(), y=_clean(med[keep]), lo=_clean(lo[keep]), hi=_clean(hi[keep]))
    t_end = max(c["t"][-1] for c in curves if c["t"])
    ts = np.linspace(0.0, t_end, TIME_GRID)
    lo, med, hi = _quartiles(np.array([_step_values(c, ts, "t") for c in curves]))
    keep = _changes(lo, med, hi)
    out.update(t=ts[keep].tolist(), ty=_clean(med[keep]))
    out.update(tlo=_clean(lo[keep]), thi=_clean(hi[keep]))
    return out
