"""The checkpoint is data: crafted files run no code, damaged ones are refused in one line
with nothing changed on disk (or recovered from without loss, saying so)."""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import refused
from click.testing import CliRunner

from evo_nas.cli.commands import main
from evo_nas.rundir.files import RunDir
from evo_nas.search.launch import run_search, start_run
from evo_nas_common import statefile
from surrogates import SURROGATES
from surrogates.random_surrogate import RandomSurrogate


def _config(tmp_path: Path, table: Path, name: str = "run") -> dict:
    return {
        "name": name,
        "output_dir": str(tmp_path / "runs"),
        "seed": 5,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table)}},
        "surrogate": "random",
        "search": {"algorithm": "regularized", "population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 5, "generations": 2, "promote": 3, "explore": 1},
        "budget": {"evaluations": 16},
    }


class _Killed(Exception):
    pass


def _killed_run(tmp_path: Path, table: Path, at: int = 9, **sections) -> RunDir:
    """A run stopped right after its ``at``-th evaluation was checkpointed, as by SIGKILL."""
    engine, rd = start_run({**_config(tmp_path, table), **sections}, progress=False)
    original = engine.cache.on_record

    def on_record(record):
        original(record)
        if record["index"] == at:
            raise _Killed

    engine.cache.on_record = on_record
    with pytest.raises(_Killed):
        engine.run()
    return rd


@pytest.fixture
def killed(tmp_path, demo_table) -> RunDir:
    return _killed_run(tmp_path, demo_table)


@pytest.fixture
def reference(tmp_path, demo_table) -> str:
    """evaluations.csv of the same run, uninterrupted."""
    run_search(_config(tmp_path, demo_table, "reference"), progress=False)
    return (tmp_path / "runs" / "reference" / "evaluations.csv").read_text()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _resume(rd: RunDir):
    return CliRunner().invoke(main, ["resume", str(rd.path), "--quiet"])


def _edit_checkpoints(rd: RunDir, edit) -> None:
    """Apply ``edit`` to the JSON of every checkpoint generation."""
    for path in rd.checkpoint_files():
        doc = json.loads(path.read_bytes())
        edit(doc)
        path.write_text(json.dumps(doc))


def _each_checkpoint(rd: RunDir, change) -> None:
    for path in rd.checkpoint_files():
        path.write_bytes(change(path.read_bytes()))


def _set(*where, value):
    def edit(doc):
        for k in where[:-1]:
            doc = doc[k]
        doc[where[-1]] = value

    return edit


def _drop(*where):
    def edit(doc):
        for k in where[:-1]:
            doc = doc[k]
        del doc[where[-1]]

    return edit


def _torch_state_of_size(n: int):
    return statefile.encode(np.zeros(n, dtype=np.uint8))


# -- damaged files ------------------------------------------------------------------------------
DAMAGED = {
    "truncated": (
        lambda rd: _each_checkpoint(rd, lambda b: b[: len(b) // 2]),
        ["checkpoint.json: damaged checkpoint (not valid JSON", "checkpoint.prev.json"],
    ),
    "empty": (lambda rd: _each_checkpoint(rd, lambda b: b""), ["(empty file)"]),
    "garbage": (
        lambda rd: _each_checkpoint(rd, lambda b: random.Random(0).randbytes(len(b))),
        ["checkpoint.json: damaged checkpoint (not UTF-8 text"],
    ),
    "a-list": (
        lambda rd: _each_checkpoint(rd, lambda b: b"[1, 2, 3]"),
        ["not an evo-nas checkpoint"],
    ),
    "future-version": (
        lambda rd: _edit_checkpoints(rd, _set("version", value=3)),
        ["format version 3, this evo-nas reads 2"],
    ),
    "objective-not-a-number": (
        lambda rd: _edit_checkpoints(
            rd, lambda d: _set("result", "objective", value="low")(d["records"][0])
        ),
        ["records.0.result.objective: Input should be a valid number"],
    ),
    "record-without-key": (
        lambda rd: _edit_checkpoints(rd, lambda d: _drop("key")(d["records"][3])),
        ["records.3.key: missing required key"],
    ),
    "records-out-of-order": (
        lambda rd: _edit_checkpoints(rd, lambda d: d["records"].reverse()),
        ["records[0]: index"],
    ),
    "genotype-of-another-space": (
        lambda rd: _edit_checkpoints(
            rd, lambda d: _set("genotype", value="relu9")(d["records"][2])
        ),
        ["records[2].genotype: not a darts_rnn genotype"],
    ),
    "population-genotype": (
        lambda rd: _edit_checkpoints(
            rd,
            lambda d: _set("genotype", value=[1, 2])(d["boundary"]["search"]["population"][0]),
        ),
        ["boundary.search.population[0]: not a darts_rnn genotype"],
    ),
    "strategy-state": (
        lambda rd: _edit_checkpoints(rd, _set("boundary", "strategy", "phase", value="later")),
        ["boundary.strategy.phase: Input should be 'start', 'evolve' or 'promote'"],
    ),
    "torch-rng-of-the-wrong-size": (
        lambda rd: _edit_checkpoints(
            rd, _set("boundary", "rng", "torch", value=_torch_state_of_size(10))
        ),
        ["boundary.rng.torch: not a generator state"],
    ),
    "numpy-rng-of-another-kind": (
        lambda rd: _edit_checkpoints(
            rd, _set("boundary", "rng", "numpy", value={"bit_generator": "MT19937"})
        ),
        ["boundary.rng.numpy: not a PCG64 state"],
    ),
    "python-rng-cut": (
        lambda rd: _edit_checkpoints(rd, _set("boundary", "rng", "python", "internal", value=[1])),
        ["boundary.rng.python: not a generator state"],
    ),
    "array-bytes-cut": (
        lambda rd: _edit_checkpoints(
            rd,
            lambda d: _set("base64", value="AAAA")(d["boundary"]["rng"]["torch"]["$array"]),
        ),
        ["array data holds 3 bytes"],
    ),
    "events-binary": (
        lambda rd: rd.events_path.write_bytes(random.Random(1).randbytes(3000) + b"\n"),
        ["events.jsonl: line 1 is not a JSON event (damaged)"],
    ),
    "events-deleted": (
        lambda rd: rd.events_path.unlink(),
        ["events.jsonl: missing, but the checkpoint accounts for", "events"],
    ),
    "events-cut": (
        lambda rd: rd.events_path.write_text(
            "".join(rd.events_path.read_text().splitlines(keepends=True)[:3])
        ),
        ["events.jsonl: holds 3 complete events, the checkpoint accounts for"],
    ),
    "config-invalid-yaml": (
        lambda rd: rd.config_path.write_text("name: run\nspace: [unclosed\n"),
        ["config.yaml line 3: invalid YAML"],
    ),
    "config-binary": (
        lambda rd: rd.config_path.write_bytes(b"\x00\xff\xfe\x81" * 50),
        ["config.yaml: not UTF-8 text"],
    ),
    "config-not-a-config": (
        lambda rd: rd.config_path.write_text(
            rd.config_path.read_text().replace("population: 6", "population: many")
        ),
        ["config.yaml: search.population: Input should be a valid integer"],
    ),
    "config-changed": (
        lambda rd: rd.config_path.write_text(
            rd.config_path.read_text().replace("seed: 5", "seed: 6")
        ),
        ["config.yaml differs from the run's config", "seed: 5 -> 6"],
    ),
    "checkpoints-deleted": (
        lambda rd: [p.unlink() for p in rd.checkpoint_files()],
        ["checkpoint.json: missing, but events.jsonl is not empty; refusing to start the run"],
    ),
}


@pytest.mark.parametrize("damage, fragments", DAMAGED.values(), ids=DAMAGED)
def test_a_damaged_run_directory_is_refused_in_one_line_with_nothing_changed(
    killed, damage, fragments
):
    damage(killed)
    before = _snapshot(killed.path)
    refused(_resume(killed), *fragments)
    assert _snapshot(killed.path) == before


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(killed, reference):
    latest = killed.checkpoint_path
    latest.write_bytes(latest.read_bytes()[:-40])
    result = _resume(killed)
    assert result.exit_code == 0, result.output
    warning = result.output.splitlines()[0]
    assert warning.startswith("warning: ") and "checkpoint.json: damaged checkpoint" in warning
    assert "resumed from the checkpoint before it, checkpoint.prev.json" in warning
    assert killed.evaluations_path.read_text() == reference
    assert [e["event"] for e in killed.read_events()].count("checkpoint_recovered") == 1


def test_a_missing_latest_checkpoint_falls_back_to_the_previous_one(killed, reference):
    killed.checkpoint_path.unlink()  # as a kill between the two renames of a save leaves it
    result = _resume(killed)
    assert result.exit_code == 0, result.output
    assert "checkpoint.json: missing; resumed from the checkpoint before it" in result.output
    assert killed.evaluations_path.read_text() == reference


def test_a_deleted_evaluations_table_is_rebuilt_from_the_checkpoint(killed, reference):
    killed.evaluations_path.unlink()
    result = _resume(killed)
    assert result.exit_code == 0, result.output
    assert "evaluations.csv: missing or damaged; rebuilt from the checkpoint's 9 results" in (
        result.output
    )
    assert killed.evaluations_path.read_text() == reference


def test_a_surrogate_state_that_does_not_load_is_refitted_saying_so(killed, reference):
    _edit_checkpoints(killed, _set("boundary", "surrogate", value={"colour": "blue"}))
    result = _resume(killed)
    assert result.exit_code == 0, result.output
    assert "the surrogate's state does not load ('seed'); refitting it" in result.output
    assert killed.evaluations_path.read_text() == reference


def test_a_run_killed_before_its_first_checkpoint_starts_again(tmp_path, demo_table, reference):
    engine, rd = start_run(_config(tmp_path, demo_table), progress=False)
    engine.lock.release()  # killed right after creating the run directory
    assert not rd.checkpoint_files()
    result = _resume(rd)
    assert result.exit_code == 0, result.output
    assert rd.evaluations_path.read_text() == reference


def test_an_asynchronous_run_killed_at_its_first_result_resumes(tmp_path, demo_table):
    search = {**_config(tmp_path, demo_table)["search"], "strategy": "steady_state"}
    rd = _killed_run(tmp_path, demo_table, at=1, search=search)
    result = _resume(rd)
    assert result.exit_code == 0, result.output
    keys = [r["key"] for r in rd.read_evaluations()]
    assert len(keys) == 16 == len(set(keys))


# -- crafted files run no code --------------------------------------------------------------------
class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def payload(tmp_path) -> tuple[bytes, Path]:
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Payload(marker))
    pickle.loads(data)  # the payload works: unpickled, it creates the file
    assert marker.exists()
    marker.unlink()
    return data, marker


def test_a_crafted_pickle_as_checkpoint_runs_nothing(killed, payload):
    data, marker = payload
    _each_checkpoint(killed, lambda _: data)
    refused(_resume(killed), "checkpoint.json: damaged checkpoint")
    assert not marker.exists()


def test_a_crafted_object_array_runs_nothing(killed, payload):
    data, marker = payload
    arr = {
        "$array": {
            "dtype": "|O",
            "shape": [1],
            "base64": statefile.encode(np.frombuffer(data, dtype=np.uint8))["$array"]["base64"],
        }
    }
    _edit_checkpoints(killed, _set("boundary", "surrogate", value={"weights": arr}))
    refused(
        _resume(killed), "['boundary']['surrogate']['weights']: array dtype object is not allowed"
    )
    assert not marker.exists()


# -- contract ---------------------------------------------------------------------------------
class TensorSurrogate(RandomSurrogate):
    """Breaks the state contract: a torch tensor in its state."""

    def state_dict(self) -> dict:
        return {"seed": self.seed, "w": torch.zeros(2)}


@pytest.fixture
def tensor_surrogate():
    SURROGATES.register("tensor_state", TensorSurrogate)
    yield
    SURROGATES.unregister("tensor_state")


def test_a_state_that_is_not_data_is_refused_at_save_time(tmp_path, demo_table, tensor_surrogate):
    cfg = dict(_config(tmp_path, demo_table), surrogate="tensor_state")
    path = tmp_path / "search.yaml"
    path.write_text(json.dumps(cfg))
    refused(
        CliRunner().invoke(main, ["run", str(path), "--quiet"]),
        "surrogate state_dict()['w']: a torch.Tensor cannot be stored",
    )


def test_show_and_export_of_a_damaged_table_are_one_line(killed):
    killed.evaluations_path.write_bytes(random.Random(2).randbytes(2000))
    for command in ("show", "export"):
        result = CliRunner().invoke(main, [command, str(killed.path)])
        refused(result, "evaluations.csv: not a CSV table")
