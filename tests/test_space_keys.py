"""Keys read back: every space turns the key its reports print into the same cell, so a key
copied from `show`, `export` or the dashboard can be trained or searched from again."""

from __future__ import annotations

import numpy as np
import pytest

from search_spaces import SPACES, GenotypeError, get_space
from search_spaces.pool import PoolSpace


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _spaces():
    spaces = [get_space(name) for name in SPACES.names()]
    spaces.append(get_space("darts_rnn", nodes=3, output="loose_ends"))
    spaces.append(get_space("nasbench_nlp", hidden_states=3, intermediate=12))
    return spaces


@pytest.mark.parametrize("space", _spaces(), ids=lambda s: f"{s.name}{s.identity()[1]}")
def test_every_space_reads_its_keys_back(space) -> None:
    rng = np.random.default_rng(0)
    cells = [space.sample(rng) for _ in range(150)]
    cells += [space.mutate(g, rng) for g in cells[:50]] + list(space.named().values())
    for g in cells:
        key = space.key(g)
        back = space.from_key(key)
        assert space.key(back) == key
        assert space.key(space.validate(key)) == key  # what `train --genotype` calls
        assert space.key(space.validate(space.to_json(back))) == key
        assert space.from_key(f"  {key}\n") == back  # pasted with the spaces around it
    assert {"darts_rnn", "nasbench_nlp", "sigmoid_slope"} <= set(SPACES.names())


def test_a_pool_reads_keys_as_its_base_space() -> None:
    base = get_space("darts_rnn", nodes=4)
    rng = np.random.default_rng(1)
    pool = PoolSpace(base, [base.sample(rng) for _ in range(30)], neighbours=3)
    for g in pool.members:
        assert pool.key(pool.from_key(pool.key(g))) == base.key(g)


def test_a_darts_key_is_the_tree_and_any_order_of_children_reads_the_same() -> None:
    space = get_space("darts_rnn", nodes=3)
    g = space.from_key("x(relu(tanh()),sigmoid())")
    assert g == (("relu", 0), ("tanh", 1), ("sigmoid", 0))
    assert space.key(g) == "x(relu(tanh()),sigmoid())"
    assert space.key(space.from_key(" x( sigmoid() , relu( tanh() ) ) ")) == space.key(g)


@pytest.mark.parametrize(
    "key, message",
    [
        ("y(relu())", "must start with 'x('"),
        ("x(relu(),tanh()", "ends before its last ')'"),
        ("x(relu()tanh(),sigmoid())", "cannot read 'tanh(),sigmoid())' at char 8"),
        ("x(relu(),,tanh(),sigmoid())", "cannot read ',tanh()"),
        ("x(relu(),tanh(),sigmoid()))", "cannot read ')' at char 26"),
        ("x(relu(),tanh(),swish())", "node 3: unknown activation 'swish'"),
        ("x(relu(),tanh())", "wrong length: 2 nodes given, the space has 3"),
    ],
)
def test_a_bad_darts_key_is_refused_in_one_line(key, message) -> None:
    with pytest.raises(GenotypeError) as e:
        get_space("darts_rnn", nodes=3).from_key(key)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "key, message",
    [
        ("h_new_0=linear(x,h_prev_0", "part 1 'h_new_0=linear(x,h_prev_0' is not name=op"),
        ("n0=linear(x,h_prev_0);h_new_0=nope(n0)", "node 'h_new_0': unknown op 'nope'"),
        ("n0=linear(x,h_prev_0)", "missing output node 'h_new_0'"),
        ("h_new_0=activation_tanh(n1);n0=linear(x,h_prev_0)", "input 'n1' is not defined"),
        ("h_new_0=activation_tanh(n0);n0=activation_tanh(h_new_0)", "cycle"),
    ],
)
def test_a_bad_nasbench_key_is_refused_in_one_line(key, message) -> None:
    with pytest.raises(GenotypeError) as e:
        get_space("nasbench_nlp").validate(key)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_nasbench_key_comes_back_in_an_order_that_computes_inputs_first() -> None:
    space = get_space("nasbench_nlp")
    g = space.from_key("h_new_0=activation_tanh(n0);n0=linear(h_prev_0,x)")
    assert [name for name, _, _ in g] == ["n0", "h_new_0"]
    small = get_space("nasbench_nlp", max_nodes=10)
    lstm = space.key(space.validate("lstm"))
    with pytest.raises(GenotypeError, match="more than max_nodes=10"):
        small.from_key(lstm)


def test_a_slope_key_is_its_rounded_value() -> None:
    space = get_space("sigmoid_slope")
    assert space.from_key("0.5000") == 0.5
    with pytest.raises(GenotypeError, match="not a key of space 'sigmoid_slope'"):
        space.from_key("0.5")  # a value `validate` takes, but not how the key writes it
