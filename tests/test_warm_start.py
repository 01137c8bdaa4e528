"""What a surrogate-assisted search does with its surrogate before and between trainings:
the warm start from a ranked candidate batch, promotion by a lower confidence bound, and the
figures it reports on what the surrogate saved."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from test_engine import config

from evo_nas.cli.commands import main
from evo_nas.compare.search import median_evaluations, search_summary
from evo_nas.config.errors import ConfigError
from evo_nas.rundir.files import RunDir
from evo_nas.search.launch import run_search, start_run
from ground_truths.table import TableGroundTruth
from search_spaces import get_space
from surrogates import SURROGATES
from surrogates.baselines import ParamsSurrogate
from surrogates.random_surrogate import RandomSurrogate


def _warm_config(tmp_path, demo_table, **loop):
    return config(
        tmp_path,
        demo_table,
        surrogate="params",
        search={"pool": True},
        surrogate_loop={"warmup": 6, "warmup_candidates": 10_000, "explore": 0, **loop},
        budget={"evaluations": 12},
    )


def test_the_warm_start_trains_the_best_ranked_candidates(tmp_path, demo_table):
    run_search(_warm_config(tmp_path, demo_table), progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    rows = rd.read_evaluations()
    warm = [r for r in rows if r["phase"] == "warmup"]
    # every cell of the table was a candidate: the warm-up holds the six with the most
    # parameters (the unfitted count surrogate's best), ties broken by key
    darts = get_space("darts_rnn", nodes=4)
    table = TableGroundTruth(darts, demo_table).genotypes()
    counts = ParamsSurrogate(darts)
    ranked = sorted(table, key=lambda g: (counts.predict([g])[0], darts.key(g)))
    assert [r["key"] for r in warm] == [darts.key(g) for g in ranked[:6]]
    assert all(r["predicted"] for r in warm)  # the predictions that chose them are kept
    (event,) = [e for e in rd.read_events() if e["event"] == "warm_start"]
    assert event["candidates"] == len(table) and event["screened"] == len(table)


def test_a_random_warm_up_is_the_default(tmp_path, demo_table):
    cfg = _warm_config(tmp_path, demo_table)
    cfg["surrogate_loop"]["warmup_candidates"] = 0
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    assert not [e for e in rd.read_events() if e["event"] == "warm_start"]
    assert not any(r["predicted"] for r in rd.read_evaluations() if r["phase"] == "warmup")


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"surrogate": "forest"}, "surrogate 'forest' cannot rank cells before it has seen any"),
        ({"search": {"strategy": "steady_state"}}, "the steady_state strategy warms up on random"),
    ],
)
def test_a_warm_start_the_search_cannot_do_is_refused(tmp_path, demo_table, changes, message):
    cfg = _warm_config(tmp_path, demo_table)
    for key, value in changes.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=message):
        run_search(cfg, progress=False)
    assert not (tmp_path / "runs" / "run").exists()


def _spread(key: str) -> float:
    """1 for keys that hash odd, else 0."""
    return float(hashlib.blake2b(key.encode(), digest_size=1).digest()[0] % 2)


class SpreadSurrogate(RandomSurrogate):
    """Random means in [0, 1); a spread of 1 or 0 by the key's hash."""

    def predict_with_std(self, genotypes):
        spread = np.array([_spread(self.space.key(g)) for g in genotypes])
        return self.predict(genotypes), spread


@pytest.mark.parametrize("promote_by", ["mean", "lcb"])
def test_promotion_by_a_lower_bound_prefers_uncertain_cells(tmp_path, demo_table, promote_by):
    SURROGATES.register("spread", SpreadSurrogate)
    cfg = config(
        tmp_path,
        demo_table,
        surrogate="spread",
        # with the incumbents (known cells) in the population, fewer unseen cells are
        # predicted a round than the promotion needs to show the order it takes
        surrogate_loop={"explore": 0, "promote_by": promote_by, "kappa": 1e3, "incumbents": 0},
    )
    run_search(cfg, progress=False)
    rd = RunDir(tmp_path / "runs" / "run")
    promoted = [r for r in rd.read_evaluations() if r["phase"] == "promote"]
    odd = [_spread(r["key"]) for r in promoted]
    if promote_by == "lcb":  # a bound of mean - 1000 beats every mean
        assert all(v == 1.0 for v in odd)
    else:
        assert 0 < sum(odd) < len(odd)
    # the promoted cells still record the prediction (the mean), not the bound
    assert all(0 <= float(r["predicted"]) <= 1 for r in promoted)


def test_the_run_says_what_it_trained_and_what_the_surrogate_screened(tmp_path, demo_table):
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(_warm_config(tmp_path, demo_table)))
    result = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    end = lines.index(next(line for line in lines if line.startswith("results in ")))
    assert lines[end - 2].startswith("best objective")
    assert lines[end - 1].startswith("12 ground-truth evaluations")
    assert "the surrogate screened" in lines[end - 1]


def test_median_evaluations_count_runs_that_never_reached_the_target_as_more():
    assert median_evaluations([3, 5, 9, None]) == (7.0, 4.5, math.inf)
    assert median_evaluations([None, None, 4]) == (math.inf, math.inf, math.inf)
    rows = [
        {"method": m, "seed": s, "final_best": 1.0, "evals_to_target": v, "surrogate_s": 2.0}
        for m, vals in (("evolution", [40, 60, None]), ("dish", [5, 15, 10]))
        for s, v in enumerate(vals)
    ]
    text = search_summary(rows, 1.0, reference="evolution")
    assert "| evolution | 3 | 60 [50, not reached] | 2/3 | 1.00 |" in text
    assert "| dish | 3 | 10 [7.5, 12.5] | 3/3 | 0.17 |" in text


def test_each_round_starts_from_the_best_cells_the_ground_truth_answered(tmp_path, demo_table):
    from evo_nas.search.generational import _with_incumbents

    cfg = config(tmp_path, demo_table, surrogate="random", surrogate_loop={"incumbents": 4})
    engine, _ = start_run(cfg, progress=False)
    engine.run()
    search = engine.search
    population = _with_incumbents(search)
    finite = [r for r in search.cache.records if math.isfinite(r["result"].objective)]
    best = sorted(finite, key=lambda r: (r["result"].objective, r["key"]))[:4]
    assert [i.key for i in population[:4]] == [r["key"] for r in best]
    assert len(population) == cfg["search"]["population"]
    assert len({i.key for i in population}) == len(population)
    # without incumbents the round goes on from the predicted population, and searches elsewhere
    other = config(tmp_path, demo_table, surrogate="random", surrogate_loop={"incumbents": 0})
    other["name"] = "none"
    run_search(other, progress=False)
    with_them = RunDir(tmp_path / "runs" / "run").read_evaluations()
    without = RunDir(tmp_path / "runs" / "none").read_evaluations()
    assert [r["key"] for r in with_them] != [r["key"] for r in without]
