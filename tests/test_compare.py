"""Head-to-head comparisons and run reports: metrics, grids, splits, resume, plots, export."""

from __future__ import annotations

import csv
import json
import runpy

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from evo_nas.cli.commands import main
from evo_nas.compare.metrics import precision_at_top, ranking_metrics
from evo_nas.compare.predict import draw_sets, load_predict_config, run_predict_comparison
from evo_nas.config.components import construct
from evo_nas.search.launch import run_search
from ground_truths.table import TableGroundTruth
from search_spaces import get_space
from surrogates import SURROGATES, Surrogate


def test_metrics_agree_with_scipy():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=200), rng.normal(size=200)
    p[:50] = y[:50]  # some signal
    m = ranking_metrics(y, p, top_percents=(10, 25))
    assert m["kendall_tau"] == pytest.approx(stats.kendalltau(y, p).statistic)
    assert m["spearman_rho"] == pytest.approx(stats.spearmanr(y, p).statistic)
    assert m["pearson_ranks"] == pytest.approx(m["spearman_rho"])  # no ties
    assert m["regret"] == pytest.approx(y[np.argmin(p)] - y.min())
    true_top = set(np.argsort(y)[:20])
    assert m["precision_top10"] == sum(i in true_top for i in np.argsort(p)[:20]) / 20
    assert precision_at_top(np.arange(10.0), np.arange(10.0)[::-1], 20) == 0.0


class Oracle(Surrogate):
    """Predicts the table's own objective (sign=+1) or its reverse (sign=-1)."""

    fits: list[list[str]] = []

    def __init__(self, space, seed=0, path: str = "", sign: float = 1.0):
        super().__init__(space, seed)
        self.table = TableGroundTruth(space, path)
        self.sign = sign

    def fit(self, genotypes, objectives):
        Oracle.fits.append([self.space.key(g) for g in genotypes])
        return self

    def predict(self, genotypes):
        return self.sign * np.array([r.objective for r in self.table.evaluate(genotypes)])

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture
def oracle():
    SURROGATES.register("oracle", Oracle)
    Oracle.fits = []
    yield
    SURROGATES.unregister("oracle")


def _predict_config(tmp_path, demo_table, **extra):
    cfg = {
        "name": "cmp",
        "output_dir": str(tmp_path / "out"),
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogates": [
            {"name": "oracle", "options": {"path": str(demo_table)}},
            {
                "name": "oracle",
                "label": "reversed",
                "options": {"path": str(demo_table), "sign": -1},
            },
            "random",
        ],
        "sizes": [5, 10, 20],
        "seeds": [0, 1],
        "test": {"size": 100},
        **extra,
    }
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_oracle_scores_one_and_reversed_minus_one(tmp_path, demo_table, oracle):
    out = run_predict_comparison(load_predict_config(_predict_config(tmp_path, demo_table)), False)
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 3 * 2  # surrogates x sizes x seeds
    for r in rows:
        tau = float(r["kendall_tau"])
        if r["surrogate"] == "oracle":
            assert tau == pytest.approx(1.0) and float(r["regret"]) == 0.0
        elif r["surrogate"] == "reversed":
            assert tau == pytest.approx(-1.0)
        else:
            assert abs(tau) < 0.3
    summary = (out / "summary.md").read_text()
    assert "| oracle | 5 | 2 | 1.000 ± 0.000" in summary
    with (out / "predictions.csv").open() as fh:
        assert sum(1 for _ in fh) == 1 + 18 * 100
    for name in ("kendall_tau_vs_size.png", "precision_top10_vs_size.png", "scatter_n20.png"):
        assert (out / "plots" / name).stat().st_size > 5000


def test_size_zero_ranks_unfitted_with_the_surrogates_that_can(tmp_path, demo_table, oracle):
    path = _predict_config(tmp_path, demo_table, sizes=[0, 5])
    out = run_predict_comparison(load_predict_config(path), False)
    with (out / "results.csv").open() as fh:
        rows = [(r["surrogate"], int(r["size"])) for r in csv.DictReader(fh)]
    # the oracle needs a fit (it does not rank unfitted); the random floor ranks at N = 0
    assert sorted(set(rows)) == [("oracle", 5), ("random", 0), ("random", 5), ("reversed", 5)]
    assert all(len(f) == 5 for f in Oracle.fits)  # no fit on an empty training set


def test_training_sets_are_prefixes_and_disjoint_from_test(tmp_path, demo_table, oracle):
    run_predict_comparison(load_predict_config(_predict_config(tmp_path, demo_table)), False)
    with (tmp_path / "out/cmp/test_set.csv").open() as fh:
        test_keys = {r["key"] for r in csv.DictReader(fh)}
    by_seed: dict[int, list[list[str]]] = {}
    # oracle then reversed each fit seeds 0,1 x sizes 5,10,20 in grid order
    for i, keys in enumerate(Oracle.fits[:6]):
        by_seed.setdefault(i // 3, []).append(keys)
    for fits in by_seed.values():
        assert [len(f) for f in fits] == [5, 10, 20]
        assert fits[1][:5] == fits[0] and fits[2][:10] == fits[1]
        assert not set(fits[2]) & test_keys
    assert by_seed[0][2] != by_seed[1][2]  # another seed, another draw


def test_killed_comparison_skips_done_cells(tmp_path, demo_table, oracle):
    cfg = load_predict_config(_predict_config(tmp_path, demo_table))
    run_predict_comparison(cfg, False)
    cells = sorted((tmp_path / "out/cmp/cells").glob("oracle__*.json"))
    cells[0].unlink()
    Oracle.fits = []
    run_predict_comparison(cfg, False)
    assert len(Oracle.fits) == 1  # only the missing cell was redone


def test_explicit_split_is_replayed_exactly(tmp_path, demo_table, oracle):
    space = get_space("darts_rnn", nodes=4)
    gt = TableGroundTruth(space, demo_table)
    cells = gt.genotypes()[:60]
    train = tmp_path / "train.csv"
    test = tmp_path / "test.jsonl"
    train.write_text("genotype\n" + "".join(f'"{space.to_json(g)}"\n' for g in cells[:20]))
    test.write_text("".join(json.dumps({"genotype": space.to_json(g)}) + "\n" for g in cells[20:]))
    path = _predict_config(
        tmp_path, demo_table, split={"train": str(train), "test": str(test)}, sizes=[10, 20]
    )
    out = run_predict_comparison(load_predict_config(path), False)
    with (out / "test_set.csv").open() as fh:
        keys = [r["key"] for r in csv.DictReader(fh)]
    assert keys == [space.key(g) for g in cells[20:]]
    assert Oracle.fits[1] == [space.key(g) for g in cells[:20]]


def test_mutant_test_set_holds_neighbours_of_good_cells(tmp_path, demo_table, oracle):
    cfg = load_predict_config(
        _predict_config(tmp_path, demo_table, test={"kind": "mutants", "size": 50})
    )
    space = construct("space", cfg.space)
    gt = construct("ground_truth", cfg.ground_truth, space=space)
    test, orders = draw_sets(cfg, space, gt)
    assert len(test) == 50 and len({space.key(g) for g, _ in test}) == 50
    all_y = np.array([r.objective for r in gt.evaluate(gt.genotypes())])
    assert np.median([y for _, y in test]) < np.median(all_y)


def test_compare_predict_cli_and_bad_config(tmp_path, demo_table, oracle):
    path = _predict_config(tmp_path, demo_table, sizes=[5], seeds=[0])
    result = CliRunner().invoke(main, ["compare", "predict", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "| oracle | 5 | 1 |" in result.output
    bad = yaml.safe_load(path.read_text())
    bad["surrogates"].append({"name": "nope"})
    path.write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(main, ["compare", "predict", str(path)])
    assert result.exit_code == 2 and "surrogate.name: unknown surrogate 'nope'" in result.output


def test_compare_search_runs_every_method_and_resumes(tmp_path, demo_table):
    base = {
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "search": {"population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 5, "generations": 2, "promote": 3},
        "budget": {"evaluations": 15},
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    cmp = {
        "name": "cs",
        "output_dir": "out",
        "base": "base.yaml",
        "seeds": [0, 1],
        "methods": [
            {"label": "random_search", "surrogate": "none", "search": {"algorithm": "random"}},
            {"label": "evolution", "surrogate": "none"},
            {"label": "random_surrogate", "surrogate": "random"},
        ],
    }
    (tmp_path / "cs.yaml").write_text(yaml.safe_dump(cmp))
    result = CliRunner().invoke(main, ["compare", "search", str(tmp_path / "cs.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "cs"
    with (out / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(int(r["evaluations"]) == 15 for r in rows)
    # both targets, the best 0.1 % and 1 % of the table, each with its column and table
    objectives = sorted(float(r["objective"]) for r in csv.DictReader(demo_table.open()))
    for name, q in (("best_0.1pct", 0.001), ("best_1pct", 0.01)):
        target = float(np.quantile(objectives, q))
        for r in rows:
            runs = out / "runs" / f"{r['method']}__s{r['seed']}" / "evaluations.csv"
            values = [float(e["objective"]) for e in csv.DictReader(runs.open())]
            reached = next((i + 1 for i, v in enumerate(values) if v <= target), None)
            assert r[f"evals_to_{name}"] == ("" if reached is None else str(reached))
    summary = (out / "summary.md").read_text()
    assert "## best_0.1pct" in summary and "## best_1pct" in summary
    assert summary.count("| evolution | 2 |") == 2
    assert (out / "best_so_far.png").stat().st_size > 5000
    before = (out / "runs" / "evolution__s0" / "evaluations.csv").stat().st_mtime_ns
    again = CliRunner().invoke(main, ["compare", "search", str(tmp_path / "cs.yaml"), "--quiet"])
    assert again.exit_code == 0
    assert (out / "runs" / "evolution__s0" / "evaluations.csv").stat().st_mtime_ns == before


def test_show_plots_and_export_round_trip(tmp_path, demo_table):
    cfg = {
        "name": "r",
        "output_dir": str(tmp_path / "runs"),
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogate": "random",
        "budget": {"evaluations": 20},
    }
    run_search(cfg, progress=False)
    run_dir = tmp_path / "runs" / "r"
    result = CliRunner().invoke(main, ["show", str(run_dir), "--plots"])
    assert result.exit_code == 0, result.output
    for name in ("best_so_far.png", "refits.png", "cell_1.png", "cell_3.png"):
        assert (run_dir / "plots" / name).stat().st_size > 3000
    result = CliRunner().invoke(main, ["export", str(run_dir), "--top", "4"])
    assert result.exit_code == 0, result.output
    exported = json.loads((run_dir / "export" / "top_cells.json").read_text())
    assert [c["rank"] for c in exported] == [1, 2, 3, 4]
    best = json.loads((run_dir / "best.json").read_text())
    assert exported[0]["key"] == best["key"] and exported[0]["objective"] == best["objective"]
    ns = runpy.run_path(str(run_dir / "export" / "rebuild_cells.py"))
    space = get_space("darts_rnn", nodes=4)
    for c in exported:
        module = ns["modules"][c["key"]]
        assert space.key(module.genotype) == c["key"]


def test_cell_drawings_for_every_registered_graph_space(tmp_path):
    from evo_nas.reports.plots import draw_cell

    space = get_space("darts_rnn")
    path = draw_cell(space, space.validate("DARTS_V2"), tmp_path / "v2.png", "DARTS_V2")
    assert path.stat().st_size > 3000
