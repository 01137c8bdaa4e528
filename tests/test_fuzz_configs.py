"""A few hundred random mutations of the example configs (types, values, encodings, nesting)
are each accepted or refused in one line: never a traceback, never a hang
(benchmarks/fuzz_configs.py runs more cases and prints the counts)."""

from __future__ import annotations

import random
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz_configs  # noqa: E402


def test_mutated_example_configs_are_accepted_or_refused_in_one_line(data_root):
    counts, failures = fuzz_configs.fuzz(cases=250, seed=0, limit_s=20.0)
    assert not failures, "\n".join(failures)
    assert counts["accepted"] + counts["refused"] == 250
    assert counts["accepted"] >= 10 and counts["refused"] >= 100  # both paths exercised


def test_the_mutations_cover_every_kind():
    """The generator does produce what the fuzz claims to try (so a pass means something)."""
    seen = set()
    for case in range(400):
        rng = random.Random(f"0:{case}")
        data = fuzz_configs.mutate(rng.choice(fuzz_configs.SEARCH), rng)
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            seen.add("utf-16/32 with a byte-order mark")
        if b"\x00" in data:
            seen.add("nul bytes")
        if b"&zz0" in data:
            seen.add("aliases")
        if data.count(b"- - - - - - - - - -") or data.count(b"k:\n" + b" " * 40):
            seen.add("deep nesting")
        try:
            data.decode()
        except UnicodeDecodeError:
            seen.add("not UTF-8")
    assert seen == {
        "utf-16/32 with a byte-order mark",
        "nul bytes",
        "aliases",
        "deep nesting",
        "not UTF-8",
    }
