"""The predictor benchmark: a thin command over ``compare predict``'s evaluator, whose
protocol the figures in docs/results rest on (test cells never trained on, nested training
sets, a seed's cells independent of the other seeds)."""

from __future__ import annotations

import argparse
import sys

import pytest
from conftest import REPO

from evo_nas.compare.predict import PredictCompareConfig, draw_sets
from evo_nas.config.components import construct
from evo_nas.config.errors import ConfigError
from evo_nas.config.schema import validate_model
from ground_truths.table import TableGroundTruth
from search_spaces import get_space

sys.path.insert(0, str(REPO / "benchmarks"))

import bench_predictors as bp  # noqa: E402


def _args(*argv: str) -> argparse.Namespace:
    return bp.parser().parse_args(list(argv))


def test_a_seeds_cells_and_the_test_set_do_not_depend_on_the_other_seeds(demo_table) -> None:
    space = get_space("darts_rnn", nodes=4)
    gt = TableGroundTruth(space, demo_table)

    def sets(seeds: list[int]):
        cfg = validate_model(
            PredictCompareConfig,
            {
                "space": "darts_rnn",
                "ground_truth": "table",
                "surrogates": ["random"],
                "sizes": [10, 25],
                "seeds": seeds,
                "test": {"size": 100, "seed": 7},
            },
        )
        test, orders = draw_sets(cfg, space, gt)
        return [space.key(g) for g, _ in test], {
            s: [space.key(g) for g, _ in o] for s, o in orders.items()
        }

    test, orders = sets([0, 1, 2])
    test_again, orders_again = sets([2])
    assert test == test_again and orders[2] == orders_again[2]
    assert orders[0] != orders[1] and len(orders[0]) == 25
    assert not set(orders[0]) & set(test)


@pytest.mark.parametrize(("text", "seeds"), [("3", [0, 1, 2]), ("3-4", [3, 4]), ("2-2", [2])])
def test_seeds_arg(text: str, seeds: list[int]) -> None:
    assert bp.seeds_arg(text) == seeds


@pytest.mark.parametrize("text", ["0", "4-3", "a", "1-b"])
def test_seeds_arg_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected"):
        bp.seeds_arg(text)


def test_parse_options_reads_values_as_yaml() -> None:
    got = bp.parse_options(["nao.epochs=200", "spd.dish.loss=mse", "spd.dish.orient=false"])
    assert got == {"nao": {"epochs": 200}, "spd": {"dish": {"loss": "mse", "orient": False}}}
    with pytest.raises(SystemExit, match="name.key=value"):
        bp.parse_options(["epochs=200"])


def test_surrogates_take_labels_so_one_surrogate_runs_in_two_settings() -> None:
    assert bp.parse_surrogates("spd,spd0=spd") == [("spd", "spd"), ("spd0", "spd")]
    with pytest.raises(SystemExit, match="LABEL=NAME"):
        bp.parse_surrogates("spd,=spd")


def test_the_command_is_the_comparison_config_it_describes(tmp_path) -> None:
    args = _args(
        "--surrogates", "spd,spd0=spd", "--set", "spd0.dish.kind=rnn",
        "--set", "spd0.dish.meta_steps=0", "--sizes", "10,50",
        "--seeds", "3-4", "--test-size", "500", "--set", "ground_truth.metric=test_ppl",
        "--out", str(tmp_path / "bench"),
    )  # fmt: skip
    cfg = bp.comparison(args)
    expected = {
        "name": "bench",
        "output_dir": str(tmp_path),
        "space": {"name": "nasbench_nlp", "options": {}},
        "ground_truth": {"name": "nasbench_nlp", "options": {"metric": "test_ppl"}},
        "surrogates": [
            {"name": "spd", "label": "spd", "options": {}},
            {"name": "spd", "label": "spd0", "options": {"dish": {"kind": "rnn", "meta_steps": 0}}},
        ],
        "sizes": [10, 50],
        "seeds": [3, 4],
        "test": {"kind": "uniform", "size": 500, "seed": 12345},
    }
    assert cfg == validate_model(PredictCompareConfig, expected)
    with pytest.raises(SystemExit, match=r"\['nao'\] are not among the surrogates"):
        bp.comparison(_args("--surrogates", "spd", "--set", "nao.epochs=3"))


def test_options_are_checked_and_converted_as_a_config_files_are() -> None:
    space = get_space("darts_rnn", nodes=4)
    # a --set value is read as a config file's are (1e-3 a float, as in YAML 1.2)
    cfg = bp.comparison(_args("--surrogates", "nao,small=nao", "--set", "small.lr=1e-3"))
    small = construct("surrogate", cfg.surrogates[1], space=space, seed=3)
    assert small.lr == 1e-3 and cfg.surrogates[1].tag == "small"
    cfg = bp.comparison(_args("--surrogates", "small=nao", "--set", "small.lr3=1"))
    with pytest.raises(ConfigError, match="lr3: unknown key"):
        construct("surrogate", cfg.surrogates[0], space=space, seed=0)


def test_a_run_prints_the_summary_and_keeps_the_comparisons_files(
    tmp_path, demo_table, monkeypatch, capsys
) -> None:
    argv = [
        "bench_predictors.py", "--surrogates", "random,params", "--sizes", "5,10",
        "--seeds", "2", "--test-size", "50", "--space", "darts_rnn", "--set", "space.nodes=4",
        "--ground-truth", "table", "--set", f"ground_truth.path={demo_table}",
        "--out", str(tmp_path / "bench"),
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bp.main()
    printed = capsys.readouterr().out
    assert printed == (tmp_path / "bench" / "summary.md").read_text()
    assert "| random | 5 | 2 |" in printed and "| params | 10 | 2 |" in printed
    assert (tmp_path / "bench" / "results.csv").exists()
