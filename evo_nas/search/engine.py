"""One run of the search, wired from its config: components, state, outputs, strategy.

:class:`SearchEngine` builds the space, ground truth and surrogate the config names, the
search state (fresh, or restored from a checkpoint), the ground-truth cache, the event sink
and the checkpointer, then hands the search to the strategy ``search.strategy`` names and,
when it is done, to the final stage. Starting and resuming run directories is
:mod:`evo_nas.search.launch`'s.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from evo_nas.config.errors import ConfigError, first_line
from evo_nas.config.schema import (
    SearchConfig,
    build_final_ground_truth,
    build_ground_truth,
    build_space,
    build_surrogate,
    config_to_dict,
    initial_genotypes,
)
from evo_nas.execution.evaluation import Dispatcher, GroundTruthCache, Record
from evo_nas.execution.executors import InlineExecutor, make_executor
from evo_nas.rundir.events import EventSink, evaluation_event
from evo_nas.rundir.files import RunDir
from evo_nas.rundir.lock import RunLock
from evo_nas.search.budget import Budget
from evo_nas.search.checkpoint import Checkpoint, CheckpointError, CheckpointWarning
from evo_nas.search.checkpointer import Checkpointer
from evo_nas.search.evolution import Evolver, make_individual
from evo_nas.search.final_stage import run_final_stage
from evo_nas.search.fitness import Fitness
from evo_nas.search.parts import Search
from evo_nas.search.state import Generators, SearchState
from evo_nas.search.strategy import STRATEGIES, InFlight, Strategy
from evo_nas_common.registry import UnknownNameError
from evo_nas_common.statefile import dumps
from ground_truths import GroundTruth
from search_spaces import Genotype, SearchSpace
from search_spaces.pool import PoolSpace
from surrogates import Surrogate
from surrogates.base import Capabilities


def _pool_space(cfg: SearchConfig, space: SearchSpace, members: list[Genotype]) -> SearchSpace:
    try:
        return PoolSpace(space, members, **cfg.search.pool_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"search.pool_options: {e}") from None


def strategy_class(cfg: SearchConfig) -> type[Strategy]:
    """The strategy ``search.strategy`` names, having checked that it can run ``cfg``."""
    try:
        cls = STRATEGIES.get(cfg.search.strategy)
    except UnknownNameError as e:
        raise ConfigError(f"search.strategy: {e}") from None
    cls.check_config(cfg)
    return cls


@dataclass
class Components:
    """What the config names: the space (a pool of the ground truth's cells in pool mode),
    the ground truth, the surrogate (None: evolution on the ground truth) and the initial
    cells."""

    space: SearchSpace
    ground_truth: GroundTruth
    surrogate: Surrogate | None
    initial: list[Genotype]


def build_components(cfg: SearchConfig) -> Components:
    """Build every component the config names and refuse, one line each, combinations that
    cannot run (a capability the surrogate lacks, a pool the ground truth cannot list)."""
    space = build_space(cfg)
    ground_truth = build_ground_truth(cfg, space)
    if cfg.search.pool:
        try:
            members = ground_truth.genotypes()
        except NotImplementedError:
            raise ConfigError(
                f"search.pool: ground truth '{cfg.ground_truth.name}' cannot list its cells"
            ) from None
        space = _pool_space(cfg, space, members)
    surrogate = build_surrogate(cfg, space)
    can = surrogate.capabilities if surrogate is not None else Capabilities()
    if cfg.search.generator == "nao" and not can.generates:
        raise ConfigError(
            "search.generator: nao needs a surrogate that generates candidates (surrogate: nao)"
        )
    if cfg.surrogate_loop.warmup_candidates and surrogate is not None and not can.ranks_unfitted:
        raise ConfigError(
            f"surrogate_loop.warmup_candidates: surrogate '{cfg.surrogate.name}' cannot rank "
            "cells before it has seen any ground truth; set 0 (a random warm-up)"
        )
    if cfg.final is not None:  # refuse a bad final stage now, not after the search
        build_final_ground_truth(cfg, space, cfg.final.seeds[0])
    return Components(space, ground_truth, surrogate, initial_genotypes(cfg, space))


class SearchEngine:
    """One run of the search, bound to its run directory; ``checkpoint`` resumes it."""

    def __init__(
        self,
        cfg: SearchConfig,
        run_dir: RunDir,
        progress: bool | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        strategy_cls = strategy_class(cfg)
        parts = build_components(cfg)
        self.space, self.ground_truth = parts.space, parts.ground_truth
        self.surrogate = parts.surrogate
        self.show_progress = cfg.logging.progress if progress is None else progress
        self.state = checkpoint.state if checkpoint is not None else SearchState()
        self.search = self._wire(parts.initial, strategy_cls.replays_steps)
        self.cache, self.events = self.search.cache, self.search.events
        self.checkpointer = self.search.checkpointer
        self.strategy = strategy_cls(self.search)
        #: the run directory's lock, held until :meth:`run` returns
        self.lock: RunLock | None = None
        #: for a resumed run, the cells in flight at its checkpoint's boundary
        self.resumed: InFlight | None = None
        #: whether a resumed run had finished its search (and logged so)
        self.finished = False
        if checkpoint is not None:
            self._restore(checkpoint)

    def _wire(self, initial: list[Genotype], replays_steps: bool) -> Search:
        """The parts a strategy drives: cache, fitness, evolver, events and checkpointer."""
        cfg, space = self.cfg, self.space
        budget = Budget(cfg)
        cache = GroundTruthCache(
            space, None, cfg.budget.evaluations, self._on_record, budget.out_of_time
        )
        generators = Generators(cfg.seed)
        events = EventSink(self.run_dir, budget.elapsed, cfg.logging.tensorboard)
        fitness = Fitness(cfg.seed, space, self.surrogate, cache, self.state, events, replays_steps)
        evolver = Evolver(
            space,
            generators.numpy,
            fitness,
            fitness.taken,
            cfg.search.sample,
            cfg.search.mutation_retries,
            generators.python,
        )
        config = dumps(config_to_dict(cfg), "config")
        checkpointer = Checkpointer(config, self.run_dir, space, cache, events, budget)
        return Search(
            cfg,
            space,
            initial,
            self.state,
            cache,
            fitness,
            evolver,
            generators,
            events,
            budget,
            checkpointer,
        )

    # -- results ----------------------------------------------------------------------------
    def _on_record(self, record: Record) -> None:
        """A new ground-truth result: event, evaluations.csv, hall of fame, best.json,
        checkpoint, progress bar."""
        self.events.emit(evaluation_event(record))
        self.run_dir.append_evaluation(record)
        ind = make_individual(self.space, self.space.from_json(record["genotype"]))
        ind.fitness.values = (record["result"].objective,)
        self.state.hof.update([ind])
        best = self.cache.best_summary()
        if best is not None:
            self.run_dir.write_best(best)
        self.checkpointer.save()
        self.events.advance(None if best is None else best["objective"])

    # -- resuming ---------------------------------------------------------------------------
    def _load_surrogate(self, ck: Checkpoint) -> str | None:
        """Restore the fitted surrogate; why it must be refitted instead, if it must."""
        if self.surrogate is None:
            return None
        if ck.surrogate is None:
            return "the checkpoint holds no fitted state" if self.state.fitted else None
        try:
            self.surrogate.load_state_dict(ck.surrogate)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as e:
            # the surrogate's settings changed since the checkpoint (a new default of the
            # installed version), or its state was damaged: refit it on the results so far
            return first_line(e)
        return None

    def _restore(self, ck: Checkpoint) -> None:
        """Continue from a checkpoint's boundary: generators, strategy, surrogate, results and
        logs cut back to it (the results recorded since are replayed, :class:`GroundTruthCache`).
        """
        self.search.generators.restore(ck.rng)
        try:
            self.strategy.load_state_dict(ck.strategy)
        except ValueError as e:
            raise CheckpointError(
                f"{ck.path}: damaged checkpoint (boundary.strategy.{e})"
            ) from None
        stale = self._load_surrogate(ck)
        st = self.state
        # a checkpoint written before the boundary kept its events and cells keeps all results
        at = st.records_at_boundary if st.events_at_boundary is not None else len(ck.records)
        self.cache.load(ck.records, at)
        kept = self.run_dir.read_events()[: ck.events_kept]
        self.finished = st.done and any(e.get("event") == "done" for e in kept)
        # a finished run keeps the final stage's events; any other cuts back to its boundary
        self.events.written = self.run_dir.complete_events() if self.finished else ck.events_kept
        self.search.budget.resume_at(ck.elapsed_s)
        self.run_dir.remove_stale_temporaries()
        self.run_dir.truncate_events(self.events.written)
        if not self.run_dir.rewrite_evaluations(self.cache.records):
            warnings.warn(
                f"{self.run_dir.evaluations_path}: missing or damaged; rebuilt from the "
                f"checkpoint's {len(ck.records)} results",
                CheckpointWarning,
                stacklevel=2,
            )
        best = self.cache.best_summary()
        if best is not None:
            self.run_dir.write_best(best)
        self.checkpointer.resume(ck)
        self.resumed = dict(st.in_flight if st.in_flight is not None else ck.in_flight)
        if self.finished:
            return  # nothing left to do but the final stage: the logs stay as they are
        self.events.emit({"event": "resume", "evaluations": len(ck.records)})
        if ck.recovered is not None:
            self.events.emit({"event": "checkpoint_recovered", "reason": ck.recovered})
        if self.resumed:
            self.events.emit({"event": "requeue", "keys": sorted(self.resumed)})
        if stale is not None:
            warnings.warn(
                f"{ck.path}: the surrogate's state does not load ({stale}); refitting it on "
                f"the {len(self.cache.records)} results so far",
                CheckpointWarning,
                stacklevel=2,
            )
            self.events.emit({"event": "surrogate_refit", "reason": stale})
            self.search.fitness.fit()

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or continue) until a budget is spent; returns the best result.

        The run directory's lock (taken by :func:`~evo_nas.search.launch.start_run` or
        :func:`~evo_nas.search.launch.resume_search`) is released when this returns, however it
        returns.
        """
        try:
            return self._run()
        except Exception as e:  # unexpected: said in the run's log before it propagates
            self._record_error(e)
            raise
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _record_error(self, error: Exception) -> None:
        """An ``error`` event for an exception that ends the run (the dashboard shows it; a
        resume cuts it off with the rest of the unfinished step)."""
        try:
            self.events.emit(
                {"event": "error", "type": type(error).__name__, "message": first_line(error)}
            )
        except Exception:  # a full disk, say: the original exception must still propagate
            pass

    def _run(self) -> dict[str, Any]:
        self.ground_truth.attach(self.run_dir.ground_truth_dir)
        if not self.finished:
            self._search()
        if self.cfg.final is not None:
            run_final_stage(
                self.cfg, self.space, self.cache.records, self.run_dir, self.events.emit
            )
        return self.cache.best_summary() or {}

    def _search(self) -> None:
        """The strategy's search on the configured executor, then the ``done`` event (and a
        checkpoint that holds it, so that resuming a finished run changes nothing)."""
        execution = self.cfg.execution
        executor = make_executor(execution)
        cores = os.cpu_count() or 1
        threads = execution.threads_per_worker or (
            max(1, cores // executor.workers) if executor.workers > 1 else None
        )
        self.cache.dispatcher = Dispatcher(
            executor,
            self.ground_truth,
            threads,
            execution.retries,
            execution.timeout_s,
            self.events.retry,
        )
        if isinstance(executor, InlineExecutor):
            self.ground_truth.progress = self.events.training_progress  # in process: show inside
        if self.surrogate is not None and self.surrogate.capabilities.progress:
            self.surrogate.progress = self.events.training_progress
        self.events.open_progress(
            self.cfg.budget.evaluations, len(self.cache.records), self.show_progress
        )
        try:
            self.strategy.run(executor.workers, self.resumed)
            self.cache.flush_replay()
        finally:
            self.events.close_progress()
            executor.close()
        done = {"event": "done", "reason": self.state.reason}
        if self.surrogate is not None:
            done.update(self.search.fitness.take_costs())
        self.events.emit(done)
        self.strategy.snapshot()
