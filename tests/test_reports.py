"""What ``evo-nas show`` and ``export`` print and write: objectives to the precision that tells
cells apart, the export's files the same whether written or served."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from evo_nas.cli.commands import main
from evo_nas.reports.summary import export_files, export_top, format_objective
from evo_nas.search.launch import run_search


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (104.42790123456789, "104.4279"),
        ("89.6205", "89.6205"),
        (0.012345678, "0.01235"),
        (0.0, "0.0000"),
        (2.5e7, "2.5e+07"),
        (float("inf"), "inf"),
        ("inf", "inf"),
    ],
)
def test_objectives_are_printed_with_the_precision_that_matters(value, text) -> None:
    assert format_objective(value) == text


def test_show_prints_four_decimals_and_export_writes_what_it_serves(tmp_path, demo_table) -> None:
    run_search(
        {
            "name": "shown",
            "output_dir": str(tmp_path),
            "space": {"name": "darts_rnn", "options": {"nodes": 4}},
            "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
            "search": {"algorithm": "regularized", "population": 6, "sample": 3, "offspring": 3},
            "budget": {"evaluations": 10},
        },
        progress=False,
    )
    run_dir = tmp_path / "shown"
    shown = CliRunner().invoke(main, ["show", str(run_dir)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    top = [line.split()[2] for line in lines[3:13]]
    assert len(top) == 10 and all(re.fullmatch(r"\d+\.\d{4}|inf", t) for t in top), top
    curve = [line.split()[1] for line in lines[17:] if line[:1].isdigit()]
    assert curve and all(re.fullmatch(r"\d+\.\d{4}", v) for v in curve), shown.output
    out = export_top(run_dir, 3)
    files = export_files(run_dir, 3)
    assert {p.name: p.read_text() for p in out.iterdir()} == files
