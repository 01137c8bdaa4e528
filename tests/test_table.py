"""The table ground truth: CSV and JSONL, statuses, lookups, and one-line row errors."""

from __future__ import annotations

import json
import math

import pytest

from search_spaces import get_space
from surrogates.table import TableError, TableGroundTruth

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
