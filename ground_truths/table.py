"""Ground truth read from a CSV or JSONL table of (genotype JSON, objective) rows."""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ground_truths.base import STATUSES, GroundTruth, Result
from search_spaces import Genotype, GenotypeError, SearchSpace

#: the longest pause a replayed answer may take (a day: longer is a typo, and ``time.sleep``
#: refuses far longer ones, failing every evaluation)
MAX_PAUSE_S = 86_400.0


class TableError(ValueError):
    """A row of a ground-truth table that cannot be read; names the file and the row."""


class TableWarning(UserWarning):
    """Rows read in a way their writer may not have meant (recorded as diverged, or cut)."""


def parse_genotype_cell(text: Any) -> Any:
    """A CSV cell holds JSON; a bare string that is not JSON is taken as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class TableGroundTruth(GroundTruth):
    """Answers objectives from a table file, for any registered space.

    Columns (CSV header or JSONL keys): ``genotype`` (the space's JSON form, or a string the
    space accepts), ``objective`` (float; ``inf``/empty for a diverged cell), optional
    ``status`` (ok/diverged/failed) and ``cost_s`` (seconds the real evaluation took); other
    numeric columns become metrics. To replay a table as if it were being trained (demos,
    executor benchmarks, kill-and-resume tests), every answer sleeps ``delay_s`` plus
    ``cost_scale`` times the row's recorded cost. An objective of ``nan`` or ``-inf`` and a
    CSV row with fewer or more fields than the header are read (as diverged, or cut) with a
    :class:`TableWarning` naming the file and the rows.
    """

    def __init__(
        self,
        space: SearchSpace,
        path: Path,
        delay_s: Annotated[float, Field(ge=0, le=MAX_PAUSE_S)] = 0.0,
        cost_scale: Annotated[float, Field(ge=0, le=MAX_PAUSE_S)] = 0.0,
    ) -> None:
        super().__init__(space)
        if not (0 <= delay_s <= MAX_PAUSE_S and 0 <= cost_scale <= MAX_PAUSE_S):
            raise ValueError(f"delay_s and cost_scale must be in 0..{MAX_PAUSE_S:,}")
        self.path = Path(path)
        self.delay_s = float(delay_s)
        self.cost_scale = float(cost_scale)
        self._rows: dict[str, tuple[Genotype, Result]] = {}
        self._load()

    def _rows_raw(self) -> list[tuple[int, dict[str, Any]]]:
        if not self.path.is_file():
            raise TableError(f"{self.path}: file not found")
        try:
            return self._read_rows()
        except csv.Error as e:
            raise TableError(f"{self.path}: not a CSV table ({str(e)[:200]})") from None
        except UnicodeDecodeError:
            raise TableError(f"{self.path}: not UTF-8 text") from None
        except RecursionError:
            raise TableError(f"{self.path}: JSON nested too deeply") from None

    def _read_rows(self) -> list[tuple[int, dict[str, Any]]]:
        if self.path.suffix.lower() in (".jsonl", ".ndjson"):
            rows = []
            with self.path.open() as fh:
                for n, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise TableError(f"{self.path} row {n}: invalid JSON ({e.msg})") from None
                    if not isinstance(obj, dict):
                        raise TableError(f"{self.path} row {n}: expected a JSON object")
                    rows.append((n, obj))
            return rows
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"genotype", "objective"} - set(reader.fieldnames or [])
            if missing:
                raise TableError(f"{self.path}: missing column(s) {', '.join(sorted(missing))}")
            # row numbers count the header as row 1, as a spreadsheet shows them
            return [(n, row) for n, row in enumerate(reader, start=2)]

    def _load(self) -> None:
        first_row: dict[str, int] = {}
        odd: list[str] = []  # rows read, but maybe not as meant
        for n, row in self._rows_raw():
            where = f"{self.path} row {n}"
            if None in row:
                odd.append(f"row {n}: more fields than the header (the extra ones are ignored)")
                del row[None]
            elif None in row.values():
                missing = [k for k, v in row.items() if v is None]
                odd.append(f"row {n}: short row, no {', '.join(missing)} (read as empty)")
            if "genotype" not in row or "objective" not in row:
                raise TableError(f"{where}: needs 'genotype' and 'objective'")
            try:
                g = self.space.validate(parse_genotype_cell(row["genotype"]))
            except GenotypeError as e:
                raise TableError(f"{where}: genotype: {e}") from None
            status = str(row.get("status") or "ok")
            if status not in STATUSES:
                raise TableError(f"{where}: status '{status}' is not one of {', '.join(STATUSES)}")
            raw = row["objective"]
            try:
                objective = math.inf if raw in ("", None) else float(raw)
            except (TypeError, ValueError, OverflowError):
                raise TableError(f"{where}: objective {str(raw)[:50]!r} is not a number") from None
            overflowed = isinstance(raw, str) and raw.strip() and "inf" not in raw.lower()
            if math.isinf(objective) and overflowed:
                raise TableError(f"{where}: objective {raw[:50]!r}... is out of range")
            if math.isnan(objective) or objective == -math.inf:
                odd.append(f"row {n}: objective {raw!r} recorded as diverged (inf)")
            raw_cost = row.get("cost_s") or 0.0
            try:
                cost = float(raw_cost)
            except (TypeError, ValueError, OverflowError):
                cost = math.nan
            if not 0 <= cost < math.inf:
                raise TableError(f"{where}: cost_s {str(raw_cost)[:50]!r} is not a duration")
            metrics = {}
            for k, v in row.items():
                if k in ("genotype", "objective", "status", "cost_s"):
                    continue
                try:
                    metrics[k] = float(v)
                except (TypeError, ValueError, OverflowError):
                    continue
            key = self.space.key(g)
            if key in first_row:
                raise TableError(f"{where}: same cell as row {first_row[key]} (key {key})")
            first_row[key] = n
            self._rows[key] = (g, Result(objective, status, cost, metrics))  # type: ignore[arg-type]
        if not self._rows:
            raise TableError(f"{self.path}: no rows")
        if odd:
            more = f" (and {len(odd) - 1} more such rows)" if len(odd) > 1 else ""
            warnings.warn(f"{self.path} {odd[0]}{more}", TableWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self._rows)

    def evaluate_one(self, genotype: Genotype) -> Result:
        hit = self._rows.get(self.space.key(genotype))
        pause = self.delay_s + (self.cost_scale * hit[1].cost_s if hit is not None else 0.0)
        if pause:
            time.sleep(pause)
        if hit is None:
            return Result.failed(f"not in table {self.path.name}: {self.space.describe(genotype)}")
        return hit[1]

    def genotypes(self) -> list[Genotype]:
        return [g for g, _ in self._rows.values()]
