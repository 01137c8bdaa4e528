"""Fuzz every command as a hostile user would: configs, tables, run-directory files,
checkpoints, archives and arguments, generated at random and aimed at known weak spots.

Each case writes its inputs into a folder of its own, runs one command in this process
(``run``, ``run --check``, ``resume``, ``show``, ``export``, ``compare predict``, ``compare
search``, ``train``, ``data fetch``) and checks what it did:

- it ended within ``--limit-s`` (else: a hang), without a traceback;
- it succeeded (exit 0), or refused in one ``error:`` line with exit status 2, naming the key
  or file at fault where the case knows which;
- a case built to be nonsense (a boolean for a number, a link out of the run directory, a
  checkpoint that contradicts its events, ...) was refused: accepting it is a failure;
- nothing outside the case's folder changed (a folder of files that the crafted links point
  to, and the other cases' folders, are compared before and after);
- a ``run`` and its ``run --check`` agree (one refuses what the other refuses).

``tests/test_fuzz_commands.py`` runs a fixed-seed subset; run the whole benchmark with::

    python benchmarks/fuzz_commands.py --cases 1200 --seed 1
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_configs  # noqa: E402

from evo_nas.cli.commands import main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


@dataclass
class Case:
    """One command line and what it must do: ``expect`` is ``refuse`` (nonsense), ``accept``
    (valid input) or ``any``; a refusal must name ``names`` when given."""

    args: list[str]
    expect: str = "any"
    names: str | None = None
    agree_with_check: bool = False  # also run `run --check` on it: both must decide alike


@dataclass
class Sandbox:
    """The benchmark's folders: ``work`` holds one folder per case, ``outside`` the files
    that crafted links point to (which must never change), ``templates`` run directories."""

    root: Path
    counter: int = 0
    templates: dict[str, Path] = field(default_factory=dict)

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def outside(self) -> Path:
        return self.root / "outside"

    def folder(self) -> Path:
        """A fresh, empty folder for the next case (the current directory while it runs)."""
        self.counter += 1
        path = self.work / f"case{self.counter}"
        path.mkdir(parents=True)
        return path


def _digest(root: Path, skip: Path | None = None) -> str:
    """Names, kinds, sizes and contents (small files) of everything under ``root``."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if Path(dirpath) / d != skip]
        dirnames.sort()
        for name in sorted(filenames) + dirnames:
            p = Path(dirpath) / name
            st = p.lstat()
            h.update(f"{p}|{st.st_mode}|{st.st_size}".encode())
            if p.is_file() and not p.is_symlink() and st.st_size < 1 << 16:
                h.update(p.read_bytes())
    return h.hexdigest()


# -- building blocks ---------------------------------------------------------------------------
def base_config(table: Path, name: str = "run") -> dict[str, Any]:
    """A small valid search over the demo table (seconds)."""
    return {
        "name": name,
        "output_dir": "runs",
        "seed": 0,
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(table)}},
        "surrogate": "random",
        "search": {"population": 6, "sample": 3, "offspring": 3},
        "surrogate_loop": {"warmup": 4, "generations": 1, "promote": 2},
        "budget": {"evaluations": 6},
        "logging": {"progress": False},
    }


def set_key(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with the dotted key ``path`` (e.g. ``search.population``) set."""
    doc = copy.deepcopy(doc)
    node = doc
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


def _write_yaml(folder: Path, doc: Any, name: str = "search.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


#: keys that hold numbers (or booleans), as a config names them
NUMBER_KEYS = [
    "seed",
    "search.population",
    "search.sample",
    "search.offspring",
    "search.mutation_retries",
    "search.max_stale_generations",
    "surrogate_loop.warmup",
    "surrogate_loop.warmup_candidates",
    "surrogate_loop.generations",
    "surrogate_loop.promote",
    "surrogate_loop.kappa",
    "surrogate_loop.explore",
    "budget.evaluations",
    "budget.wall_time_s",
    "execution.workers",
    "execution.threads_per_worker",
    "execution.gpus_per_task",
    "execution.retries",
    "execution.timeout_s",
    "space.options.nodes",
    "ground_truth.options.delay_s",
    "ground_truth.options.cost_scale",
]
BOOL_KEYS = ["search.pool", "logging.progress", "logging.tensorboard"]
NONSENSE_NUMBERS: list[Any] = [True, False, "3", "2.5", math.inf, -math.inf, math.nan, [], {}]
NONSENSE_BOOLS: list[Any] = [1, 0, "yes", "true", 1.0, None]
BAD_NAMES = ["", "..", ".", "../x", "a/b", "x\x00y", "two words", "line\nbreak", "a" * 5000]


def nonsense_config(sb: Sandbox, rng: random.Random, folder: Path) -> tuple[Any, str]:
    """A config with one nonsense value, and the key its refusal must name."""
    cfg = base_config(sb.root / "table_demo.csv")
    kind = rng.randrange(10)
    if kind < 4:
        key = rng.choice(NUMBER_KEYS)
        return set_key(cfg, key, rng.choice(NONSENSE_NUMBERS)), key
    if kind == 4:
        key = rng.choice(BOOL_KEYS)
        return set_key(cfg, key, rng.choice(NONSENSE_BOOLS)), key
    if kind == 5:
        return set_key(cfg, "name", rng.choice(BAD_NAMES)), "name"
    if kind == 6:
        value = rng.choice(["x" * 5000, "a/" + "b" * 300, "with\x00nul"])
        return set_key(cfg, "output_dir", value), "output_dir"
    choices: list[tuple[str, Any, str]] = [
        ("execution.address", "garbage://x", "execution"),
        ("execution.address", "tcp://h:1 ; rm -rf", "execution.address"),
        ("search.pool_options", {"neighbours": 3}, "search"),
        ("ground_truth.options.delay_s", 1e12, "ground_truth.options.delay_s"),
        ("ground_truth.options.cost_scale", 1e12, "ground_truth.options.cost_scale"),
        ("ground_truth.options.delay_s", -1.0, "ground_truth.options.delay_s"),
        ("surrogate", {"name": "params", "options": {"ref_size": 10_000_000}}, "surrogate"),
        ("ground_truth", {"name": "mlp_classifier"}, "ground_truth"),
        ("seed", 2**32, "seed"),
        ("budget.evaluations", 10**30, "budget.evaluations"),
        ("surrogate_loop.kappa", 1e300, "surrogate_loop.kappa"),
    ]
    key, value, names = rng.choice(choices)
    return set_key(cfg, key, value), names


# -- categories ----------------------------------------------------------------------------------
def cat_mutated_examples(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """run --check / compare loaders: a random mutation of an example config (as
    benchmarks/fuzz_configs.py makes them), beside copies of the examples' data."""
    example = rng.choice(fuzz_configs.SEARCH)
    path = sb.root / "examples" / f"case{sb.counter}_{example}"
    path.write_bytes(fuzz_configs.mutate(example, rng))
    return Case(["run", str(path), "--check"])


def cat_nonsense_check(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    cfg, key = nonsense_config(sb, rng, folder)
    return Case(["run", str(_write_yaml(folder, cfg)), "--check"], "refuse", key)


def cat_nonsense_run(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    cfg, key = nonsense_config(sb, rng, folder)
    return Case(["run", str(_write_yaml(folder, cfg)), "--quiet"], "refuse", key, True)


def cat_yaml_tags(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """YAML tags that would run code in an unsafe loader; the payload touches a canary."""
    canary = sb.outside / "canary"
    payload = rng.choice(
        [
            f"!!python/object/apply:os.system ['touch {canary}']",
            f"!!python/object/apply:subprocess.call [['touch', '{canary}']]",
            "!!python/name:os.system",
            "!!python/object/new:type ['x', [], {}]",
            "!!binary aGVsbG8=",
            "!!set {a, b}",
        ]
    )
    text = yaml.safe_dump(base_config(sb.root / "table_demo.csv"), sort_keys=False)
    key = rng.choice(["seed", "name", "budget"])
    lines = [f"{key}: {payload}" if ln.startswith(f"{key}:") else ln for ln in text.splitlines()]
    path = folder / "search.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Case(["run", str(path), "--check"], "refuse", f"search.yaml|{key}")


def cat_valid_run(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """A valid small run (strategy, surrogate and seed varied): run and --check accept it."""
    cfg = base_config(sb.root / "table_demo.csv")
    cfg["seed"] = rng.randrange(2**32)
    cfg["surrogate"] = rng.choice(["random", "none", "params"])
    cfg["search"]["strategy"] = rng.choice(["generational", "steady_state"])
    cfg["budget"]["evaluations"] = rng.randint(1, 8)
    return Case(["run", str(_write_yaml(folder, cfg)), "--quiet"], "accept", None, True)


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue().rstrip("\r\n")


def cat_tables(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """run --check over a table with one damaged row (or a damaged file)."""
    header, *rows = list(csv.reader(io.StringIO((EXAMPLES / "table_demo.csv").read_text())))
    rows = rng.sample(rows, 30)
    body = [_csv_line(r) for r in rows]
    kind = rng.choice(
        ["field", "overflow", "cost_neg", "cost_inf", "cost_nan", "short", "header", "binary"]
        + ["jsonl_overflow", "jsonl_nested", "jsonl_list", "nan", "dup", "empty", "bom"]
    )
    expect, suffix, text = "refuse", ".csv", None
    i = rng.randrange(len(body))
    cell = rows[i][0]
    genotype = _csv_line([cell])
    costs = {"cost_neg": "-300", "cost_inf": "inf", "cost_nan": "nan"}
    head = ",".join(header)
    if kind == "field":
        body[i] = f'{genotype},"{"9" * 200_000}",1'
    elif kind == "overflow":
        body[i] = f"{genotype},1{'0' * 400},1"
    elif kind in costs:
        body[i] = f"{genotype},100.0,{costs[kind]}"
    elif kind == "short":
        body[i], expect = genotype, "any"  # read with a warning, as documented
    elif kind == "header":
        head = head.replace("objective", "objectiv")
    elif kind == "binary":
        text = rng.randbytes(3000).decode("latin-1")
    elif kind == "nan":
        body[i], expect = f"{genotype},nan,1", "any"  # read as diverged, with a warning
    elif kind == "dup":
        body.append(body[i])
    elif kind == "empty":
        body = []
    elif kind == "bom":
        head, expect = "\ufeff" + head, "any"
    else:
        suffix = ".jsonl"
        line = {
            "jsonl_overflow": f'{{"genotype": {cell}, "objective": 1{"0" * 400}}}',
            "jsonl_nested": "[" * 100_000 + "]" * 100_000,
            "jsonl_list": "[1, 2]",
        }
        text = line[kind] + "\n"
    table = folder / f"table{suffix}"
    if text is None:
        text = "\n".join([head, *body]) + "\n"
    table.write_bytes(text.encode("utf-8", "surrogateescape"))
    cfg = set_key(base_config(table), "name", "t")
    return Case(["run", str(_write_yaml(folder, cfg)), "--check"], expect, "table")


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def _zip_bomb(path: Path, name: str, size: int) -> Path:
    """A zip of one entry of ``size`` zero bytes (about a thousandth of that compressed)."""
    chunk = bytes(1 << 24)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open(name, "w", force_zip64=True) as fh:
            for start in range(0, size, len(chunk)):
                fh.write(chunk[: size - start])
    return path


def cat_nbnlp_archives(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """run --check of a NAS-Bench-NLP search over a crafted log archive."""
    logs = sb.templates["nbnlp_logs"]
    names = sorted(p.name for p in logs.iterdir())
    entries = {n: (logs / n).read_bytes() for n in rng.sample(names, 20)}
    kind = rng.choice(["valid", "bomb", "ratio", "json", "nested", "not_zip", "cut", "huge_key"])
    expect = "refuse"
    archive = folder / "logs.zip"
    if kind == "valid":
        expect = "accept"
    elif kind == "bomb":
        shutil.copyfile(sb.templates["bomb_zip"], archive)
    elif kind == "ratio":
        entries["x.json"] = b" " * 900_000 + b"{}"
    elif kind == "json":
        entries[rng.choice(list(entries))] = b'{"recepie_id": "x"'
    elif kind == "nested":
        entries["deep.json"] = b"[" * 100_000 + b"]" * 100_000
    elif kind == "huge_key":
        entries["k.json"] = json.dumps({"k" * 900_000: 1}).encode()
    if kind != "bomb":
        _zip(archive, entries)
    if kind == "not_zip":
        archive.write_bytes(rng.randbytes(5000))
    elif kind == "cut":
        data = archive.read_bytes()
        archive.write_bytes(data[: len(data) // 2])
    cfg = {
        "name": "nb",
        "output_dir": "runs",
        "space": "nasbench_nlp",
        "ground_truth": {"name": "nasbench_nlp", "options": {"path": str(archive)}},
        "search": {"pool": True},
        "budget": {"evaluations": 5},
    }
    return Case(["run", str(_write_yaml(folder, cfg)), "--check"], expect, "logs.zip")


# -- run directories -----------------------------------------------------------------------------
RUN_FILES = [
    "config.yaml",
    "events.jsonl",
    "evaluations.csv",
    "best.json",
    "checkpoint.json",
    "checkpoint.prev.json",
    "run.lock",
]


def _damage_file(sb: Sandbox, rng: random.Random, rd: Path) -> tuple[str, str | None]:
    """One damage to one run file: (expectation of a run command, what a refusal names)."""
    name = rng.choice(RUN_FILES)
    path = rd / name
    kind = rng.choice(["delete", "cut", "flip", "dir", "link", "empty", "garbage"])
    if kind == "link":
        path.unlink(missing_ok=True)
        path.symlink_to(sb.outside / "somefile")
        return "refuse", name
    if kind == "dir":
        path.unlink(missing_ok=True)
        path.mkdir()
        return "refuse", name
    if kind == "delete":
        path.unlink(missing_ok=True)
    elif kind == "empty":
        path.write_bytes(b"")
    elif path.exists():
        data = path.read_bytes()
        if kind == "cut":
            path.write_bytes(data[: rng.randrange(len(data) + 1)])
        elif kind == "flip" and data:
            out = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                out[rng.randrange(len(out))] = rng.randrange(256)
            path.write_bytes(bytes(out))
        else:
            path.write_bytes(data + rng.randbytes(rng.randint(1, 300)))
    return "any", None


def _checkpoint_edit(rng: random.Random, ck: dict[str, Any]) -> str:
    """A crafted checkpoint: one field set to what no run writes; the field's name."""
    search = ck["boundary"]["search"]
    edits: list[tuple[str, Callable[[], None]]] = [
        ("events_written", lambda: ck.update(events_written=0)),
        ("events_at_boundary", lambda: search.update(events_at_boundary=0)),
        ("records_at_boundary", lambda: search.update(records_at_boundary=10**6)),
        ("round", lambda: search.update(round=10**30)),
        ("generation", lambda: search.update(generation=-1)),
        ("phase", lambda: ck["boundary"]["strategy"].update(phase="done")),
        ("stale", lambda: ck["boundary"]["strategy"].update(stale="x")),
        ("fitness", lambda: search["hof"][0].update(fitness=[1.0, 2.0])),
        ("torch", lambda: ck["boundary"]["rng"]["torch"]["$array"].update(shape=[10**9])),
        ("torch", lambda: ck["boundary"]["rng"].update(torch={"$array": {"dtype": "|u1"}})),
        ("numpy", lambda: ck["boundary"]["rng"]["numpy"]["state"].update(state=10**1000)),
        ("internal", lambda: ck["boundary"]["rng"]["python"].update(internal=[1] * 10)),
        ("index", lambda: ck["records"][0].update(index=7)),
        ("records", lambda: ck["records"].append(ck["records"][0])),
        ("cost_s", lambda: ck["records"][0]["result"].update(cost_s=-5)),
        ("status", lambda: ck["records"][0]["result"].update(status="great")),
        ("genotype", lambda: ck["records"][0].update(genotype="relu9 relu9")),
        ("elapsed_s", lambda: ck.update(elapsed_s=-1)),
        ("version", lambda: ck.update(version=3)),
        ("format", lambda: ck.update(format="pickle")),
        ("in_flight", lambda: ck.update(in_flight={"k": {"genotype": 1}})),
        ("screened", lambda: search.update(screened=5)),
    ]
    name, edit = rng.choice(edits)
    edit()
    return name


def cat_resume(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """resume a killed run whose files were damaged, or whose checkpoints were crafted."""
    rd = folder / "runs" / "killed"
    shutil.copytree(sb.templates["killed"], rd, symlinks=True)
    if rng.random() < 0.5:
        expect, names = _damage_file(sb, rng, rd)
        return Case(["resume", str(rd), "--quiet"], expect, names)
    edit_seed = rng.random()
    for name in ("checkpoint.json", "checkpoint.prev.json"):  # both: no good one to fall back on
        ck = json.loads((rd / name).read_text())
        _checkpoint_edit(random.Random(edit_seed), ck)
        (rd / name).write_text(json.dumps(ck))
    return Case(["resume", str(rd), "--quiet"], "refuse", "checkpoint|events.jsonl")


def _report_dir(sb: Sandbox, rng: random.Random, folder: Path) -> tuple[Path, str, str | None]:
    """A finished run directory with one damage; what ``export`` must do with it and name.
    (A damaged config is ``space`` to name; ``show`` reads it only to draw figures.)"""
    rd = folder / "runs" / "done"
    shutil.copytree(sb.templates["finished"], rd, symlinks=True)
    csv_path = rd / "evaluations.csv"
    lines = csv_path.read_text().splitlines()
    kind = rng.choice(["none", "file", "short", "header", "nan", "field", "done", "links", "space"])
    if kind == "file":
        return (rd, *_damage_file(sb, rng, rd))
    if kind == "short":
        lines[2] = ",".join(lines[2].split(",")[:3])
    elif kind == "header":
        lines[0] = lines[0].replace("objective", "objectve")
    elif kind == "nan":
        cells = lines[1].split(",")
        cells[3] = "nan"  # the objective column (genotypes hold no comma in darts_rnn)
        lines[1] = ",".join(cells)
        csv_path.write_text("\n".join(lines) + "\n")
        return rd, "accept", None
    elif kind == "field":
        lines[1] = lines[1] + "," + "x" * 200_000
    elif kind == "done":
        with (rd / "events.jsonl").open("a") as fh:
            fh.write('{"event":"done"}\n{"event": "fit", "screened": [1], "fit_s": "x"}\n')
        return rd, "accept", None
    elif kind == "links":
        target = rng.choice(["export", "plots"])
        (rd / target).symlink_to(sb.outside, target_is_directory=True)
        return rd, "refuse", target
    elif kind == "space":  # a plain name (another space: 8 nodes), or with a NaN option
        cfg = yaml.safe_load((rd / "config.yaml").read_text())
        plain = rng.random() < 0.5
        cfg["space"] = "darts_rnn" if plain else {"name": "darts_rnn", "options": {"x": math.nan}}
        (rd / "config.yaml").write_text(yaml.safe_dump(cfg))
        return rd, "any" if plain else "refuse", None if plain else "space"
    else:
        return rd, "accept", None
    csv_path.write_text("\n".join(lines) + "\n")
    return rd, "refuse", "evaluations.csv"


TOPS = ["-3", "-1", "0", "1", "3", "abc", "100000", "100001", "99999999999999999999"]


def cat_show(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    rd, expect, names = _report_dir(sb, rng, folder)
    plots = ["--plots"] if rng.random() < 0.3 else []
    if names == "space" and not plots:
        expect, names = "accept", None  # show reads the config only to draw the cells
    top = rng.choice(TOPS)
    if top not in ("1", "3", "100000"):
        expect, names = "refuse", "--top"
    return Case(["show", str(rd), "--top", top, *plots], expect, names)


def cat_export(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    rd, expect, names = _report_dir(sb, rng, folder)
    top = rng.choice(TOPS)
    if top not in ("1", "3", "100000"):
        expect, names = "refuse", "--top"
    return Case(["export", str(rd), "--top", top], expect, names)


def _predict_config(sb: Sandbox) -> dict[str, Any]:
    return {
        "name": "cp",
        "output_dir": "out",
        "space": {"name": "darts_rnn", "options": {"nodes": 4}},
        "ground_truth": {"name": "table", "options": {"path": str(sb.root / "table_demo.csv")}},
        "surrogates": ["random", "params"],
        "sizes": [5],
        "seeds": [0],
        "test": {"size": 20},
    }


def cat_compare_predict(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    cfg = _predict_config(sb)
    choices: list[tuple[str, Any]] = [
        ("name", rng.choice(BAD_NAMES)),
        ("sizes", []),
        ("seeds", []),
        ("n_jobs", rng.choice([5000, 0, True, "2"])),
        ("top_percents", [rng.choice([150, 0, -1, math.inf])]),
        ("sizes", [rng.choice([True, 0, 10**9, 2.5])]),
        ("test.size", rng.choice([0, 10**9, True])),
        ("test.parents_percent", rng.choice([0, 101, math.nan])),
        ("surrogates", [{"name": "random", "label": rng.choice(BAD_NAMES)}]),
        ("output_dir", "o" * 5000),
        ("split", {"file": "missing.csv"}),
    ]
    if rng.random() < 0.15:
        return Case(["compare", "predict", str(_write_yaml(folder, cfg)), "--quiet"], "accept")
    key, value = rng.choice(choices)
    cfg = set_key(cfg, key, value)
    return Case(["compare", "predict", str(_write_yaml(folder, cfg)), "--quiet"], "refuse", key)


def cat_compare_search(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    base = _write_yaml(folder, base_config(sb.root / "table_demo.csv"), "base.yaml")
    cfg: dict[str, Any] = {
        "name": "cs",
        "output_dir": "out",
        "base": str(base),
        "methods": [{"label": "rnd", "surrogate": "random"}, {"label": "evo", "surrogate": "none"}],
        "seeds": [0],
    }
    choices: list[tuple[str, Any]] = [
        ("name", rng.choice(BAD_NAMES)),
        ("n_jobs", rng.choice([1_000_000, 0, True])),
        ("target", rng.choice([math.inf, -math.inf, math.nan, "low"])),
        ("seeds", rng.choice([[], [True], ["1"], [-1]])),
        ("methods", [{"label": rng.choice(BAD_NAMES)}]),
        ("target_quantile", rng.choice([0, 1, 2, math.nan, True])),
        ("base", "missing.yaml"),
        ("reference", "nobody"),
    ]
    if rng.random() < 0.15:
        return Case(["compare", "search", str(_write_yaml(folder, cfg)), "--quiet"], "accept")
    key, value = rng.choice(choices)
    cfg = set_key(cfg, key, value)
    names = "base" if key == "base" else key
    return Case(["compare", "search", str(_write_yaml(folder, cfg)), "--quiet"], "refuse", names)


def cat_train(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """train with one bad argument (a tiny valid training now and then)."""
    args = ["train", "--genotype", "DARTS_V2", "--preset", "tiny", "--out", str(folder / "t")]
    args += ["--set", "epochs=1", "--set", "epoch_batches=2", "--set", "eval_tokens=200"]
    if rng.random() < 0.05:
        return Case([*args, "--no-test"], "accept")
    (folder / "afile").write_text("x")
    (folder / "link").symlink_to(sb.outside / "somefile")
    choices: list[tuple[list[str], str]] = [
        (["--out", "/dev/null"], "--out"),
        (["--out", "/proc/x"], "--out"),
        (["--out", str(folder / "afile")], "--out"),
        (["--epochs", rng.choice(["0", "-1", "99999999999999999999", "abc", "1e3"])], "epochs"),
        (["--set", rng.choice(["lr=abc", "lr=-1", "lr=.inf", "lr=true"])], "lr"),
        (["--set", rng.choice(["epochs=true", "epochs=1.5", "epochs=[1]"])], "epochs"),
        (["--set", rng.choice(["dropout=2", "dropout=.nan", "dropout=null"])], "dropout"),
        (
            ["--set", rng.choice(["time_limit_s=abc", "time_limit_s=-1", "time_limit_s=.inf"])],
            "time_limit_s",
        ),  # noqa: E501
        (["--set", rng.choice(["colour=blue", "=3", "lr", "nhid=1e100"])], "set|nhid"),
        (["--genotype", rng.choice(["garbage", "", "relu0" * 3000, "DARTS_V9"])], ""),
        (["--preset", "huge"], "preset"),
        (["--device", rng.choice(["cuda:99", "tpu", "cpu:x"])], "device"),
        (["--space", rng.choice(["nope", "../x"])], ""),
        (["--data", str(folder / "missing")], "missing"),
    ]
    extra, names = rng.choice(choices)
    return Case([*args, "--no-test", *extra], "refuse", names or None)


def cat_data_fetch(sb: Sandbox, rng: random.Random, folder: Path) -> Case:
    """data fetch ptb from a crafted source."""
    dest = folder / "ptb"
    kind = rng.choice(
        ["valid", "bomb", "tar_big", "traversal", "tar_link", "not_archive", "missing", "cut"]
        + ["altered", "folder_missing", "empty_zip"]
    )
    expect = "refuse"
    ptb = sb.templates["ptb"]
    if kind == "valid":
        source, expect = ptb, "accept"
    elif kind == "bomb":
        source = sb.templates["ptb_bomb"]
    elif kind == "tar_big":
        source = folder / "ptb.tar"
        with tarfile.open(source, "w") as tf:
            info = tarfile.TarInfo("data/ptb.valid.txt")
            info.size = 50_000_000
            tf.addfile(info, io.BytesIO(b"\0" * info.size))
    elif kind == "traversal":
        source = _zip(folder / "ptb.zip", {"../../outside/somefile": b"x", "ptb.test.txt": b"y"})
    elif kind == "tar_link":
        source = folder / "ptb.tar"
        with tarfile.open(source, "w") as tf:
            info = tarfile.TarInfo("ptb.valid.txt")
            info.type, info.linkname = tarfile.SYMTYPE, str(sb.outside / "somefile")
            tf.addfile(info)
    elif kind == "not_archive":
        source = folder / "ptb.zip"
        source.write_bytes(rng.randbytes(4000))
    elif kind == "missing":
        source = folder / "nothing-here"
    elif kind == "cut":
        data = sb.templates["ptb_zip"].read_bytes()
        source = folder / "ptb.zip"
        source.write_bytes(data[: rng.randrange(len(data))])
    elif kind == "altered":
        source = folder / "ptbdir"
        shutil.copytree(ptb, source)
        with (source / "ptb.test.txt").open("r+b") as fh:
            fh.seek(rng.randrange(400_000))
            fh.write(b"#")
    elif kind == "folder_missing":
        source = folder / "ptbdir"
        source.mkdir()
        shutil.copyfile(ptb / "ptb.test.txt", source / "ptb.test.txt")
    else:
        source = _zip(folder / "ptb.zip", {})
    return Case(["data", "fetch", "ptb", "--source", str(source), "--dest", str(dest)], expect)


CATEGORIES: dict[str, Callable[[Sandbox, random.Random, Path], Case]] = {
    "config: mutated examples (run --check)": cat_mutated_examples,
    "config: nonsense values (run --check)": cat_nonsense_check,
    "config: nonsense values (run)": cat_nonsense_run,
    "config: YAML tags (run --check)": cat_yaml_tags,
    "config: valid small runs (run)": cat_valid_run,
    "tables (run --check)": cat_tables,
    "NAS-Bench-NLP archives (run --check)": cat_nbnlp_archives,
    "run directories and checkpoints (resume)": cat_resume,
    "run directories and arguments (show)": cat_show,
    "run directories and arguments (export)": cat_export,
    "configs (compare predict)": cat_compare_predict,
    "configs (compare search)": cat_compare_search,
    "arguments (train)": cat_train,
    "archives and folders (data fetch)": cat_data_fetch,
}
#: how often each category is drawn (the slow ones less)
WEIGHTS = {
    "config: mutated examples (run --check)": 4,
    "config: nonsense values (run --check)": 3,
    "config: nonsense values (run)": 2,
    "config: YAML tags (run --check)": 1,
    "config: valid small runs (run)": 1,
    "tables (run --check)": 2,
    "NAS-Bench-NLP archives (run --check)": 1,
    "run directories and checkpoints (resume)": 3,
    "run directories and arguments (show)": 2,
    "run directories and arguments (export)": 2,
    "configs (compare predict)": 1,
    "configs (compare search)": 1,
    "arguments (train)": 1,
    "archives and folders (data fetch)": 1,
}


# -- templates -----------------------------------------------------------------------------------
def make_templates(sb: Sandbox) -> None:
    """The run directories, logs and datasets the cases start from (made once)."""
    from evo_nas.search.launch import run_search, start_run

    shutil.copytree(EXAMPLES, sb.root / "examples")
    shutil.copyfile(EXAMPLES / "table_demo.csv", sb.root / "table_demo.csv")
    sb.outside.mkdir()
    (sb.root / "cache").mkdir()
    (sb.outside / "somefile").write_text("must never change\n")
    base = sb.root / "templates"
    cfg = base_config(sb.root / "table_demo.csv", "finished")
    cfg["output_dir"] = str(base)
    cfg["budget"]["evaluations"] = 10
    run_search(cfg, progress=False)
    sb.templates["finished"] = base / "finished"

    class Stop(Exception):
        pass

    engine, rd = start_run({**cfg, "name": "killed"}, progress=False)
    record = engine.cache.on_record

    def stop_at_six(r: dict[str, Any]) -> None:
        record(r)
        if r["index"] == 6:
            raise Stop

    engine.cache.on_record = stop_at_six
    try:
        engine.run()
    except Stop:
        pass
    sb.templates["killed"] = rd.path

    logs = base / "nbnlp_logs"
    logs.mkdir()
    source = Path(os.environ.get("EVO_NAS_DATA", "")) / "nasbench-nlp" / "ptb_single_run_dev.zip"
    with zipfile.ZipFile(source) as z:
        for name in z.namelist()[:200]:
            if name.endswith(".json"):
                (logs / Path(name).name).write_bytes(z.read(name))
    sb.templates["nbnlp_logs"] = logs
    sb.templates["bomb_zip"] = _zip_bomb(base / "bomb.zip", "a.json", 400_000_000)
    ptb = Path(os.environ.get("EVO_NAS_DATA", "")) / "ptb"
    sb.templates["ptb"] = ptb
    sb.templates["ptb_bomb"] = _zip_bomb(base / "ptb_bomb.zip", "ptb.valid.txt", 1 << 30)
    with zipfile.ZipFile(base / "ptb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"):
            z.write(ptb / name, name)
    sb.templates["ptb_zip"] = base / "ptb.zip"


# -- running -------------------------------------------------------------------------------------
def _outcome(result: Any) -> tuple[str, str]:
    """('accepted'|'refused'|'broken', the refusal line or what broke)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        e = result.exception
        return "broken", f"traceback: {type(e).__name__}: {str(e)[:300]}"
    if result.exit_code == 0:
        return "accepted", ""
    lines = [ln for ln in result.output.strip().splitlines() if not ln.startswith("warning: ")]
    if result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "refused", lines[0]
    return "broken", f"exit {result.exit_code}: {result.output[-600:]!r}"


def _names(line: str, names: str) -> bool:
    """Whether a refusal names one of ``names`` (alternatives split by ``|``)."""
    return any(n in line for n in names.split("|"))


def _invoke(args: list[str], limit_s: float) -> Any:
    with fuzz_configs.time_limit(limit_s):
        return CliRunner().invoke(main, args)


def run_case(sb: Sandbox, case: Case, folder: Path, limit_s: float) -> tuple[str, str | None]:
    """(outcome, failure or None) of one case, run with ``folder`` as the current directory."""
    before = (_digest(sb.outside), _digest(sb.work, skip=folder), sorted(os.listdir(sb.root)))
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        try:
            result = _invoke(case.args, limit_s)
        except fuzz_configs.Hang as e:
            return "hang", f"hang: {e}"
        outcome, detail = _outcome(result)
        failure = None
        if outcome == "broken":
            failure = detail
        elif outcome == "accepted" and case.expect == "refuse":
            failure = f"accepted nonsense (expected a refusal naming {case.names!r})"
        elif outcome == "refused" and case.expect == "accept":
            failure = f"refused a valid input: {detail}"
        elif outcome == "refused" and case.names and not _names(detail, case.names):
            failure = f"the refusal does not name {case.names!r}: {detail[:300]}"
        elif outcome == "refused" and len(detail) > 600:
            failure = f"a refusal of {len(detail)} characters"
        if failure is None and case.agree_with_check:
            try:
                check = _outcome(_invoke([case.args[0], case.args[1], "--check"], limit_s))[0]
            except fuzz_configs.Hang:
                check = "hang"
            if check != outcome:
                failure = f"run {outcome}, run --check {check}"
    finally:
        os.chdir(cwd)
    after = (_digest(sb.outside), _digest(sb.work, skip=folder), sorted(os.listdir(sb.root)))
    if after != before:
        failure = (failure + "; " if failure else "") + "wrote outside its folder"
    if outcome == "accepted" and case.expect == "refuse" and failure is None:
        failure = "accepted nonsense"
    return outcome, failure


def fuzz(
    cases: int, seed: int, limit_s: float = 60.0, first: int = 0
) -> tuple[dict[str, Counter], list[str]]:
    """Run cases ``first`` to ``first + cases - 1`` of ``seed`` (a failure names its case, so
    that ``--case`` replays it alone); (per category: outcome counts, failure descriptions)."""
    counts: dict[str, Counter] = {name: Counter() for name in CATEGORIES}
    failures: list[str] = []
    names = list(CATEGORIES)
    weights = [WEIGHTS[n] for n in names]
    saved = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME",)}
    with tempfile.TemporaryDirectory(prefix="evo-nas-fuzz-") as tmp:
        sb = Sandbox(Path(tmp))
        os.environ["XDG_CACHE_HOME"] = str(sb.root / "cache")  # no user cache touched
        try:
            make_templates(sb)
            for i in range(first, first + cases):
                rng = random.Random(f"{seed}:{i}")
                name = names[i % len(names)] if i < len(names) else rng.choices(names, weights)[0]
                folder = sb.folder()
                case = CATEGORIES[name](sb, rng, folder)
                outcome, failure = run_case(sb, case, folder, limit_s)
                counts[name][outcome] += 1
                counts[name][f"expected {case.expect}"] += 1
                if failure is not None:
                    counts[name]["failed"] += 1
                    failures.append(f"seed {seed} case {i} [{name}] {case.args!r}: {failure}")
                shutil.rmtree(folder, ignore_errors=True)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return counts, failures


def report(counts: dict[str, Counter]) -> str:
    """The counts per category as a table."""
    cols = ["accepted", "refused", "failed", "hang", "expected refuse"]
    rows = [f"| category | cases | {' | '.join(cols)} |", "|---" * (len(cols) + 2) + "|"]
    total: Counter = Counter()
    for name, c in counts.items():
        n = c["accepted"] + c["refused"] + c["broken"] + c["hang"]
        total.update(c)
        total["cases"] += n
        rows.append(f"| {name} | {n} | {' | '.join(str(c[k]) for k in cols)} |")
    rows.append(f"| all | {total['cases']} | {' | '.join(str(total[k]) for k in cols)} |")
    return "\n".join(rows)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit-s", type=float, default=60.0, help="per case, else a hang")
    parser.add_argument("--case", type=int, default=None, help="replay this case alone")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.case is not None:
        counts, failures = fuzz(1, args.seed, args.limit_s, first=args.case)
    else:
        counts, failures = fuzz(args.cases, args.seed, args.limit_s)
    for line in failures:
        print("FAILED", line)
    print(report(counts))
    print(f"{args.cases} cases (seed {args.seed}) in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main_()
