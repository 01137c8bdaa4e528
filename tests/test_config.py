"""Config validation: every mistake is one line naming the key, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from evo_nas.cli import main

GOOD = {
    "name": "cfg",
    "space": {"name": "darts_rnn", "options": {"nodes": 4}},
    "ground_truth": {"name": "table", "options": {"path": "table.csv"}},
    "budget": {"evaluations": 4},
}


def _write(tmp_path: Path, cfg: dict | str, demo_table: Path) -> Path:
    (tmp_path / "table.csv").write_bytes(demo_table.read_bytes())
    path = tmp_path / "search.yaml"
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return path


def _merge(base: dict, patch: dict) -> dict:
    out = dict(base)
    for k, v in patch.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


BAD = [
    ({"colour": "blue"}, "colour: unknown key"),
    ({"search": {"populaton": 3}}, "search.populaton: unknown key"),
    ({"search": {"population": "many"}}, "search.population: Input should be a valid integer"),
    ({"budget": {"evaluations": 0}}, "budget.evaluations: Input should be greater than 0"),
    ({"budget": {"evaluations": None, "wall_time_s": None}}, "budget: set evaluations"),
    ({"space": {"name": "nope"}}, "space.name: unknown search space 'nope'"),
    ({"surrogate": {"name": "oracle"}}, "surrogate.name: unknown surrogate 'oracle'"),
    ({"ground_truth": {"options": {"path": "missing.csv"}}}, "missing.csv: file not found"),
    ({"space": {"options": {"nodez": 4}}}, "space.options.nodez: unknown key"),
    ({"space": {"options": {"nodes": "four"}}}, "space.options.nodes: Input should be a valid"),
    ({"search": {"algorithm": "annealing"}}, "search.algorithm: Input should be"),
    ({"search": {"sample": 30}}, "search: sample (30) must not exceed population (20)"),
    ({"search": {"initial": ["relu0 relu7 relu1 relu1"]}}, "search.initial[0]: node 2"),
    ({"ground_truth": {"options": {"delay_s": "slow"}}}, "ground_truth.options.delay_s"),
    ({"name": "a/b"}, "name: Value error"),
]


@pytest.mark.parametrize("patch, message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_config_is_one_line_exit_2(tmp_path, demo_table, patch, message):
    path = _write(tmp_path, _merge(GOOD, patch), demo_table)
    result = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    assert message.split(" Value error")[0] in lines[0]
    assert not (tmp_path / "runs" / "cfg").exists()  # nothing ran, nothing written


def test_missing_required_key(tmp_path, demo_table):
    cfg = {k: v for k, v in GOOD.items() if k != "space"}
    result = CliRunner().invoke(main, ["run", str(_write(tmp_path, cfg, demo_table))])
    assert result.exit_code == 2 and "space: missing required key" in result.output


def test_invalid_yaml_and_missing_file(tmp_path, demo_table):
    path = _write(tmp_path, "space: [unclosed\n", demo_table)
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 2 and "invalid YAML" in result.output
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_real_process_prints_no_traceback(tmp_path, demo_table):
    path = _write(tmp_path, _merge(GOOD, {"search": {"populaton": 3}}), demo_table)
    proc = subprocess.run(
        [sys.executable, "-m", "evo_nas.cli", "run", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: search.populaton: unknown key"
    assert "Traceback" not in proc.stdout + proc.stderr


def test_paths_resolve_relative_to_the_yaml(tmp_path, demo_table, monkeypatch):
    path = _write(tmp_path, GOOD, demo_table)
    monkeypatch.chdir("/")
    result = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "cfg" / "evaluations.csv").exists()
    stored = yaml.safe_load((tmp_path / "runs" / "cfg" / "config.yaml").read_text())
    assert stored["ground_truth"]["options"]["path"] == str(tmp_path / "table.csv")
    # a second run of the same name is refused rather than overwritten
    again = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert again.exit_code == 2 and "already exists" in again.output
