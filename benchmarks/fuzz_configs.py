"""Fuzz the front door: random mutations of the example configs never give a traceback or a hang.

Each case mutates one of ``examples/*.yaml`` (values, types, deleted and unknown keys, deep
nesting, aliases, duplicate keys, encodings, cut or flipped bytes) and hands the file to what
the user would run: ``evo-nas run --check`` for a search config (validate, build every
component, write nothing), and the config loaders of ``evo-nas compare predict``/``search``.
The outcome must be acceptance, or one ``error:`` line with exit status 2; anything else
(an exception, several lines, another status, a case running past ``--limit-s``) is a
failure, printed with the case's seed so that it can be replayed. ``tests/test_fuzz_configs.py``
runs a few hundred cases with a fixed seed; run more here::

    python benchmarks/fuzz_configs.py --cases 3000 --seed 1
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

import evo_nas

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: search configs (checked with `run --check`) and comparison configs (their loaders)
SEARCH = ["table_demo.yaml", "quickstart.yaml", "nbnlp_search.yaml", "sigmoid_slope.yaml"]
COMPARE = {
    "compare_nbnlp.yaml": evo_nas.load_predict_config,
    "compare_search_nbnlp.yaml": evo_nas.load_search_compare,
}

VALUES: list[Any] = [
    *(0, -1, 1, 2, 7, 2**31, 2**32, 2**63, 2**64 + 3, -(2**63), 10**11, -(10**11)),
    *(0.0, -0.5, 0.5, 1e11, -1e11, 1e-300, 1e308, math.inf, -math.inf, math.nan),
    *("", "x", "none", "nan", "-inf", "1e11", "../..", "/", "DARTS_V2", "\u00e9\u4e2d", "a" * 300),
    *(True, False, None, [], [1, "a", None], {}, {"a": 1}, {"name": "x"}, [[[]]]),
]


# -- mutations of the parsed document -----------------------------------------------------------
def _nodes(doc: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def _parent(doc: Any, path: tuple) -> tuple[Any, Any]:
    for k in path[:-1]:
        doc = doc[k]
    return doc, path[-1]


def _replace(doc: Any, rng: random.Random, value: Any) -> Any:
    paths = [p for p, _ in _nodes(doc) if p]
    if not paths:
        return value
    parent, key = _parent(doc, rng.choice(paths))
    parent[key] = value
    return doc


def _value(doc: Any, rng: random.Random) -> Any:
    return _replace(doc, rng, copy.deepcopy(rng.choice(VALUES)))


def _delete(doc: Any, rng: random.Random) -> Any:
    paths = [p for p, _ in _nodes(doc) if p]
    if paths:
        parent, key = _parent(doc, rng.choice(paths))
        del parent[key]
    return doc


def _add(doc: Any, rng: random.Random) -> Any:
    maps = [n for _, n in _nodes(doc) if isinstance(n, dict)]
    if maps:
        rng.choice(maps)[rng.choice(["colour", "seed", "name", "options", "1", "$x"])] = rng.choice(
            VALUES
        )
    return doc


def _nest(doc: Any, rng: random.Random) -> Any:
    paths = [p for p, _ in _nodes(doc) if p]
    if not paths:
        return doc
    parent, key = _parent(doc, rng.choice(paths))
    value = parent[key]
    for _ in range(rng.choice([1, 2, 5, 49, 60, 300])):
        value = [value] if rng.random() < 0.5 else {"k": value}
    parent[key] = value
    return doc


def _swap_section(doc: Any, rng: random.Random) -> Any:
    return _replace(doc, rng, rng.choice([[], "", 3, None, {"name": "table"}, [{"a": 1}]]))


DOC_MUTATIONS: list[Callable[[Any, random.Random], Any]] = [
    _value,
    _value,
    _value,
    _delete,
    _add,
    _nest,
    _swap_section,
]


# -- mutations of the text and bytes --------------------------------------------------------------
def _duplicate_line(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    return "".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])


def _alias_bomb(text: str, rng: random.Random) -> str:
    bomb = "zz0: &zz0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"zz{i}: &zz{i} [{', '.join([f'*zz{i - 1}'] * 10)}]\n" for i in range(1, rng.randint(2, 9))
    )
    return bomb + text


def _syntax(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    return (
        text[:i]
        + rng.choice(["[", "{", "\t", ": ", "&a ", "*b ", "!!python/name:os.system ", "'"])
        + text[i:]
    )


TEXT_MUTATIONS = [_duplicate_line, _alias_bomb, _syntax]


def _encode(text: str, rng: random.Random) -> bytes:
    kind = rng.choice(["utf-8", "utf-8", "utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1"])
    if kind == "latin-1":
        return (text + "# caf\u00e9\n").encode("latin-1", "replace")
    return text.encode(kind)


def _damage(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(["cut", "flip", "insert", "binary"])
    if kind == "cut":
        return data[: rng.randrange(len(data) + 1)]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == "insert":
        i = rng.randrange(len(data) + 1)
        return data[:i] + rng.randbytes(rng.randint(1, 16)) + data[i:]
    return rng.randbytes(rng.randint(0, 2000))


def mutate(example: str, rng: random.Random) -> bytes:
    """One random mutation (one to three changes) of an example config, as file bytes."""
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    for _ in range(rng.randint(1, 3)):
        doc = rng.choice(DOC_MUTATIONS)(doc, rng)
    try:
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    except RecursionError:  # nested past what the dumper takes: write the flow form by hand
        text = repr(doc).replace("'", '"').replace("None", "null")
    if rng.random() < 0.25:
        text = rng.choice(TEXT_MUTATIONS)(text, rng)
    data = _encode(text, rng) if rng.random() < 0.2 else text.encode()
    if rng.random() < 0.1:
        data = _damage(data, rng)
    return data


# -- running a case -------------------------------------------------------------------------------
class Hang(BaseException):
    """A case ran past its time limit (not an Exception, so that nothing catches it)."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the block after ``seconds`` (SIGALRM; main thread only)."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _one_line_error(output: str) -> bool:
    lines = [ln for ln in output.strip().splitlines() if not ln.startswith("warning: ")]
    return len(lines) == 1 and lines[0].startswith("error: ")


def run_case(example: str, data: bytes, folder: Path) -> str:
    """'accepted' or 'refused'; raises AssertionError (or Hang) describing a failure."""
    path = folder / example  # beside copies of the examples' data, as relative paths expect
    path.write_bytes(data)
    if example in COMPARE:
        try:
            COMPARE[example](path)
        except evo_nas.ConfigError as e:
            message = str(e)
            assert message and "\n" not in message, f"refusal of {len(message)} chars/lines"
            return "refused"
        return "accepted"
    result = CliRunner().invoke(evo_nas.main, ["run", str(path), "--check"])
    if result.exit_code == 0:
        return "accepted"
    if result.exit_code == 2 and _one_line_error(result.output):
        return "refused"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{type(result.exception).__name__}: {result.exception}")
    raise AssertionError(f"exit status {result.exit_code}: {result.output[:500]!r}")


def fuzz(cases: int, seed: int, limit_s: float = 20.0) -> tuple[Counter, list[str]]:
    """Run ``cases`` mutated configs; (outcome counts, failure descriptions)."""
    counts: Counter = Counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "examples"
        shutil.copytree(EXAMPLES, folder)
        saved_cache = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(Path(tmp) / "cache")  # no user cache touched
        try:
            names = SEARCH + list(COMPARE)
            for case in range(cases):
                rng = random.Random(f"{seed}:{case}")
                example = rng.choice(names)
                data = mutate(example, rng)
                try:
                    with time_limit(limit_s):
                        counts[run_case(example, data, folder)] += 1
                except (AssertionError, Hang) as e:
                    counts["failed"] += 1
                    failures.append(f"seed {seed} case {case} ({example}): {e}")
        finally:
            if saved_cache is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = saved_cache
    return counts, failures


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-s", type=float, default=20.0, help="per case, else a hang")
    args = parser.parse_args()
    start = time.perf_counter()
    counts, failures = fuzz(args.cases, args.seed, args.limit_s)
    took = time.perf_counter() - start
    for line in failures:
        print("FAILED", line)
    print(
        f"{args.cases} cases (seed {args.seed}) in {took:.1f} s: "
        f"{counts['accepted']} accepted, {counts['refused']} refused in one line, "
        f"{counts['failed']} failed"
    )


if __name__ == "__main__":
    main_()
