"""From found to used: `evo-nas train` takes what the tool prints (a key from `show`, or a run
directory and a rank) and the space's options, and a diverged training says what to try."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import refused
from click.testing import CliRunner
from dashboard_helpers import table_search

from evo_nas.cli.commands import main
from evo_nas.search.launch import run_search
from search_spaces import get_space

#: a few batches of the tiny preset: enough to train a cell end to end in seconds
QUICK = ["--preset", "tiny", "--epochs", "1", "--no-test", "--device", "cpu"]
QUICK += ["--set", "epoch_batches=2", "--set", "eval_tokens=320"]


def _invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _shown_keys(run_dir: Path) -> list[str]:
    """The keys `evo-nas show` prints, best first (its table's last column)."""
    shown = _invoke("show", run_dir, "--top", 3)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    header = lines[1].split()
    assert header[-1] == "key"
    return [line.split()[-1] for line in lines[3:6]]


@pytest.fixture(scope="module")
def nbnlp_run(tmp_path_factory, data_root) -> Path:
    """A short search over the NAS-Bench-NLP logs (real PTB results)."""
    out = tmp_path_factory.mktemp("nb")
    cfg = {
        "name": "nb",
        "output_dir": str(out),
        "seed": 0,
        "space": "nasbench_nlp",
        "ground_truth": "nasbench_nlp",
        "surrogate": None,
        "search": {"population": 4, "sample": 2, "offspring": 2, "pool": True},
        "budget": {"evaluations": 6},
        "logging": {"progress": False},
    }
    run_search(cfg, progress=False)
    return out / "nb"


def test_train_takes_the_key_show_prints(nbnlp_run, tmp_path) -> None:
    key = _shown_keys(nbnlp_run)[0]
    assert "=" in key and ";" in key  # a NAS-Bench-NLP key, e.g. n0=linear(h_prev_0,x);...
    out = tmp_path / "by_key"
    args = ["--space", "nasbench_nlp", "--genotype", key, "--set", "lr=5", "--out", out]
    result = _invoke("train", *args, *QUICK)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "curve.json").read_text())
    assert report["status"] == "ok" and report["key"] == key and report["space"] == "nasbench_nlp"
    space = get_space("nasbench_nlp")
    assert space.key(space.from_json(report["genotype"])) == key
    assert f"valid ppl {report['val_ppl']:.2f}" in result.output


def test_train_takes_a_run_and_a_rank(nbnlp_run) -> None:
    keys = _shown_keys(nbnlp_run)
    result = _invoke("train", "--run", nbnlp_run, "--rank", 2, *QUICK)
    assert result.exit_code == 0, result.output
    report = json.loads((nbnlp_run / "train" / "rank2" / "curve.json").read_text())
    assert report["key"] == keys[1] and report["space"] == "nasbench_nlp"
    assert report["from"]["rank"] == 2 and report["from"]["run"] == str(nbnlp_run)
    refused(_invoke("train", "--run", nbnlp_run, "--rank", 99), "--rank 99: the run has 6")
    refused(_invoke("train", "--run", nbnlp_run, "--space", "darts_rnn"), "--run reads the space")


def test_space_options_and_a_divergence_that_says_what_to_try(tmp_path, demo_table) -> None:
    run_search(table_search(tmp_path, demo_table, name="d4"), progress=False)  # 4-node cells
    key = _shown_keys(tmp_path / "d4")[0]
    assert key.startswith("x(")
    # the default space has 8 nodes: the one line says so and how to give the options
    refused(
        _invoke("train", "--genotype", key, *QUICK),
        "4 nodes given, the space has 8",
        "--space-option",
    )
    refused(_invoke("train", "--genotype", key, "--space-option", "nodes=abc"), "nodes")
    refused(_invoke("train", "--genotype", key, "--space-option", "nodes"), "not key=value")
    out = tmp_path / "diverged"
    args = ["--space-option", "nodes=4", "--set", "lr=1e5", "--set", "clip=100", "--out", out]
    result = _invoke("train", "--genotype", key, *QUICK, *args)
    assert result.exit_code == 1  # a recorded divergence, as before: curve.json says so
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: training diverged (training loss")
    assert "try a lower learning rate (--set lr=25000)" in last
    assert "--set clip=50" in last and "--preset paper|cpu|tiny" in last
    report = json.loads((out / "curve.json").read_text())
    assert report["status"] == "diverged" and report["key"] == key


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give either --genotype or --run"),
        (["--genotype", "DARTS_V2", "--run", "."], "give either --genotype or --run"),
        (["--genotype", "DARTS_V2", "--rank", "1"], "--rank picks a cell of --run"),
        (["--genotype", "n0=linear(x,h_prev_0)"], "must start with 'x('"),
        (["--space", "nope", "--genotype", "x"], "unknown"),
    ],
)
def test_train_refuses_what_names_no_cell(args, fragment) -> None:
    refused(_invoke("train", *args), fragment)
