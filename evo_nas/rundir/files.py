"""The run directory: resolved config, event log, evaluation table, best cell, checkpoint.

Files are written so that a SIGKILL at any instant leaves a resumable directory: the
checkpoint and ``best.json`` are replaced atomically (temp file + rename), the checkpoint
before the latest is kept as ``checkpoint.prev.json`` (a damaged latest one falls back to
it), and the append-only logs are cut back to what the checkpoint knows when a run resumes.
One process at a time works in a run directory (``run.lock``, :mod:`evo_nas.rundir.lock`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from evo_nas.config.errors import first_line
from evo_nas.config.yaml_input import dump_yaml, read_yaml
from evo_nas.rundir.lock import RunDirError, RunLock, open_no_follow

EVALUATION_COLUMNS = [
    "index",
    "key",
    "genotype",
    "objective",
    "status",
    "cost_s",
    "phase",
    "round",
    "predicted",
    "message",
    "metrics",
]


def _write_temp(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``, flushed to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    With ``previous``, the file being replaced is kept there (itself replaced atomically).
    """
    tmp = _write_temp(path, data)
    try:
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode())


def open_append(path: Path) -> io.TextIOWrapper:
    """``path`` opened to append text (created if missing), never through a symbolic link."""
    fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return open(fd, "a", newline="", encoding="utf-8")


def _json_float(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    return x


def to_jsonable(obj: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by strings, recursively."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return _json_float(obj)


class RunDir:
    """Reads and writes one run's files."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.events_path = self.path / "events.jsonl"
        self.evaluations_path = self.path / "evaluations.csv"
        self.best_path = self.path / "best.json"
        self.checkpoint_path = self.path / "checkpoint.json"
        self.previous_checkpoint_path = self.path / "checkpoint.prev.json"
        self.lock_path = self.path / "run.lock"
        self.ground_truth_dir = self.path / "ground_truth"

    def checkpoint_files(self) -> list[Path]:
        """The checkpoints present, newest first."""
        paths = (self.checkpoint_path, self.previous_checkpoint_path)
        return [p for p in paths if p.exists()]

    def exists(self) -> bool:
        """Whether a run was started here (it has a checkpoint or a config)."""
        return bool(self.checkpoint_files()) or self.config_path.exists()

    def lock(self) -> RunLock:
        """Take the run directory (creating it) for this process; refused while another has it,
        or when it holds what a run must not write through (:meth:`check_files`)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = RunLock(self.lock_path).acquire()
        except OSError as e:
            raise RunDirError(
                f"{self.path}: cannot be used as a run directory ({e.strerror or e})"
            ) from None
        try:
            self.check_files()
        except BaseException:
            lock.release()
            raise
        return lock

    def refuse_if_locked(self) -> None:
        """Raise naming the holder when another process works here (creates nothing)."""
        if self.path.is_dir():
            RunLock(self.lock_path).refuse_if_held()

    def check_files(self) -> None:
        """Refuse, in one line naming it, a symbolic link in the run directory (writing
        through it would write elsewhere) or a run file that is not a regular file."""
        try:
            entries = list(os.scandir(self.path))
        except OSError as e:
            raise RunDirError(f"{self.path}: cannot read the run directory ({e.strerror})") from e
        for entry in entries:
            if entry.is_symlink():
                raise RunDirError(
                    f"{entry.path}: a symbolic link in the run directory; refusing to work "
                    "through it (remove it)"
                )
        for p in self.files():
            if p.exists() and not p.is_file():
                raise RunDirError(f"{p}: not a regular file (a run file was replaced)")

    def own_folder(self, name: str) -> Path:
        """``RUN_DIR/name`` (created) for a report to write in; refused when it, or anything
        in it, is a symbolic link (writing there would write elsewhere)."""
        folder = self.path / name
        if folder.is_symlink():
            raise RunDirError(f"{folder}: a symbolic link; refusing to write through it")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            links = [e.path for e in os.scandir(folder) if e.is_symlink()]
        except OSError as e:
            raise RunDirError(f"{folder}: cannot be written ({e.strerror})") from None
        if links:
            raise RunDirError(f"{links[0]}: a symbolic link; refusing to write through it")
        return folder

    def files(self) -> list[Path]:
        """The run's own files."""
        names = ("final.jsonl", "final.json")
        return [
            self.config_path,
            self.events_path,
            self.evaluations_path,
            self.best_path,
            self.checkpoint_path,
            self.previous_checkpoint_path,
            self.lock_path,
            *(self.path / n for n in names),
        ]

    def create(self, config: dict[str, Any]) -> None:
        """Start a fresh run: write the resolved config and empty logs."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, dump_yaml(config))
        for p in (self.best_path, self.checkpoint_path, self.previous_checkpoint_path):
            p.unlink(missing_ok=True)
        atomic_write_bytes(self.events_path, b"")
        self.rewrite_evaluations([])

    def read_config(self) -> Any:
        """The config stored in the run directory (as the user may have edited it)."""
        return read_yaml(self.config_path)

    def started(self) -> str | None:
        """What shows that a run was started here (None: nothing a new run would lose)."""
        if self.checkpoint_files():
            return f"{self.checkpoint_files()[0].name} exists"
        return self.holds_results()

    def holds_results(self) -> str | None:
        """What this directory holds beyond a freshly created run (None: nothing)."""
        if self.events_path.exists() and self.events_path.stat().st_size:
            return f"{self.events_path.name} is not empty"
        if self.evaluations_path.exists():
            header = ",".join(EVALUATION_COLUMNS).encode()
            if self.evaluations_path.read_bytes().strip() != header:
                return f"{self.evaluations_path.name} holds rows"
        if self.best_path.exists():
            return f"{self.best_path.name} exists"
        return None

    # -- append-only logs ----------------------------------------------------------------------
    def append_event(self, event: dict[str, Any]) -> None:
        """One JSON line, flushed to disk."""
        with open_append(self.events_path) as fh:
            fh.write(json.dumps(to_jsonable(event), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def _event_lines(self) -> list[bytes]:
        """The complete lines of ``events.jsonl`` (a line cut by a kill has no newline)."""
        if not self.events_exist():
            return []
        lines = self.events_path.read_bytes().splitlines(keepends=True)
        return [ln for ln in lines if ln.endswith(b"\n")]

    def check_events(self, n_lines: int, n_evaluations: int) -> None:
        """Refuse unless the first ``n_lines`` events, those a checkpoint accounts for, are
        here, with the ``evaluation`` events of its ``n_evaluations`` results among them."""
        if n_lines and not self.events_exist():
            raise RunDirError(
                f"{self.events_path}: missing, but the checkpoint accounts for {n_lines} events; "
                "refusing to resume without them (restore the file)"
            )
        lines = self._event_lines()
        if len(lines) < n_lines:
            raise RunDirError(
                f"{self.events_path}: holds {len(lines)} complete events, the checkpoint "
                f"accounts for {n_lines}; refusing to resume without them (restore the file)"
            )
        evaluations = 0
        for i, line in enumerate(lines[:n_lines], start=1):
            event = _event(line)
            if event is None:
                raise RunDirError(
                    f"{self.events_path}: line {i} is not a JSON event (damaged); "
                    "refusing to resume over it (restore the file)"
                )
            evaluations += event.get("event") == "evaluation"
        if evaluations != n_evaluations:
            raise RunDirError(
                f"{self.events_path}: its first {n_lines} lines hold {evaluations} evaluation "
                f"events, the checkpoint's results {n_evaluations}; the two do not belong "
                "together (refusing to resume)"
            )

    def complete_events(self) -> int:
        """How many complete lines ``events.jsonl`` holds."""
        return len(self._event_lines())

    def truncate_events(self, n_lines: int) -> None:
        """Keep only the first ``n_lines`` events (those the checkpoint accounts for)."""
        atomic_write_bytes(self.events_path, b"".join(self._event_lines()[:n_lines]))

    def events_exist(self) -> bool:
        return self.events_path.exists()

    def read_events(self) -> list[dict[str, Any]]:
        """Every complete event line, up to the first that is not one."""
        out = []
        for line in self._event_lines():
            event = _event(line)
            if event is None:
                break  # a line cut by a kill: everything before it is good
            out.append(event)
        return out

    @staticmethod
    def _row(record: dict[str, Any]) -> list[Any]:
        res = record["result"]
        pred = record.get("predicted")
        return [
            record["index"],
            record["key"],
            json.dumps(record["genotype"]),
            repr(res.objective) if math.isfinite(res.objective) else "inf",
            res.status,
            f"{res.cost_s:.6g}",
            record["phase"],
            record["round"],
            "" if pred is None else repr(float(pred)),
            res.message,
            json.dumps(to_jsonable(res.metrics), sort_keys=True),
        ]

    def append_evaluation(self, record: dict[str, Any]) -> None:
        """One row of ``evaluations.csv``."""
        with open_append(self.evaluations_path) as fh:
            csv.writer(fh).writerow(self._row(record))
            fh.flush()

    def rewrite_evaluations(self, records: list[dict[str, Any]]) -> bool:
        """Write ``evaluations.csv`` from scratch; False when the old file did not begin
        with these rows (it was missing or damaged, not merely longer)."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(EVALUATION_COLUMNS)
        for r in records:
            w.writerow(self._row(r))
        data = buf.getvalue().encode()
        intact = self.evaluations_path.exists() and self.evaluations_path.read_bytes().startswith(
            data
        )
        atomic_write_bytes(self.evaluations_path, data)
        return intact

    def read_evaluations(self) -> list[dict[str, str]]:
        """Rows of ``evaluations.csv`` as dicts of strings, each checked as this module writes
        it (a damaged file is refused in one line naming it and the row)."""
        path = self.evaluations_path
        try:
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header != EVALUATION_COLUMNS:
                    raise RunDirError(
                        f"{path}: not an evaluations table (its header is not "
                        f"{','.join(EVALUATION_COLUMNS)})"
                    )
                rows = [_evaluation_row(path, n, row) for n, row in enumerate(reader, start=2)]
        except FileNotFoundError:
            raise RunDirError(f"{path}: missing") from None
        except (UnicodeDecodeError, csv.Error) as e:
            raise RunDirError(f"{path}: not a CSV table ({first_line(e)[:200]})") from None
        except OSError as e:
            raise RunDirError(f"{path}: cannot be read ({e.strerror})") from None
        return rows

    # -- atomic files --------------------------------------------------------------------------
    def write_best(self, best: dict[str, Any]) -> None:
        atomic_write_text(self.best_path, json.dumps(to_jsonable(best), indent=2, sort_keys=True))

    def read_best(self) -> dict[str, Any] | None:
        return json.loads(self.best_path.read_text()) if self.best_path.exists() else None

    def save_checkpoint(self, data: bytes, keep_previous: bool = True) -> None:
        """Replace the checkpoint atomically; the one it replaces becomes the previous one."""
        previous = self.previous_checkpoint_path if keep_previous else None
        atomic_write_bytes(self.checkpoint_path, data, previous)

    def remove_stale_temporaries(self) -> None:
        """Temporary files a kill left behind (only while holding the run's lock)."""
        for p in self.path.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def _evaluation_row(path: Path, n: int, row: list[str]) -> dict[str, str]:
    """One row of ``evaluations.csv`` (row ``n``, the header being row 1), checked."""
    where = f"{path} row {n}"
    if len(row) != len(EVALUATION_COLUMNS):
        raise RunDirError(f"{where}: {len(row)} fields, expected {len(EVALUATION_COLUMNS)}")
    out = dict(zip(EVALUATION_COLUMNS, row))
    numbers = [("index", int), ("round", int), ("objective", float), ("cost_s", float)]
    numbers += [("predicted", float)] if out["predicted"] else []
    for column, kind in numbers:
        try:
            kind(out[column])
        except ValueError:
            raise RunDirError(f"{where}: {column} {out[column][:50]!r} is not a number") from None
    cost = float(out["cost_s"])
    if not math.isfinite(cost) or cost < 0:
        raise RunDirError(f"{where}: cost_s {out['cost_s']!r} is not a duration")
    return out


def _event(line: bytes) -> dict[str, Any] | None:
    """One events.jsonl line as a dict, or None when it is not one."""
    try:
        event = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return event if isinstance(event, dict) else None
