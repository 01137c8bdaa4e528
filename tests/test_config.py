"""Config validation: every mistake is one line naming the key, exit status 2, no traceback."""

from __future__ import annotations

import codecs
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_helpers import refused
from click.testing import CliRunner

from evo_nas.cli.commands import main
from evo_nas.rundir.files import RunDir

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
    (
        {"search": {"strategy": "eager"}},
        "search.strategy: unknown strategy 'eager' (known: generational, steady_state)",
    ),
    (
        {"search": {"strategy": "steady_state", "algorithm": "mu_plus_lambda"}},
        "search.algorithm: strategy steady_state works with regularized or random search, not mu",
    ),
    ({"execution": {"asynchronous": True}}, "execution.asynchronous: unknown key"),
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
        [sys.executable, "-m", "evo_nas.cli", "run", str(path)],
        capture_output=True,
        text=True,
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


# -- inputs that used to crash or hang --------------------------------------------------------


GOOD_TEXT = yaml.safe_dump(GOOD, sort_keys=False)
_NEST = "space: {name: darts_rnn, options: {nodes: 4}}\nsearch: {initial: "
_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


UNREADABLE = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ["search.yaml: not UTF-8 text"]),
    "utf16-no-bom": (GOOD_TEXT.encode("utf-16-le"), ["invalid YAML", "unacceptable character"]),
    "latin-1": ((GOOD_TEXT + "name: caf\u00e9\n").encode("latin-1"), ["not UTF-8 text", "binary"]),
    "bad-utf16": (codecs.BOM_UTF16_LE + b"\x00\xd8", ["not UTF-16 text"]),
    "deep": (("[" * 10_000 + "]" * 10_000).encode(), ["nested deeper than YAML can be read"]),
    "nested": ((_NEST + "[" * 60 + "]" * 60 + "}\n").encode(), ["nested deeper than 50 levels"]),
    "alias-bomb": (_BOMB.encode(), ["more than 1,000,000 values"]),
    "dup": ((GOOD_TEXT + "seed: 1\nseed: 2\n").encode(), ["line", "found duplicate key 'seed'"]),
    "dup-inner": (b"space: {name: darts_rnn, name: table}\n", ["line 1", "duplicate key 'name'"]),
    "tag": (b"!!python/object/apply:os.system [touch pwned]\n", ["invalid YAML", "python/object"]),
}


@pytest.mark.parametrize("data, fragments", UNREADABLE.values(), ids=UNREADABLE)
def test_unreadable_yaml_is_one_line(tmp_path, demo_table, monkeypatch, data, fragments):
    path = _write(tmp_path, "", demo_table)
    path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    refused(CliRunner().invoke(main, ["run", str(path), "--quiet"]), *fragments)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_yaml_in_any_encoding_yaml_allows_is_read(tmp_path, demo_table, encoding):
    path = _write(tmp_path, "", demo_table)
    path.write_bytes(GOOD_TEXT.encode(encoding))  # with a byte-order mark
    result = CliRunner().invoke(main, ["run", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(RunDir(tmp_path / "runs" / "cfg").read_evaluations()) == 4


OUT_OF_RANGE = [
    ({"seed": -1}, "seed: Input should be greater than or equal to 0 (got -1)"),
    ({"seed": 2**63}, "seed: Input should be less than 4294967296"),
    ({"seed": 2**64 + 1}, "seed: Input should be less than 4294967296"),
    ({"final": {"seeds": [0, -3], "ground_truth": "table"}}, "final.seeds.1: Input should be"),
    ({"search": {"population": 10**11}}, "search.population: Input should be less than or equal"),
    ({"search": {"offspring": 1e11}}, "search.offspring: Input should be a valid integer"),
    ({"surrogate_loop": {"warmup": 10**11}}, "surrogate_loop.warmup: Input should be less"),
    ({"surrogate_loop": {"generations": 10**11}}, "surrogate_loop.generations: Input should"),
    ({"execution": {"workers": 10**11}}, "execution.workers: Input should be less than or"),
    ({"execution": {"gpus_per_task": float("inf")}}, "execution.gpus_per_task: Input should"),
    ({"search": {"mutation_retries": 10**9}}, "search.mutation_retries: Input should be less"),
]


@pytest.mark.parametrize(
    "patch, message", OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in OUT_OF_RANGE]
)
def test_out_of_range_numbers_are_refused(tmp_path, demo_table, patch, message):
    path = _write(tmp_path, _merge(GOOD, patch), demo_table)
    refused(CliRunner().invoke(main, ["run", str(path), "--quiet"]), message)
    assert not (tmp_path / "runs").exists()


def test_a_warmup_beyond_the_budget_does_not_hang(tmp_path, demo_table):
    cfg = _merge(GOOD, {"surrogate": "random", "surrogate_loop": {"warmup": 100_000}})
    result = CliRunner().invoke(main, ["run", str(_write(tmp_path, cfg, demo_table)), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = RunDir(tmp_path / "runs" / "cfg").read_evaluations()
    assert len(rows) == 4 and {r["phase"] for r in rows} == {"warmup"}


def test_an_output_dir_that_is_a_file_is_one_line(tmp_path, demo_table):
    (tmp_path / "afile").write_text("not a folder")
    path = _write(tmp_path, dict(GOOD, output_dir="afile"), demo_table)
    refused(CliRunner().invoke(main, ["run", str(path)]), "afile/cfg", "Not a directory")
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_an_unwritable_output_dir_is_one_line(tmp_path, demo_table, monkeypatch):
    path = _write(tmp_path, GOOD, demo_table)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # as a folder without write permission answers
        if self.name == "cfg":
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    refused(CliRunner().invoke(main, ["run", str(path)]), "runs/cfg", "Permission denied")


def test_check_validates_and_builds_but_writes_nothing(tmp_path, demo_table):
    path = _write(tmp_path, GOOD, demo_table)
    result = CliRunner().invoke(main, ["run", str(path), "--check"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: valid (a run writes {tmp_path / 'runs' / 'cfg'})\n"
    assert not (tmp_path / "runs").exists()
    bad = _write(
        tmp_path, _merge(GOOD, {"ground_truth": {"options": {"path": "nope.csv"}}}), demo_table
    )
    refused(CliRunner().invoke(main, ["run", str(bad), "--check"]), "nope.csv: file not found")
