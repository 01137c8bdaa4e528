"""Every command as hardened as `run`: each case a hostile user found, refused in one line
naming the key or file (exit status 2), with nothing written outside the run directory and
nothing lost."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from cli_helpers import refused
from click.testing import CliRunner
from conftest import REPO

from evo_nas.cli.commands import main
from evo_nas.rundir.files import RunDir
from evo_nas.search.launch import run_search

sys.path.insert(0, str(REPO / "benchmarks"))
import fuzz_commands  # noqa: E402


def _config(table: Path, tmp_path: Path, name: str = "run", **over) -> dict:
    cfg = {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "seed": 1,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table)}},
        "surrogate": "random",
        "search": {"population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 4, "generations": 1, "promote": 2},
        "budget": {"evaluations": 8},
        "logging": {"progress": False},
    }
    for key, value in over.items():
        cfg = fuzz_commands.set_key(cfg, key.replace("__", "."), value)
    return cfg


def _write(tmp_path: Path, cfg: dict, name: str = "search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, demo_table) -> Path:
    """A finished run directory (copy it before damaging it)."""
    tmp = tmp_path_factory.mktemp("finished")
    run_search(_config(demo_table, tmp, "done"), progress=False)
    return tmp / "runs" / "done"


@pytest.fixture
def run_copy(tmp_path, finished) -> Path:
    out = tmp_path / "runs" / "done"
    shutil.copytree(finished, out)
    return out


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside every run directory, which nothing may change."""
    path = tmp_path / "home" / "somefile"
    path.parent.mkdir()
    path.write_text("precious\n")
    return path


# -- writes outside the run directory ------------------------------------------------------------
def test_a_symlinked_lock_is_refused_and_its_target_untouched(run_copy, outside):
    lock = run_copy / "run.lock"
    lock.unlink()
    lock.symlink_to(outside)
    refused(_invoke("resume", run_copy), "run.lock", "symbolic link")
    assert outside.read_text() == "precious\n"


def test_a_symlinked_export_folder_is_refused(run_copy, outside):
    (run_copy / "export").symlink_to(outside.parent, target_is_directory=True)
    refused(_invoke("export", run_copy), "export", "symbolic link")
    assert os.listdir(outside.parent) == ["somefile"]


def test_a_run_file_replaced_by_a_folder_is_refused(run_copy):
    (run_copy / "evaluations.csv").unlink()
    (run_copy / "evaluations.csv").mkdir()
    for command in ("resume", "show", "export"):
        refused(_invoke(command, run_copy), "evaluations.csv", "not a regular file")


@pytest.mark.parametrize("name", ["../x", "", "..", "a/b", "two words", "new\nline", "x\x00y"])
def test_names_are_single_plain_path_components(tmp_path, demo_table, name):
    path = _write(tmp_path, _config(demo_table, tmp_path, name))
    refused(_invoke("run", path, "--check"), "name")
    predict = {
        "name": name,
        "space": "darts_rnn",
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogates": ["random"],
    }
    refused(_invoke("compare", "predict", _write(tmp_path, predict, "p.yaml")), "name")
    search = {"name": name, "base": str(path), "methods": [{"label": "a"}]}
    refused(_invoke("compare", "search", _write(tmp_path, search, "s.yaml")), "name")
    assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()


# -- lost or doubled data -------------------------------------------------------------------------
def test_run_does_not_wipe_a_directory_holding_results(tmp_path, demo_table):
    path = _write(tmp_path, _config(demo_table, tmp_path))
    assert _invoke("run", path).exit_code == 0
    rd = RunDir(tmp_path / "runs" / "run")
    rows, events = rd.evaluations_path.read_bytes(), rd.events_path.read_bytes()
    for p in (rd.config_path, rd.checkpoint_path, rd.previous_checkpoint_path):
        p.unlink()
    refused(_invoke("run", path), "already exists and holds a run", "--overwrite")
    assert rd.evaluations_path.read_bytes() == rows and rd.events_path.read_bytes() == events


def test_deleting_the_lock_file_lets_no_second_process_in(tmp_path, demo_table):
    cfg = _config(demo_table, tmp_path, ground_truth__options__delay_s=0.05)
    path = _write(tmp_path, cfg)
    rd = RunDir(tmp_path / "runs" / "run")
    first = subprocess.Popen([sys.executable, "-m", "evo_nas.cli", "run", str(path), "--quiet"])
    try:
        deadline = time.monotonic() + 120
        while not rd.evaluations_path.exists() or len(rd.read_evaluations()) < 2:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGSTOP)
        rd.lock_path.unlink()
        refused(_invoke("resume", rd.path), "in use by")  # (its pid went with the file)
    finally:
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=120) == 0
    keys = [r["key"] for r in rd.read_evaluations()]
    assert len(keys) == 8 == len(set(keys))


# -- refusals instead of tracebacks ---------------------------------------------------------------
def _bad(table: Path, tmp_path: Path, key: str, value) -> dict:
    return _config(table, tmp_path, **{key.replace(".", "__"): value})


TRACEBACKS = [
    ("name", "n" * 5000, "name"),
    ("output_dir", "o" * 5000, "output_dir"),
    ("name", "a\x00b", "name"),
    ("execution.address", "garbage://x", "execution"),
    ("surrogate", {"name": "params", "options": {"ref_size": 10_000_000}}, "ref_size"),
]


@pytest.mark.parametrize("key, value, names", TRACEBACKS, ids=[t[0] for t in TRACEBACKS])
def test_what_gave_tracebacks_is_refused_by_check_and_run(tmp_path, demo_table, key, value, names):
    cfg = _bad(demo_table, tmp_path, key, value)
    if key == "execution.address":
        cfg["execution"]["backend"] = "dask"
    path = _write(tmp_path, cfg)
    refused(_invoke("run", path, "--check"), names)
    refused(_invoke("run", path), names)
    assert not (tmp_path / "runs").exists()  # nothing half-made to block the rerun


@pytest.mark.parametrize(
    "suffix, text, names",
    [
        (
            ".csv",
            'genotype,objective\n"""tanh0 tanh0 tanh0 tanh0""","' + "9" * 200_000 + '"\n',
            "CSV",
        ),
        (
            ".jsonl",
            '{"genotype": "tanh0 tanh0 tanh0 tanh0", "objective": 1' + "0" * 400 + "}\n",
            "objective",
        ),  # noqa: E501
        (".csv", 'genotype,objective,cost_s\n"""tanh0 tanh0 tanh0 tanh0""",90,-300\n', "cost_s"),
        (".csv", 'genotype,objective,cost_s\n"""tanh0 tanh0 tanh0 tanh0""",90,inf\n', "cost_s"),
    ],
)
def test_damaged_tables_are_refused_in_one_line(tmp_path, suffix, text, names):
    table = tmp_path / f"table{suffix}"
    table.write_text(text)
    line = refused(_invoke("run", _write(tmp_path, _config(table, tmp_path)), "--check"), names)
    assert str(table) in line and len(line) < 600


@pytest.mark.parametrize(
    "edit, names",
    [
        (lambda ck: ck["boundary"]["search"]["hof"][0].update(fitness=[1.0, 2.0]), "fitness"),
        (lambda ck: ck["boundary"]["search"].update(round=10**30), "round"),
        (lambda ck: ck["boundary"]["rng"]["torch"]["$array"].update(shape=[7, 9]), "torch"),
        (lambda ck: ck["boundary"]["rng"]["numpy"]["state"].update(state=10**1000), "numpy"),
        (lambda ck: ck.update(events_written=0), "events_written"),
        (lambda ck: ck["boundary"]["search"].update(events_at_boundary=0), "events.jsonl"),
        (lambda ck: ck["boundary"]["strategy"].update(phase="done"), "phase"),
    ],
    ids=["fitness", "round", "torch", "numpy", "events_written", "events_at_boundary", "phase"],
)
def test_crafted_checkpoints_are_refused(run_copy, edit, names):
    for path in (run_copy / "checkpoint.json", run_copy / "checkpoint.prev.json"):
        ck = json.loads(path.read_text())
        edit(ck)
        path.write_text(json.dumps(ck))
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    refused(_invoke("resume", run_copy), names)
    after = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    assert after == before | {"run.lock": b""}  # nothing else written


# -- silently accepted nonsense -------------------------------------------------------------------
#: every key that holds a number, as the fuzz benchmark lists them
NUMBERS = fuzz_commands.NUMBER_KEYS


@pytest.mark.parametrize("key", NUMBERS)
def test_booleans_are_not_numbers(tmp_path, demo_table, key):
    for value in (True, False):
        path = _write(tmp_path, _bad(demo_table, tmp_path, key, value))
        refused(_invoke("run", path, "--check"), key)


@pytest.mark.parametrize(
    "key, value",
    [
        ("seed", "3"),
        ("ground_truth.options.delay_s", math.inf),
        ("ground_truth.options.delay_s", math.nan),
        ("ground_truth.options.delay_s", 1e12),
        ("ground_truth.options.cost_scale", math.inf),
        ("ground_truth.options.cost_scale", 1e12),
        ("search.pool_options", {"neighbours": 4}),
        ("ground_truth", {"name": "mlp_classifier"}),
    ],
)
def test_nonsense_values_are_refused(tmp_path, demo_table, key, value):
    path = _write(tmp_path, _bad(demo_table, tmp_path, key, value))
    refused(_invoke("run", path, "--check"), key.split(".")[0])


def test_a_time_limit_holds_with_one_worker(tmp_path, demo_table):
    cfg = _config(
        demo_table,
        tmp_path,
        surrogate="none",
        ground_truth__options__delay_s=3.0,
        execution__timeout_s=0.5,
        execution__retries=0,
        budget__evaluations=1,
    )
    assert _invoke("run", _write(tmp_path, cfg)).exit_code == 0
    (row,) = RunDir(tmp_path / "runs" / "run").read_evaluations()
    assert row["status"] == "failed" and "time limit of 0.5 s" in row["message"]


# -- show and export read what they are given as carefully as resume ----------------------------
def _edit_csv(rd: Path, edit) -> None:
    lines = (rd / "evaluations.csv").read_text().splitlines()
    edit(lines)
    (rd / "evaluations.csv").write_text("\n".join(lines) + "\n")


def test_show_and_export_refuse_short_rows_and_misspelt_headers(run_copy):
    _edit_csv(run_copy, lambda lines: lines.__setitem__(2, lines[2][:20]))
    for command in ("show", "export"):
        refused(_invoke(command, run_copy), "evaluations.csv row 3")
    _edit_csv(run_copy, lambda lines: lines.__setitem__(0, lines[0].replace("objective", "obj")))
    refused(_invoke("show", run_copy), "evaluations.csv", "header")


@pytest.mark.parametrize("top", ["-1", "0", "-3"])
def test_top_must_be_positive(run_copy, top):
    refused(_invoke("show", run_copy, "--top", top), "--top")
    refused(_invoke("export", run_copy, "--top", top), "--top")


def test_show_reads_a_bare_done_event_and_a_nan_objective(run_copy):
    with (run_copy / "events.jsonl").open("a") as fh:
        fh.write('{"event":"done"}\n')

    path = run_copy / "evaluations.csv"
    rows = list(csv.reader(path.open(newline="")))
    rows[1][3] = "nan"  # the first result's objective
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    result = _invoke("show", run_copy)
    assert result.exit_code == 0, result.output
    assert "nan" not in result.output.split("best so far")[1]


def test_export_reads_a_plain_space_name_and_refuses_a_nan_option(run_copy):
    cfg = yaml.safe_load((run_copy / "config.yaml").read_text())
    # a plain name is the space with its defaults (8 nodes): the run's 4-node cells are not its
    (run_copy / "config.yaml").write_text(yaml.safe_dump({**cfg, "space": "darts_rnn"}))
    refused(_invoke("export", run_copy), "not a genotype of the run's space", "wrong length")
    assert not (run_copy / "export").exists()
    bad = {**cfg, "space": {"name": "darts_rnn", "options": {"nodes": math.nan}}}
    (run_copy / "config.yaml").write_text(yaml.safe_dump(bad))
    refused(_invoke("export", run_copy), "space.options.nodes")
    (run_copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert _invoke("export", run_copy).exit_code == 0
    cells = json.loads((run_copy / "export" / "top_cells.json").read_text())
    assert len(cells) == 5 and all(isinstance(c["objective"], float) for c in cells)


# -- compare and train ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value",
    [("sizes", []), ("seeds", []), ("n_jobs", 5000), ("top_percents", [150])],
)
def test_compare_predict_refuses_nonsense(tmp_path, demo_table, key, value):
    cfg = {
        "space": "darts_rnn",
        "ground_truth": {"name": "table", "options": {"path": str(demo_table)}},
        "surrogates": ["random"],
        key: value,
    }
    refused(_invoke("compare", "predict", _write(tmp_path, cfg)), key)


@pytest.mark.parametrize("key, value", [("n_jobs", 1_000_000), ("target", math.inf)])
def test_compare_search_refuses_nonsense(tmp_path, demo_table, key, value):
    base = _write(tmp_path, _config(demo_table, tmp_path), "base.yaml")
    cfg = {"base": str(base), "methods": [{"label": "a"}], key: value}
    refused(_invoke("compare", "search", _write(tmp_path, cfg)), key)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--out", "/dev/null"], "--out"),
        (["--out", "/proc/x"], "--out"),
        (["--epochs", "99999999999999999999"], "epochs"),
        (["--set", "lr=abc"], "lr"),
        (["--set", "time_limit_s=abc"], "time_limit_s"),
    ],
)
def test_train_refuses_bad_arguments(tmp_path, args, names):
    result = _invoke("train", "--genotype", "DARTS_V2", "--preset", "tiny", *args)
    refused(result, names)


# -- bounded reads of archives --------------------------------------------------------------------
def _bomb(path: Path, name: str, size: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open(name, "w", force_zip64=True) as fh:
            for start in range(0, size, 1 << 24):
                fh.write(bytes(min(1 << 24, size - start)))
    return path


def test_a_log_archive_bomb_is_refused_before_it_is_decompressed(tmp_path):
    archive = _bomb(tmp_path / "logs.zip", "a.json", 200_000_000)
    cfg = {
        "name": "nb",
        "output_dir": str(tmp_path / "runs"),
        "space": "nasbench_nlp",
        "ground_truth": {"name": "nasbench_nlp", "options": {"path": str(archive)}},
    }
    start = time.perf_counter()
    line = refused(_invoke("run", _write(tmp_path, cfg), "--check"), "logs.zip", "a.json")
    assert time.perf_counter() - start < 10 and len(line) < 600


def test_a_dataset_archive_bomb_writes_nothing(tmp_path):
    archive = _bomb(tmp_path / "ptb.zip", "ptb.valid.txt", 200_000_000)
    dest = tmp_path / "data" / "ptb"
    result = _invoke("data", "fetch", "ptb", "--source", archive, "--dest", dest)
    refused(result, "ptb.valid.txt", "more than the 399,782 expected")
    assert not dest.exists() and os.listdir(tmp_path / "data") == []
