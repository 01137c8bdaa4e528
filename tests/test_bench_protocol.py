"""The predictor benchmark's protocol: the figures in docs/results rest on these properties
(test cells never trained on, nested training sets, a seed's cells independent of the others)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import REPO

from evo_nas.config import Component, ConfigError, construct
from search_spaces import get_space
from surrogates import SURROGATES

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_predictors as bp  # noqa: E402
import bench_spd_nbnlp  # noqa: E402


def test_split_keeps_test_cells_out_of_training_and_nests_the_sizes() -> None:
    test, train = bp.split(list(range(300)), 100, [10, 25, 50], [0, 1, 2], test_seed=7)
    assert len(set(test)) == 100
    for seed, order in train.items():
        assert len(order) == 50 and len(set(order)) == 50
        assert not set(order) & set(test), seed
    assert not np.array_equal(train[0], train[1])
    # the same test set whatever the seeds, and a seed's cells whatever the other seeds
    test_again, train_again = bp.split(list(range(300)), 100, [10, 25, 50], [2], test_seed=7)
    assert np.array_equal(test, test_again)
    assert np.array_equal(train[2], train_again[2])


def test_split_refuses_too_few_cells() -> None:
    with pytest.raises(SystemExit, match="cannot hold"):
        bp.split(list(range(100)), 80, [10, 25], [0], test_seed=0)


@pytest.mark.parametrize(("text", "seeds"), [("3", [0, 1, 2]), ("3-4", [3, 4]), ("2-2", [2])])
def test_seeds_arg(text: str, seeds: list[int]) -> None:
    assert bp.seeds_arg(text) == seeds


@pytest.mark.parametrize("text", ["0", "4-3", "a", "1-b"])
def test_seeds_arg_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        bp.seeds_arg(text)


def test_parse_options_reads_values_as_yaml() -> None:
    got = bp.parse_options(["nao.epochs=200", "spd.loss=mse", "spd.l2=0.001", "spd.orient=false"])
    assert got == {"nao": {"epochs": 200}, "spd": {"loss": "mse", "l2": 1e-3, "orient": False}}
    with pytest.raises(SystemExit, match="name.key=value"):
        bp.parse_options(["epochs=200"])


def test_table_gives_mean_and_spread_over_seeds() -> None:
    rows = [
        {"surrogate": "spd", "size": 50, "seed": s, "kendall_tau": tau, "spearman_rho": 0.5,
         "precision_top10": 0.3, "fit_s": 1.0, "query_ms_per_cell": 2.0}
        for s, tau in enumerate([0.5, 0.6])
    ]  # fmt: skip
    line = bp.table(rows).splitlines()[-1]
    assert line.startswith("| spd | 50 | 0.550 +- 0.050 | 0.500 +- 0.000 |")


@pytest.fixture
def spd0() -> Iterator[None]:
    SURROGATES.register("spd0", bench_spd_nbnlp.unlearned_dish)
    yield
    SURROGATES.unregister("spd0")


def test_unlearned_dish_takes_spd_options_checked_and_never_meta_learns(spd0: None) -> None:
    space = get_space("darts_rnn")
    # YAML reads 1e-3 as a string; the benchmark converts it as a config file's options are
    entry = Component(name="spd0", options={"l2": "1e-3", "dishes": 1, "meta_steps": 5})
    dish = construct("surrogate", entry, space=space, seed=3)
    assert (dish.options["l2"], dish.options["meta_steps"], dish.seed) == (1e-3, 0, 3)
    with pytest.raises(ConfigError, match="l3: unknown key"):
        construct("surrogate", Component(name="spd0", options={"l3": 1}), space=space, seed=0)
