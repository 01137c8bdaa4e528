"""The table ground truth: CSV and JSONL, statuses, lookups, and one-line row errors."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from evo_nas.cli.commands import main
from ground_truths.table import TableError, TableGroundTruth, TableWarning
from search_spaces import get_space

SPACE = get_space("darts_rnn", nodes=3)


def test_csv_rows_statuses_and_metrics(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "genotype,objective,status,cost_s,params\n"
        '"""tanh0 relu1 tanh2""",80.5,ok,12,1000\n'
        "relu0 relu1 relu2,inf,diverged,3,1000\n"
        "identity0 identity1 identity2,,failed,0,\n"
    )
    gt = TableGroundTruth(SPACE, path)
    assert len(gt) == 3
    ok, div, failed = gt.evaluate(
        [
            SPACE.validate(t)
            for t in ("tanh0 relu1 tanh2", "relu0 relu1 relu2", "identity0 identity1 identity2")
        ]
    )
    assert (ok.objective, ok.status, ok.cost_s, ok.metrics["params"]) == (80.5, "ok", 12.0, 1000.0)
    assert div.status == "diverged" and math.isinf(div.objective)
    assert failed.status == "failed"
    missing = gt.evaluate_one(SPACE.validate("sigmoid0 sigmoid1 sigmoid2"))
    assert missing.status == "failed" and "not in table" in missing.message
    assert {SPACE.key(g) for g in gt.genotypes()} == {
        SPACE.key(SPACE.validate(t))
        for t in ("tanh0 relu1 tanh2", "relu0 relu1 relu2", "identity0 identity1 identity2")
    }


def test_jsonl_rows_accept_the_space_json(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"genotype": [["tanh", 0], ["relu", 1], ["tanh", 1]], "objective": 70.0}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    gt = TableGroundTruth(SPACE, path)
    # an isomorphic relabelling of the same cell is found by its canonical key
    assert gt.evaluate_one(SPACE.validate("tanh0 tanh1 relu1")).objective == 70.0


@pytest.mark.parametrize(
    "content, message",
    [
        ('genotype,objective\n"tanh0 relu1 tanh2",abc\n', "row 2: objective 'abc' is not a number"),
        ('genotype,objective\n"tanh0 relu9 tanh2",1\n', "row 2: genotype: node 2: predecessor 9"),
        ("genotype,score\nx,1\n", "missing column(s) objective"),
        ('genotype,objective,status\n"tanh0 relu1 tanh2",1,great\n', "row 2: status 'great'"),
        (
            'genotype,objective\n"tanh0 relu1 tanh1",1\n"tanh0 tanh1 relu1",2\n',
            "row 3: same cell as row 2",
        ),
        ("genotype,objective\n", "no rows"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TableError) as err:
        TableGroundTruth(SPACE, path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"genotype": "tanh0 relu1 tanh2", "objective": 1}\n{oops\n')
    with pytest.raises(TableError, match=r"bad.jsonl row 2: invalid JSON"):
        TableGroundTruth(SPACE, path)


@pytest.mark.parametrize(
    "content, message",
    [
        ('genotype,objective\n"tanh0 relu1 tanh2",nan\n', "row 2: objective 'nan' recorded as"),
        ('genotype,objective\n"tanh0 relu1 tanh2",-inf\n', "row 2: objective '-inf' recorded"),
        (
            'genotype,objective,cost_s\n"tanh0 relu1 tanh2",1,4\n"relu0 relu1 relu2"\n',
            "row 3: short row, no objective, cost_s (read as empty)",
        ),
        ('genotype,objective\n"tanh0 relu1 tanh2",1,7\n', "row 2: more fields than the header"),
        ('{"genotype": "tanh0 relu1 tanh2", "objective": NaN}\n', "row 1: objective nan"),
    ],
)
def test_odd_rows_are_read_with_a_warning_naming_file_and_row(tmp_path, content, message):
    path = tmp_path / ("t.jsonl" if content.startswith("{") else "t.csv")
    path.write_text(content)
    with pytest.warns(TableWarning) as caught:
        gt = TableGroundTruth(SPACE, path)
    (w,) = caught
    assert str(w.message).startswith(f"{path} {message}"), w.message
    results = gt.evaluate(gt.genotypes())
    assert results[-1].status in ("ok", "diverged")
    if "objective" in message:
        assert results[-1].status == "diverged" and results[-1].objective == math.inf


def test_many_odd_rows_are_one_warning(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('genotype,objective\n"tanh0 relu1 tanh2",nan\n"relu0 relu1 relu2",-inf\n')
    with pytest.warns(TableWarning, match=r"row 2: .* \(and 1 more such rows\)$"):
        TableGroundTruth(SPACE, path)


def test_a_table_of_explicit_divergences_reads_without_a_warning(tmp_path, recwarn):
    path = tmp_path / "t.csv"
    path.write_text('genotype,objective\n"tanh0 relu1 tanh2",inf\n"relu0 relu1 relu2",\n')
    assert len(TableGroundTruth(SPACE, path)) == 2
    assert not [w for w in recwarn if issubclass(w.category, TableWarning)]


def test_the_cli_shows_the_warning_in_one_line(tmp_path, demo_table):
    table = tmp_path / "t.csv"
    lines = demo_table.read_text().splitlines()
    head, row = lines[0].split(","), lines[5].split(",")
    row[head.index("objective")] = "nan"
    table.write_text("\n".join([lines[0], *lines[1:5], ",".join(row), *lines[6:]]) + "\n")
    cfg = {
        "name": "odd",
        "output_dir": str(tmp_path / "runs"),
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table)}},
        "budget": {"evaluations": 3},
    }
    (tmp_path / "s.yaml").write_text(json.dumps(cfg))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first == f"warning: {table} row 6: objective 'nan' recorded as diverged (inf)"
