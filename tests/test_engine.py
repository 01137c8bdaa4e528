"""The search loop end to end on a table ground truth: files, dedup, budgets, failures."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from click.testing import CliRunner

import evo_nas
from evo_nas.cli.commands import main
from evo_nas.config.errors import ConfigError
from evo_nas.rundir.files import RunDir
from evo_nas.search.launch import resume_search, run_search
from evo_nas_common import statefile
from ground_truths import GROUND_TRUTHS, GroundTruth, Result
from search_spaces import get_space


def config(tmp_path, demo_table, **sections):
    cfg = {
        "name": "run",
        "output_dir": str(tmp_path / "runs"),
        "seed": 3,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogate": "random",
        "search": {"population": 8, "sample": 3, "offspring": 4},
        "surrogate_loop": {"warmup": 6, "generations": 2, "promote": 3, "explore": 1},
        "budget": {"evaluations": 24},
    }
    for k, v in sections.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def table_min(demo_table):
    import csv

    with demo_table.open() as fh:
        return min(float(r["objective"]) for r in csv.DictReader(fh))


def test_surrogate_assisted_run_writes_the_run_directory(tmp_path, demo_table):
    best = run_search(config(tmp_path, demo_table), progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    rows = rd.read_evaluations()
    assert len(rows) == 24
    assert len({r["key"] for r in rows}) == 24  # never twice
    assert [int(r["index"]) for r in rows] == list(range(1, 25))
    assert {r["phase"] for r in rows} == {"warmup", "promote"}
    assert all(r["predicted"] for r in rows if r["phase"] == "promote")
    objectives = [float(r["objective"]) for r in rows]
    assert best["objective"] == min(objectives) == rd.read_best()["objective"]
    assert rows[best["found_at_evaluation"] - 1]["key"] == best["key"]
    events = rd.read_events()
    kinds = {e["event"] for e in events}
    assert {"evaluation", "generation", "fit", "promote", "done"} <= kinds
    assert sum(e["event"] == "evaluation" for e in events) == 24
    stored = yaml.safe_load(rd.config_path.read_text())
    assert stored["surrogate"]["name"] == "random"
    ckpt = statefile.loads(rd.checkpoint_path.read_bytes())  # plain data, no pickle
    boundary = ckpt["boundary"]
    assert {"search", "strategy", "rng", "surrogate"} == set(boundary)
    assert {"population", "logbook", "hof"} <= set(boundary["search"])
    assert boundary["strategy"] == {"phase": "promote", "gen_in_round": 2, "stale": 0}
    assert {"python", "numpy", "torch"} == set(boundary["rng"])
    assert len(ckpt["records"]) == 24
    assert boundary["search"]["hof"][0]["fitness"] == [best["objective"]]
    assert rd.previous_checkpoint_path.exists()  # the generation before is kept


@pytest.mark.parametrize("algorithm", ["regularized", "mu_plus_lambda", "random"])
def test_evolution_on_the_ground_truth(tmp_path, demo_table, algorithm):
    cfg = config(tmp_path, demo_table, surrogate="none", search={"algorithm": algorithm})
    cfg["budget"] = {"evaluations": 40}
    best = run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    rows = rd.read_evaluations()
    assert len(rows) == 40 and len({r["key"] for r in rows}) == 40
    gens = [e for e in rd.read_events() if e["event"] == "generation"]
    assert gens and sum(g["evals"] for g in gens) == 40
    assert best["objective"] < sorted(float(r["objective"]) for r in rows)[len(rows) // 2]


def test_same_seed_same_run_and_parallel_equals_serial(tmp_path, demo_table):
    runs = []
    for name, jobs in (("a", 1), ("b", 1), ("c", 2)):
        cfg = config(tmp_path, demo_table, name=name, execution={"workers": jobs})
        run_search(cfg, progress=False)
        rows = RunDir(tmp_path / "runs" / name).read_evaluations()
        runs.append([(r["key"], r["objective"], r["phase"]) for r in rows])
    assert runs[0] == runs[1] == runs[2]
    other = config(tmp_path, demo_table, name="d", seed=4)
    run_search(other, progress=False)
    assert [r["key"] for r in RunDir(tmp_path / "runs" / "d").read_evaluations()] != [
        k for k, _, _ in runs[0]
    ]


def test_exhausted_space_stops_without_repeating(tmp_path):
    space = get_space("darts_rnn", nodes=2)
    cells = {}
    for p in (0, 1):
        for a in space.activations:
            for b in space.activations:
                g = ((a, 0), (b, p))
                cells.setdefault(space.key(g), g)
    table = tmp_path / "all.csv"
    table.write_text(
        "genotype,objective\n"
        + "".join(f'"{space.to_json(g)}",{i}\n' for i, g in enumerate(cells.values()))
    )
    cfg = {
        "name": "tiny",
        "output_dir": str(tmp_path / "runs"),
        "space": {"name": "darts_rnn", "options": {"nodes": 2}},
        "ground_truth": {"name": "table", "options": {"path": str(table)}},
        "search": {
            "algorithm": "regularized",
            "population": 4,
            "sample": 2,
            "offspring": 2,
            "max_stale_generations": 5,
        },
        "budget": {"evaluations": 500},
    }
    best = run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "tiny")
    keys = [r["key"] for r in rd.read_evaluations()]
    assert len(keys) == len(set(keys)) <= len(cells)
    assert best["objective"] == 0.0 or len(keys) < len(cells)
    done = [e for e in rd.read_events() if e["event"] == "done"]
    assert "no unseen candidate" in done[-1]["reason"]


class FlakyGroundTruth(GroundTruth):
    """Raises on cells with a relu, diverges on cells with an identity, else 'trains'."""

    def evaluate_one(self, genotype):
        acts = [a for a, _ in genotype]
        if "relu" in acts:
            raise RuntimeError("CUDA error: pretend the cell crashed")
        if "identity" in acts:
            return Result(math.nan, cost_s=1.0)
        return Result(10.0 + acts.count("tanh"), cost_s=1.0)


def test_failures_and_divergence_are_recorded_not_raised(tmp_path, demo_table):
    GROUND_TRUTHS.register("flaky", FlakyGroundTruth)
    try:
        cfg = config(tmp_path, demo_table, ground_truth={"name": "flaky", "options": {}})
        run_search(cfg, progress=False)
    finally:
        GROUND_TRUTHS.unregister("flaky")
    rows = RunDir(tmp_path / "runs" / "run").read_evaluations()
    assert len(rows) == 24
    statuses = {r["status"] for r in rows}
    assert {"failed", "diverged"} <= statuses
    failed = [r for r in rows if r["status"] == "failed"]
    assert all(r["objective"] == "inf" and "CUDA error" in r["message"] for r in failed)
    assert all(r["objective"] == "inf" for r in rows if r["status"] == "diverged")


def test_resume_with_changed_config_is_refused(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table)
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    stored = yaml.safe_load(rd.config_path.read_text())
    stored["budget"]["evaluations"] = 50
    stored["search"]["offspring"] = 7
    rd.config_path.write_text(yaml.safe_dump(stored))
    with pytest.raises(ConfigError) as err:
        resume_search(rd.path)
    assert "budget.evaluations: 24 -> 50" in str(err.value)
    assert "search.offspring: 4 -> 7" in str(err.value)
    result = CliRunner().invoke(main, ["resume", str(rd.path)])
    assert result.exit_code == 2 and "refusing to resume" in result.output


def test_finished_run_resumes_to_the_same_answer(tmp_path, demo_table):
    best = run_search(config(tmp_path, demo_table), progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    before = rd.evaluations_path.read_text()
    assert resume_search(rd.path, progress=False) == best
    assert rd.evaluations_path.read_text() == before


def test_show_prints_best_cells_and_progress(tmp_path, demo_table):
    run_search(config(tmp_path, demo_table), progress=False)
    out = CliRunner().invoke(main, ["show", str(tmp_path / "runs" / "run"), "--top", "3"]).output
    best = json.loads((tmp_path / "runs" / "run" / "best.json").read_text())
    assert "best 3 of 24" in out and best["key"] in out
    assert "finished: evaluation budget spent" in out


def test_wall_time_budget_stops_the_search(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table, budget={"evaluations": None, "wall_time_s": 1.0})
    cfg["ground_truth"]["options"]["delay_s"] = 0.05
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    done = [e for e in rd.read_events() if e["event"] == "done"]
    assert done[-1]["reason"] == "wall-time budget spent"
    assert 5 <= len(rd.read_evaluations()) < 60


class Retrainer(GroundTruth):
    """A 'longer training': the table's objective plus 1000, counting its calls."""

    calls = 0

    def __init__(self, space, path: str = "", seed: int = 0):
        super().__init__(space)
        from ground_truths.table import TableGroundTruth

        self.table = TableGroundTruth(space, path)
        self.seed = seed

    def evaluate_one(self, genotype):
        Retrainer.calls += 1
        r = self.table.evaluate_one(genotype)
        return Result(r.objective + 1000 + self.seed, metrics={"val_ppl": 1.0, "test_ppl": 2.0})


def test_final_stage_retrains_the_top_cells_once(tmp_path, demo_table):
    GROUND_TRUTHS.register("retrainer", Retrainer)
    Retrainer.calls = 0
    try:
        cfg = config(tmp_path, demo_table)
        cfg["final"] = {
            "top_k": 3,
            "seeds": [0, 1],
            "ground_truth": {"name": "retrainer", "options": {"path": str(demo_table)}},
        }
        best = run_search(cfg, progress=False)
        rd = RunDir(tmp_path / "runs" / "run")
        summary = json.loads((rd.path / "final.json").read_text())
        assert Retrainer.calls == 6
        assert len(summary["cells"]) == 3 and summary["cells"][0]["key"] == best["key"]
        cell = summary["cells"][0]
        assert cell["objective"]["mean"] == pytest.approx(best["objective"] + 1000.5)
        assert cell["objective"]["std"] == pytest.approx(0.5)
        assert cell["test_ppl"] == {"mean": 2.0, "std": 0.0}
        # a resumed run finds every (cell, seed) done and retrains nothing
        lines = (rd.path / "final.jsonl").read_text().splitlines()
        (rd.path / "final.jsonl").write_text("\n".join(lines[:4]) + "\n")
        resume_search(rd.path, progress=False)
        assert Retrainer.calls == 8
    finally:
        GROUND_TRUTHS.unregister("retrainer")


def test_final_stage_is_checked_before_the_search(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table)
    cfg["final"] = {
        "seeds": [0, 1],
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
    }
    with pytest.raises(ConfigError, match="final.seeds: ground truth 'table' takes no seed"):
        run_search(cfg, progress=False)
    assert not (tmp_path / "runs" / "run" / "evaluations.csv").exists()


def test_nao_generator_proposes_the_candidates(tmp_path, demo_table):
    cfg = config(
        tmp_path,
        demo_table,
        surrogate={
            "name": "nao",
            "options": {
                "epochs": 30,
                "patience": 10,
                "hidden": 16,
                "embedding": 16,
                "mlp_hidden": 32,
            },
        },
        search={"generator": "nao", "offspring": 3},
        surrogate_loop={"warmup": 6, "generations": 1, "promote": 3},
    )
    cfg["budget"] = {"evaluations": 9}
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    gens = [e for e in rd.read_events() if e["event"] == "generator"]
    assert gens and all(e["kept"] >= 0 and "dropped" in e for e in gens)
    rows = rd.read_evaluations()
    assert len(rows) == 9 and len({r["key"] for r in rows}) == 9


def test_generator_needs_a_generating_surrogate(tmp_path, demo_table):
    cfg = config(tmp_path, demo_table, search={"generator": "nao"})
    with pytest.raises(ConfigError, match="search.generator: nao needs a surrogate"):
        run_search(cfg, progress=False)


def test_tensorboard_mirrors_the_events(tmp_path, demo_table):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(tmp_path, demo_table, logging={"tensorboard": True})
    best = run_search(cfg, progress=False)
    acc = EventAccumulator(str(tmp_path / "runs" / "run" / "tensorboard"))
    acc.Reload()
    curve = acc.Scalars("ground_truth/best_so_far")
    assert len(curve) == 24 and curve[-1].value == pytest.approx(best["objective"])
    assert acc.Scalars("surrogate/fit_s")


class ReportingGroundTruth(GroundTruth):
    """Reports batch progress through the ``progress`` slot the PTB trainer also has."""

    progress = None
    reported: list[bool] = []

    def evaluate_one(self, genotype):
        if self.progress is not None:
            self.progress({"event": "batch", "epoch": 1, "batch": 10, "batches": 20, "ppl": 5.0})
        ReportingGroundTruth.reported.append(self.progress is not None)
        return Result(float(len(self.space.key(genotype))))


def test_in_process_training_reports_to_the_progress_bar(tmp_path, demo_table):
    GROUND_TRUTHS.register("reporting", ReportingGroundTruth)
    ReportingGroundTruth.reported = []
    try:
        cfg = config(tmp_path, demo_table, ground_truth={"name": "reporting", "options": {}})
        cfg["budget"] = {"evaluations": 8}
        run_search(cfg, progress=True)
    finally:
        GROUND_TRUTHS.unregister("reporting")
    assert len(ReportingGroundTruth.reported) == 8 and all(ReportingGroundTruth.reported)


class Batches(evo_nas.Strategy):
    """A plug-in strategy: random unseen cells in batches of three, counting its batches."""

    replays_steps = True

    def __init__(self, search):
        super().__init__(search)
        self.batches = 0

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = int(state["batches"])

    def run(self, workers, resumed):
        search = self.search
        while True:
            if resumed is None:  # (a resumed run replays the batch it was in)
                if self.batches:
                    search.check_done(0)
                self.snapshot()
            resumed = None
            if search.state.done:
                break
            cells = search.evolver.random_unseen(3, set())
            search.fitness.ground_truth([c[0] for c in cells], "evolve")
            self.batches += 1


class Killed(Exception):
    pass


def test_a_new_strategy_is_one_class_and_a_registry_line(tmp_path, demo_table):
    evo_nas.STRATEGIES.register("batches", Batches)
    try:
        cfg = config(tmp_path, demo_table, surrogate="none", search={"strategy": "batches"})
        cfg["budget"] = {"evaluations": 12}
        run_search(cfg, progress=False)
        whole = RunDir(tmp_path / "runs" / "run")
        assert len(whole.evaluations_path.read_text().splitlines()) == 13
        ckpt = statefile.loads(whole.checkpoint_path.read_bytes())
        assert ckpt["boundary"]["strategy"] == {"batches": 4}

        engine, rd = evo_nas.start_run(dict(cfg, name="killed"), progress=False)
        record = engine.cache.on_record

        def on_record(r):
            record(r)
            if r["index"] == 7:
                raise Killed  # as a SIGKILL right after the 7th result's checkpoint

        engine.cache.on_record = on_record
        with pytest.raises(Killed):
            engine.run()
        resume_search(rd.path, progress=False)
        assert rd.evaluations_path.read_text() == whole.evaluations_path.read_text()
    finally:
        evo_nas.STRATEGIES.unregister("batches")
