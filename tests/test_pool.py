"""Pool mode: sampling and nearest-neighbour mutation within a fixed set of cells."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.distance import cdist

from search_spaces import get_space
from search_spaces.pool import PoolSpace


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "evo-nas"


@pytest.fixture(scope="module")
def darts():
    return get_space("darts_rnn", nodes=4)


@pytest.fixture(scope="module")
def members(darts):
    rng = np.random.default_rng(0)
    cells = [darts.sample(rng) for _ in range(400)]
    return cells + cells[:50]  # repeats are dropped by key


def _standardised(space, cells):
    f = np.stack([space.features(g) for g in cells])
    std = f.std(0)
    return (f - f.mean(0)) / np.where(std > 0, std, 1.0)


def test_neighbours_are_the_nearest_other_members(darts, members):
    pool = PoolSpace(darts, members, neighbours=7)
    assert len(pool.members) == len({darts.key(g) for g in members})
    f = _standardised(darts, pool.members)
    d = cdist(f, f)
    np.fill_diagonal(d, np.inf)
    for i, g in enumerate(pool.members):
        got = [pool.members.index(h) for h in pool.neighbours_of(g)]
        assert i not in got and len(got) == 7
        # the 7 chosen are at most as far as any member left out (ties may go either way)
        worst = d[i, got].max()
        left_out = np.delete(d[i], got + [i])
        assert np.all(left_out >= worst - 1e-9)
        assert np.all(np.diff(d[i, got]) >= -1e-9)  # nearest first


def test_sample_and_mutate_stay_in_the_pool(darts, members):
    pool = PoolSpace(darts, members, neighbours=5)
    keys = {darts.key(g) for g in pool.members}
    rng = np.random.default_rng(1)
    g = pool.sample(rng)
    for _ in range(2000):
        child = pool.mutate(g, rng)
        assert darts.key(child) in keys and darts.key(child) != darts.key(g)
        assert child in pool.neighbours_of(g)
        g = child
    # picks are spread over the neighbours, so re-calling mutate finds unseen children
    parent = pool.members[0]
    children = {darts.key(pool.mutate(parent, rng)) for _ in range(200)}
    assert len(children) == 5


def test_non_members_map_to_their_nearest_member(darts, members):
    pool = PoolSpace(darts, members[:100], neighbours=4)
    keys = {darts.key(g) for g in pool.members}
    rng = np.random.default_rng(2)
    outsider = next(g for g in (darts.sample(rng) for _ in range(1000)) if darts.key(g) not in keys)
    f = _standardised(darts, pool.members)
    mean = np.stack([darts.features(g) for g in pool.members]).mean(0)
    std = np.stack([darts.features(g) for g in pool.members]).std(0)
    x = (darts.features(outsider) - mean) / np.where(std > 0, std, 1.0)
    nearest = pool.members[pool.nearest(outsider)]
    assert np.isclose(
        ((f - x) ** 2).sum(1).min(), ((f[pool.members.index(nearest)] - x) ** 2).sum()
    )
    allowed = {darts.key(nearest)} | {darts.key(h) for h in pool.neighbours_of(nearest)}
    for _ in range(100):
        assert darts.key(pool.mutate(outsider, rng)) in allowed


def test_delegates_to_the_base_space(darts, members):
    pool = PoolSpace(darts, members[:30], neighbours=3)
    g = members[0]
    assert pool.name == darts.name
    assert pool.key(g) == darts.key(g)
    assert pool.validate(darts.to_json(g)) == g
    assert pool.tokens(g) == darts.tokens(g) and pool.vocabulary() == darts.vocabulary()
    assert pool.from_tokens(darts.tokens(g)) == g
    assert pool.output_nodes(g) == darts.output_nodes(g)  # a space-specific extra
    assert pool.build_cell(g, 3, 4).hidden_size == 4
    assert pool.graph(g) == darts.graph(g)


def test_neighbour_table_is_cached_by_the_members_keys(darts, members, private_cache, monkeypatch):
    first = PoolSpace(darts, members, neighbours=6)
    files = list(private_cache.glob("pool-*.npy"))
    assert len(files) == 1
    with monkeypatch.context() as m:
        m.setattr(PoolSpace, "_compute", lambda self: pytest.fail("cache not used"))
        again = PoolSpace(darts, members[:400], neighbours=6)  # same cells: same file
    assert np.array_equal(again._table, first._table)
    PoolSpace(darts, members[:200], neighbours=6)  # other members: another file
    assert len(list(private_cache.glob("pool-*.npy"))) == 2
    PoolSpace(darts, members[:100], neighbours=6, cache=False)
    assert len(list(private_cache.glob("pool-*.npy"))) == 2


def test_bad_options(darts, members):
    with pytest.raises(ValueError, match="neighbours must be at least 1"):
        PoolSpace(darts, members, neighbours=0)
    with pytest.raises(ValueError, match="at least 2 distinct cells"):
        PoolSpace(darts, [members[0], members[0]])
    small = PoolSpace(darts, members[:4], neighbours=20)
    assert small.neighbours == 3


def test_space_features_override_the_token_counts():
    space = get_space("nasbench_nlp")
    rng = np.random.default_rng(3)
    cells = [space.sample(rng) for _ in range(300)]
    pool = PoolSpace(space, cells, neighbours=10)
    # nasbench_nlp's features are op/edge counts, not the tokens' bag
    assert len(space.features(cells[0])) != len(space.vocabulary())
    for g in cells[:20]:
        child = pool.mutate(g, rng)
        assert child in pool.neighbours_of(g) and space.key(child) != space.key(g)


def test_example_search_stays_in_the_table(data_root, tmp_path, monkeypatch):
    """examples/nbnlp_search.yaml through the engine: every query is a logged cell."""
    from evo_nas.search.launch import run_search

    monkeypatch.setenv("EVO_NAS_DATA", str(data_root))
    example = Path(__file__).resolve().parents[1] / "examples" / "nbnlp_search.yaml"
    cfg = yaml.safe_load(example.read_text())
    assert "path" not in cfg["ground_truth"]["options"]  # the default comes from EVO_NAS_DATA
    assert cfg["search"]["pool"] and cfg["budget"]["evaluations"] == 100 and cfg["seed"] == 0
    cfg["output_dir"] = str(tmp_path / "runs")
    cfg["budget"]["evaluations"] = 40
    best = run_search(cfg, progress=False, base_dir=example.parent)
    with (tmp_path / "runs" / cfg["name"] / "evaluations.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 and len({r["key"] for r in rows}) == 40
    assert {r["status"] for r in rows} <= {"ok", "diverged"}  # never "not in the table"
    assert best["objective"] == min(float(r["objective"]) for r in rows) < 200
