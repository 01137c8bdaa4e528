"""A fixed-seed subset of benchmarks/fuzz_commands.py: every command, fed configs, tables,
run-directory files, checkpoints, archives and arguments a hostile user would write, ends
without a traceback or a hang, refuses nonsense in one line naming the key or file, and
writes nothing outside its folder (the benchmark runs 1,000+ cases and prints the counts)."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import fuzz_commands  # noqa: E402


def test_every_command_refuses_hostile_inputs_in_one_line(data_root):
    n = 2 * len(fuzz_commands.CATEGORIES)  # the first pass visits each category in turn
    counts, failures = fuzz_commands.fuzz(cases=n, seed=0, limit_s=60.0)
    assert not failures, "\n".join(failures)
    for name, c in counts.items():
        assert c["accepted"] + c["refused"] >= 1, name
    assert sum(c["expected refuse"] for c in counts.values()) >= n // 2
