"""The search loop: warm-up, surrogate fits, evolution, promotions, checkpoints, resume.

The run advances in *steps* (a warm-up, one generation, one promotion). The state at the
start of the current step (population, logbook, hall of fame, RNG states, surrogate state)
is kept as the checkpoint's boundary, together with every ground-truth result so far, and
the checkpoint is rewritten after each ground-truth evaluation and each step. A resumed run
restores the boundary and replays the step: everything in it is deterministic given the
boundary, and the evaluations it already made are cache hits, so it ends exactly as an
uninterrupted run would (on CPU, with a fixed seed), with no evaluation repeated or lost.
The checkpoint is data (:mod:`evo_nas.checkpoint`), and one process at a time works in a run
directory (:mod:`evo_nas.runlock`).
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deap import tools
from scipy.stats import kendalltau
from tqdm import tqdm

from common.statefile import dumps
from evo_nas.checkpoint import (
    HALL_OF_FAME_SIZE,
    Checkpoint,
    CheckpointWarning,
    RngStates,
    boundary_json,
    checkpoint_bytes,
    load_checkpoint,
    record_json,
)
from evo_nas.config import (
    ConfigError,
    SearchConfig,
    build_final_ground_truth,
    build_ground_truth,
    build_space,
    build_surrogate,
    config_differences,
    config_to_dict,
    first_line,
    initial_genotypes,
    load_config,
    parse_config,
    read_yaml,
)
from evo_nas.evaluation import Dispatcher, GroundTruthCache, Record, isolated_rng
from evo_nas.evolution import (
    Evolver,
    genotype_of,
    make_individual,
    make_statistics,
    same_key,
)
from evo_nas.executors import InlineExecutor, make_executor
from evo_nas.final_stage import run_final_stage
from evo_nas.rundir import RunDir
from evo_nas.runlock import RunDirError, RunLock
from evo_nas.steady_state import run_steady_state
from evo_nas.tensorboard_log import TensorBoardLog
from search_spaces import Genotype, SearchSpace
from search_spaces.pool import PoolSpace


def _pool_space(cfg: SearchConfig, space: SearchSpace, members: list[Genotype]) -> SearchSpace:
    try:
        return PoolSpace(space, members, **cfg.search.pool_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"search.pool_options: {e}") from None


class SearchEngine:
    """One run of the search, bound to its run directory."""

    def __init__(self, cfg: SearchConfig, run_dir: RunDir, progress: bool | None = None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        space = build_space(cfg)
        self.ground_truth = build_ground_truth(cfg, space)
        if cfg.search.pool:
            try:
                members = self.ground_truth.genotypes()
            except NotImplementedError:
                raise ConfigError(
                    f"search.pool: ground truth '{cfg.ground_truth.name}' cannot list its cells"
                ) from None
            space = _pool_space(cfg, space, members)
        self.space = space
        self.surrogate = build_surrogate(cfg, space)
        self.initial = initial_genotypes(cfg, space)
        if cfg.search.generator == "nao" and not callable(
            getattr(self.surrogate, "generate", None)
        ):
            raise ConfigError(
                "search.generator: nao needs a surrogate that generates candidates (surrogate: nao)"
            )
        if cfg.final is not None:  # refuse a bad final stage now, not after the search
            build_final_ground_truth(cfg, space, cfg.final.seeds[0])
        self.show_progress = cfg.logging.progress if progress is None else progress
        self.cache = GroundTruthCache(
            space, None, cfg.budget.evaluations, self._on_record, self._out_of_time
        )
        self.rng = np.random.default_rng(cfg.seed)
        self.py_rng = random.Random(cfg.seed)  # DEAP's operators draw from this one
        torch.manual_seed(cfg.seed)
        self.state: dict[str, Any] = {
            "phase": "start",
            "round": 0,
            "generation": 0,
            "gen_in_round": 0,
            "population": [],
            "round_seen": {},
            "logbook": tools.Logbook(),
            "hof": tools.HallOfFame(HALL_OF_FAME_SIZE, similar=same_key),
            "stale": 0,
            "reason": "",
            "records_at_boundary": 0,
        }
        self.evolver = Evolver(
            space,
            self.rng,
            self._fitness,
            self._taken,
            cfg.search.sample,
            cfg.search.mutation_retries,
            self.py_rng,
        )
        self.events_written = 0
        self._elapsed_before = 0.0
        self._t0 = time.monotonic()
        self._config = dumps(config_to_dict(cfg), "config")
        self._boundary: bytes | None = None  # the state at the start of the current step, JSON
        self._records_json: list[bytes] = []  # cache.records as JSON (they only grow)
        self._keep_previous = True  # whether the next checkpoint keeps the one it replaces
        #: the run directory's lock, held until :meth:`run` returns
        self.lock: RunLock | None = None
        self._replaying = False
        self._requeue: dict[str, dict[str, Any]] = {}
        self._tensorboard = (
            TensorBoardLog(run_dir.path / "tensorboard") if cfg.logging.tensorboard else None
        )
        self._bar: tqdm | None = None

    # -- time and budget -------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self._elapsed_before + (time.monotonic() - self._t0)

    def _out_of_time(self) -> bool:
        limit = self.cfg.budget.wall_time_s
        return limit is not None and self.elapsed() >= limit

    # -- recording ---------------------------------------------------------------------------------
    def _event(self, event: dict[str, Any]) -> None:
        event = {**event, "elapsed_s": round(self.elapsed(), 3)}
        self.run_dir.append_event(event)
        self.events_written += 1
        if self._tensorboard is not None:
            self._tensorboard(event)

    def _best_dict(self) -> dict[str, Any] | None:
        best = self.cache.best()
        if best is None:
            return None
        res = best["result"]
        return {
            "key": best["key"],
            "genotype": best["genotype"],
            "describe": self.space.describe(self.space.from_json(best["genotype"])),
            "objective": res.objective,
            "status": res.status,
            "metrics": res.metrics,
            "found_at_evaluation": best["index"],
            "phase": best["phase"],
            "round": best["round"],
            "evaluations": len(self.cache.records),
        }

    def _on_record(self, record: Record) -> None:
        res = record["result"]
        self._event(
            {
                "event": "evaluation",
                "index": record["index"],
                "key": record["key"],
                "genotype": record["genotype"],
                "objective": res.objective,
                "status": res.status,
                "cost_s": res.cost_s,
                "phase": record["phase"],
                "round": record["round"],
                "predicted": record["predicted"],
                "message": res.message,
            }
        )
        self.run_dir.append_evaluation(record)
        ind = make_individual(self.space, self.space.from_json(record["genotype"]))
        ind.fitness.values = (res.objective,)
        self.state["hof"].update([ind])
        best = self._best_dict()
        if best is not None:
            self.run_dir.write_best(best)
        self._save_checkpoint()
        if self._bar is not None:
            self._bar.update(1)
            if best is not None:
                self._bar.set_postfix(best=f"{best['objective']:.4g}")

    def _save_checkpoint(self) -> None:
        records = self.cache.records
        self._records_json += [record_json(r) for r in records[len(self._records_json) :]]
        data = checkpoint_bytes(
            self._config,
            self._boundary,
            self._records_json,
            self.cache.in_flight,
            self.events_written,
            self.elapsed(),
        )
        self.run_dir.save_checkpoint(data, keep_previous=self._keep_previous)
        self._keep_previous = True

    def _snapshot(self) -> None:
        """Make the current state the boundary that a resume restarts from, and save it."""
        self.state["records_at_boundary"] = len(self.cache.records)
        rng = RngStates(self.py_rng.getstate(), self.rng.bit_generator.state, torch.get_rng_state())
        # an unfitted surrogate has nothing to save (and some refuse to say so)
        surrogate = self.surrogate.state_dict() if self.state.get("fitted") else None
        self._boundary = boundary_json(self.state, self.space, rng, surrogate)
        self._save_checkpoint()

    def _load_surrogate(self, ck: Checkpoint) -> str | None:
        """Restore the fitted surrogate; why it must be refitted instead, if it must."""
        if self.surrogate is None:
            return None
        if ck.surrogate is None:
            return "the checkpoint holds no fitted state" if self.state.get("fitted") else None
        try:
            self.surrogate.load_state_dict(ck.surrogate)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as e:
            # the surrogate's settings changed since the checkpoint (a new default of the
            # installed version), or its state was damaged: refit it on the results so far
            return first_line(e)
        return None

    def restore(self, ck: Checkpoint) -> None:
        """Continue from a checkpoint: boundary state, results, logs cut back to match."""
        self.state = ck.state
        self.py_rng.setstate(ck.rng.python)
        self.rng.bit_generator.state = ck.rng.numpy
        torch.set_rng_state(ck.rng.torch)
        stale = self._load_surrogate(ck)
        self.cache.load(ck.records)
        self._records_json = [record_json(r) for r in ck.records]
        self.events_written = ck.events_written
        self._elapsed_before = ck.elapsed_s
        self._t0 = time.monotonic()
        self.run_dir.remove_stale_temporaries()
        self.run_dir.truncate_events(self.events_written)
        if not self.run_dir.rewrite_evaluations(self.cache.records):
            warnings.warn(
                f"{self.run_dir.evaluations_path}: missing or damaged; rebuilt from the "
                f"checkpoint's {len(self.cache.records)} results",
                CheckpointWarning,
                stacklevel=2,
            )
        best = self._best_dict()
        if best is not None:
            self.run_dir.write_best(best)
        self._boundary = ck.boundary
        # resumed from an older generation: keep it until a new one is written over the bad one
        self._keep_previous = ck.recovered is None
        self._replaying = True
        self._requeue = dict(ck.in_flight)
        self._event({"event": "resume", "evaluations": len(self.cache.records)})
        if ck.recovered is not None:
            self._event({"event": "checkpoint_recovered", "reason": ck.recovered})
        if self._requeue:
            self._event({"event": "requeue", "keys": sorted(self._requeue)})
        if stale is not None:
            warnings.warn(
                f"{ck.path}: the surrogate's state does not load ({stale}); refitting it on "
                f"the {len(self.cache.records)} results so far",
                CheckpointWarning,
                stacklevel=2,
            )
            self._event({"event": "surrogate_refit", "reason": stale})
            self._fit_surrogate()

    def _training_progress(self, event: dict[str, Any]) -> None:
        """A long in-process training or surrogate fit shows where it is on the progress bar."""
        if self._bar is None:
            return
        kind = event.get("event")
        if kind == "batch":
            self._bar.set_postfix_str(
                f"training: epoch {event['epoch']} batch {event['batch']}/{event['batches']} "
                f"ppl {event['ppl']:.1f}",
                refresh=event["batch"] % 10 == 0,
            )
        elif kind == "epoch" and "epochs" in event:
            self._bar.set_postfix_str(f"training: epoch {event['epoch']}/{event['epochs']}")
        elif kind == "meta_step":
            self._bar.set_postfix_str(
                f"fitting surrogate: dish {event['dish']}/{event['dishes']} "
                f"step {event['step']}/{event['steps']} loss {event['loss']:.4g}",
                refresh=event["step"] % 5 == 0,
            )

    def _on_retry(self, key: str, attempt: int, reason: str) -> None:
        self._event({"event": "retry", "key": key, "attempt": attempt, "reason": reason})

    # -- fitness sources ---------------------------------------------------------------------------
    def _taken(self, key: str) -> bool:
        return self._known(key) or key in self.state["round_seen"]

    def _known(self, key: str) -> bool:
        """Evaluated before the current step began.

        Decisions inside a step look only at results from before it, so that a replayed step
        (whose own evaluations are already in the cache) decides exactly as the first try did.
        """
        if self.cfg.execution.asynchronous:  # no replay: everything known or running counts
            return key in self.cache or key in self.cache.in_flight
        record = self.cache.by_key.get(key)
        return record is not None and record["index"] <= self.state["records_at_boundary"]

    def _new_evaluations(self) -> int:
        return len(self.cache.records) - self.state["records_at_boundary"]

    def _ground_truth_fitness(self, genotypes: list[Genotype], phase: str) -> list[float]:
        results = self.cache.evaluate(genotypes, phase, self.state["round"])
        return [math.nan if r is None else r.objective for r in results]

    def _predict(self, genotypes: list[Genotype]) -> np.ndarray:
        assert self.surrogate is not None
        with isolated_rng(self.cfg.seed):
            pred = np.asarray(self.surrogate.predict(genotypes), dtype=float)
        return np.where(np.isnan(pred), np.inf, pred)

    def _fitness(self, genotypes: list[Genotype]) -> list[float]:
        if self.surrogate is None:
            return self._ground_truth_fitness(genotypes, "evolve")
        pred = self._predict(genotypes)
        seen = self.state["round_seen"]
        for g, p in zip(genotypes, pred):
            seen[self.space.key(g)] = (g, float(p))
        return [float(p) for p in pred]

    def _fit_surrogate(self) -> None:
        assert self.surrogate is not None
        records = self.cache.records
        genotypes = [self.space.from_json(r["genotype"]) for r in records]
        objectives = [r["result"].objective for r in records]
        start = time.perf_counter()
        with isolated_rng(self.cfg.seed * 1_000_003 + self.state["round"]):
            self.surrogate.fit(genotypes, objectives)
        self.state["fitted"] = True
        fit_s = time.perf_counter() - start
        y = np.asarray(objectives)
        finite = np.isfinite(y)
        tau = None
        if finite.sum() >= 3:
            pred = self._predict([g for g, f in zip(genotypes, finite) if f])
            tau = float(kendalltau(pred, y[finite]).statistic)
        self._event(
            {
                "event": "fit",
                "round": self.state["round"],
                "n": len(records),
                "fit_s": round(fit_s, 4),
                "train_kendall_tau": tau,
            }
        )

    # -- steps ----------------------------------------------------------------------------
    def _log_generation(self, members: list[Any], new_evals: int) -> None:
        st = self.state
        best = self.cache.best()
        row = {
            "gen": st["generation"],
            "round": st["round"],
            "evals": new_evals,
            "best": None if best is None else best["result"].objective,
            **(make_statistics().compile(members) if members else {}),
        }
        st["logbook"].record(**row)
        self._event({"event": "generation", **row})

    def _start(self) -> None:
        cfg, st = self.cfg, self.state
        if self.surrogate is None and cfg.search.algorithm == "random":
            if self.initial:
                self._ground_truth_fitness(list(self.initial), "evolve")
            st["phase"] = "evolve"
            return
        size = cfg.search.population if self.surrogate is None else cfg.surrogate_loop.warmup
        if cfg.budget.evaluations is not None:  # the ground truth answers no more than that
            size = min(size, cfg.budget.evaluations)
        chosen = [make_individual(self.space, g) for g in self.initial][:size]
        chosen += self.evolver.random_unseen(size - len(chosen), {i.key for i in chosen})
        phase = "evolve" if self.surrogate is None else "warmup"
        values = self._ground_truth_fitness([genotype_of(i) for i in chosen], phase)
        for ind, v in zip(chosen, values):
            ind.fitness.values = (v,)
        evaluated = [i for i in chosen if not math.isnan(i.fitness.values[0])]
        if self.surrogate is None:
            st["population"] = evaluated
            self._log_generation(evaluated, len(evaluated))
        else:
            st["round"] = 1
            self._fit_surrogate()
            ranked = sorted(evaluated, key=lambda i: i.fitness.values[0])
            population = ranked[: cfg.search.population]
            population += self.evolver.random_unseen(
                cfg.search.population - len(population), {i.key for i in population}
            )
            self._set_predicted_population(population)
        st["phase"] = "evolve"

    def _set_predicted_population(self, population: list[Any]) -> None:
        st = self.state
        st["round_seen"] = {}
        for ind in population:
            del ind.fitness.values
        self.evolver.assign(population)
        st["population"] = population
        st["gen_in_round"] = 0

    def _generation(self) -> None:
        cfg, st = self.cfg, self.state
        algo, n = cfg.search.algorithm, cfg.search.offspring
        if self.surrogate is not None and cfg.search.generator == "nao":
            children = self._generated_children(n)
        elif algo == "regularized":
            children = self.evolver.regularized_generation(
                st["population"], n, cfg.search.population
            )
        elif algo == "mu_plus_lambda":
            children = self.evolver.mu_plus_lambda_generation(st["population"], n)
        else:
            children = self.evolver.random_generation(n, set())
        st["generation"] += 1
        new_evals = self._new_evaluations()
        self._log_generation(children if algo == "random" else st["population"], new_evals)
        if self.surrogate is None:
            st["stale"] = 0 if new_evals else st["stale"] + 1
        else:
            st["gen_in_round"] += 1
            if st["gen_in_round"] >= cfg.surrogate_loop.generations:
                st["phase"] = "promote"

    def _generated_children(self, n: int) -> list[Any]:
        """NAO's generator instead of mutation: gradient steps from the best predicted cells."""
        st = self.state
        parents = sorted(st["population"], key=lambda i: i.fitness.values[0])
        seeds = [genotype_of(i) for i in parents[: self.cfg.search.sample]]
        with isolated_rng(self.cfg.seed + st["generation"]):
            genotypes, stats = self.surrogate.generate(seeds, n, self.rng)
        children = [make_individual(self.space, g) for g in genotypes]
        children = [c for c in children if not self._taken(c.key)]
        self.evolver.assign(children)
        st["population"] = sorted(st["population"] + children, key=lambda i: i.fitness.values[0])[
            : self.cfg.search.population
        ]
        self._event({"event": "generator", "round": st["round"], "kept": len(children), **stats})
        return children

    def _promote(self) -> None:
        cfg, st = self.cfg, self.state
        ranked = sorted((p, k, g) for k, (g, p) in st["round_seen"].items() if not self._known(k))
        top = ranked[: cfg.surrogate_loop.promote]
        chosen = [g for _, _, g in top]
        predicted = [p for p, _, _ in top]
        if cfg.surrogate_loop.explore:
            extra = self.evolver.random_unseen(
                cfg.surrogate_loop.explore, {self.space.key(g) for g in chosen}
            )
            extra_g = [genotype_of(i) for i in extra]
            chosen += extra_g
            predicted += [float(p) for p in self._predict(extra_g)] if extra_g else []
        self._event(
            {
                "event": "promote",
                "round": st["round"],
                "keys": [self.space.key(g) for g in chosen],
                "predicted": predicted,
            }
        )
        self.cache.evaluate(chosen, "promote", st["round"], predicted)
        new_evals = self._new_evaluations()
        st["stale"] = 0 if new_evals else st["stale"] + 1
        if self.cache.exhausted():
            return
        st["round"] += 1
        self._fit_surrogate()
        population = st["population"]
        self._set_predicted_population(population)
        st["phase"] = "evolve"

    def _check_done(self) -> bool:
        st = self.state
        if self.cache.remaining() == 0:
            st["reason"] = "evaluation budget spent"
        elif self._out_of_time():
            st["reason"] = "wall-time budget spent"
        elif st["stale"] >= self.cfg.search.max_stale_generations:
            st["reason"] = (
                f"no unseen candidate in {st['stale']} consecutive steps (space exhausted?)"
            )
        else:
            return False
        st["phase"] = "done"
        return True

    # -- driver ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or continue) until a budget is spent; returns the best result.

        The run directory's lock (taken by :func:`start_run` or :func:`resume_search`) is
        released when this returns, however it returns.
        """
        try:
            return self._run()
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _run(self) -> dict[str, Any]:
        self.ground_truth.attach(self.run_dir.ground_truth_dir)
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
            self._on_retry,
        )
        self.workers = executor.workers
        if isinstance(executor, InlineExecutor) and hasattr(self.ground_truth, "progress"):
            self.ground_truth.progress = self._training_progress  # in process: show inside
        if self.surrogate is not None and hasattr(self.surrogate, "progress"):
            self.surrogate.progress = self._training_progress
        total = self.cfg.budget.evaluations
        self._bar = tqdm(
            total=total,
            initial=len(self.cache.records),
            desc="ground-truth evaluations",
            unit="eval",
            disable=not self.show_progress,
        )
        try:
            if execution.asynchronous:
                if self._boundary is None:  # a fresh run: its first checkpoint has a state
                    self._snapshot()
                run_steady_state(self)
            while not execution.asynchronous:
                if self._replaying:
                    self._replaying = False  # the restored boundary is this step's start
                else:
                    if self.state["phase"] not in ("done", "start"):
                        self._check_done()
                    self._snapshot()
                phase = self.state["phase"]
                if phase == "done":
                    break
                if phase == "start":
                    self._start()
                elif phase == "evolve":
                    self._generation()
                else:
                    self._promote()
        finally:
            self._bar.close()
            self._bar = None
            executor.close()
        if not any(e.get("event") == "done" for e in self.run_dir.read_events()):
            self._event({"event": "done", "reason": self.state["reason"]})
        if self.cfg.final is not None:
            run_final_stage(self)
        return self._best_dict() or {}


def _run_dir_for(cfg: SearchConfig) -> RunDir:
    return RunDir(Path(cfg.output_dir) / cfg.name)


def check_config(config: str | Path) -> RunDir:
    """Validate a config file and build every component it names, writing nothing; returns
    the run directory a run of it would use (``evo-nas run --check``)."""
    cfg = load_config(config)
    SearchEngine(cfg, _run_dir_for(cfg), progress=False)
    return _run_dir_for(cfg)


def _refuse_existing(run_dir: RunDir) -> None:
    run_dir.refuse_if_locked()  # a run working there: name it
    raise ConfigError(
        f"name: run directory {run_dir.path} already exists "
        "(use `evo-nas resume` to continue it, or --overwrite to start again)"
    )


def start_run(
    config: SearchConfig | dict[str, Any] | str | Path,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    base_dir: Path | None = None,
) -> tuple[SearchEngine, RunDir]:
    """Validate ``config``, build every component and create a fresh run directory.

    The returned engine holds the run directory's lock; :meth:`SearchEngine.run` releases it.
    """
    if isinstance(config, (str, Path)):
        cfg = load_config(config)
    elif isinstance(config, dict):
        cfg = parse_config(config, Path(base_dir or Path.cwd()).resolve())
    else:
        cfg = config
    run_dir = _run_dir_for(cfg)
    if run_dir.exists() and not overwrite:
        _refuse_existing(run_dir)
    engine = SearchEngine(cfg, run_dir, progress)
    lock = run_dir.lock()
    try:
        if run_dir.exists() and not overwrite:  # another run created it meanwhile
            raise ConfigError(f"name: run directory {run_dir.path} was just created by another run")
        try:
            run_dir.create(config_to_dict(cfg))
        except OSError as e:
            raise RunDirError(f"{run_dir.path}: cannot write the run directory ({e})") from None
    except BaseException:
        lock.release()
        raise
    engine.lock = lock
    return engine, run_dir


def run_search(
    config: SearchConfig | dict[str, Any] | str | Path,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Run a search from a config (path, dict or model); returns ``best.json``'s content."""
    engine, _ = start_run(config, overwrite=overwrite, progress=progress, base_dir=base_dir)
    return engine.run()


def _resumed_engine(rd: RunDir, progress: bool | None) -> SearchEngine:
    """The engine of a run directory, restored from its checkpoint (its lock is held)."""
    data = read_yaml(rd.config_path)
    try:
        current = parse_config(data, rd.path.resolve())
    except ConfigError as e:
        raise ConfigError(f"{rd.config_path}: {e}") from None
    if not rd.checkpoint_files():
        held = rd.holds_results()
        if held is not None:
            raise RunDirError(
                f"{rd.checkpoint_path}: missing, but {held}; refusing to start the run again "
                "over its results (restore the checkpoint, or start again with "
                "`evo-nas run CONFIG --overwrite`)"
            )
        engine = SearchEngine(current, rd, progress)  # killed before its first checkpoint
        rd.create(config_to_dict(current))
        return engine
    ck = load_checkpoint(rd, build_space(current))
    diffs = config_differences(ck.config, config_to_dict(current))
    if diffs:
        raise ConfigError(
            "config.yaml differs from the run's config, refusing to resume: " + "; ".join(diffs)
        )
    rd.check_events(ck.events_written)
    engine = SearchEngine(current, rd, progress)
    engine.restore(ck)
    return engine


def resume_search(run_dir: Path | str, progress: bool | None = None) -> dict[str, Any]:
    """Continue a killed run; refuses when its config.yaml no longer matches the run's, when
    another process works in it, or when its files are damaged beyond what it can recover."""
    rd = RunDir(Path(run_dir))
    if not rd.config_path.exists():
        raise RunDirError(f"{rd.path}: not a run directory (no config.yaml)")
    if rd.pickle_checkpoint_path.exists() and not rd.checkpoint_files():
        raise RunDirError(
            f"{rd.pickle_checkpoint_path}: a pickle checkpoint of an earlier evo-nas, which "
            "resume no longer reads (unpickling can run code); if you trust where it comes "
            f"from, convert it with `evo-nas convert-checkpoint {rd.path}`"
        )
    lock = rd.lock()
    try:
        engine = _resumed_engine(rd, progress)
    except BaseException:
        lock.release()
        raise
    engine.lock = lock
    return engine.run()
