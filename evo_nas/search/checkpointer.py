"""Keeping a run's checkpoint current: rewritten after every ground-truth result and step.

The checkpoint (:mod:`evo_nas.search.checkpoint`) holds the search state at the start of the
current step, every result and the cells in flight. Each part is turned into JSON once
(the state at each step, a result when it lands), not again at every save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evo_nas.execution.evaluation import GroundTruthCache
from evo_nas.rundir.events import EventSink
from evo_nas.rundir.files import RunDir
from evo_nas.search.budget import Budget
from evo_nas.search.checkpoint import Checkpoint, boundary_json, checkpoint_bytes, record_json
from evo_nas.search.state import RngStates, SearchState
from search_spaces import SearchSpace


@dataclass
class Checkpointer:
    """Writes ``checkpoint.json`` (keeping the one before it) from the run's parts."""

    config: bytes  # the run's resolved config, as JSON
    run_dir: RunDir
    space: SearchSpace
    cache: GroundTruthCache
    events: EventSink
    budget: Budget
    #: the state at the start of the current step, as JSON (None before the first step)
    boundary: bytes | None = None
    records: list[bytes] = field(default_factory=list)  # cache.records as JSON (they only grow)
    keep_previous: bool = True  # whether the next save keeps the checkpoint it replaces

    def snapshot(
        self, state: SearchState, strategy: dict[str, Any], rngs: RngStates, surrogate: Any
    ) -> None:
        """Make ``state`` (with the strategy's own, the generators' and the fitted
        surrogate's) the boundary that a resume restarts from, and save."""
        self.boundary = boundary_json(state, strategy, self.space, rngs, surrogate)
        self.save()

    def save(self) -> None:
        """Rewrite the checkpoint: the boundary, every result so far (those a resumed run is
        still to replay included), the cells in flight."""
        assert self.boundary is not None
        records = self.cache.records
        self.records += [record_json(r) for r in records[len(self.records) :]]
        pending = [record_json(r) for r in self.cache.pending_replay()]
        data = checkpoint_bytes(
            self.config,
            self.boundary,
            self.records + pending,
            self.cache.in_flight,
            self.events.written,
            self.budget.elapsed(),
        )
        self.run_dir.save_checkpoint(data, keep_previous=self.keep_previous)
        self.keep_previous = True

    def resume(self, ck: Checkpoint) -> None:
        """Continue from ``ck``: its boundary and results are the parts of the next saves."""
        self.records = [record_json(r) for r in ck.records[: ck.state.records_at_boundary]]
        self.boundary = ck.boundary
        # resumed from an older generation: keep it until a new one is written over the bad one
        self.keep_previous = ck.recovered is None
