"""The darts_rnn space: parsing, errors, keys, mutation, tokens and the cell's numerics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import GenotypeError, get_space
from search_spaces.darts_ops import ACTIVATIONS
from search_spaces.recurrent_weight import RecurrentWeight

V2 = "sigmoid0 relu1 relu1 identity1 tanh2 sigmoid5 tanh3 relu5"


@pytest.fixture(scope="module")
def space():
    return get_space("darts_rnn")


def test_named_genotypes_are_the_published_cells(space):
    assert space.to_json(space.validate("DARTS_V2")) == V2
    assert space.to_json(space.validate("DARTS_V1")) == (
        "relu0 relu1 tanh2 relu3 relu4 identity1 relu5 relu1"
    )
    assert set(space.named()) == {"DARTS_V1", "DARTS_V2"}
    # the same cell written as pairs, as a dict, or as a list of strings
    pairs = [[a, p] for a, p in space.validate(V2)]
    assert space.validate(pairs) == space.validate({"nodes": V2.split()}) == space.validate(V2)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("sigmoid0 relu1 relu5 identity1 tanh2 sigmoid5 tanh3 relu5", "node 3: predecessor 5"),
        ("sigmoid0 relu1 relu1 swish1 tanh2 sigmoid5 tanh3 relu5", "node 4: unknown activation"),
        ("sigmoid0 relu1 relu1", "wrong length: 3 nodes"),
        ("sigmoid0 relu1 relu1 identity1 tanh2 sigmoid5 tanh3 relu-1", "node 8: cannot read"),
        ([["relu", 0], ["relu", "one"]] + [["relu", 1]] * 6, "node 2: expected"),
        (42, "expected a string or a list"),
    ],
)
def test_malformed_genotypes_name_the_node(space, bad, message):
    with pytest.raises(GenotypeError) as err:
        space.validate(bad)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_and_token_round_trips(space):
    rng = np.random.default_rng(0)
    for _ in range(200):
        g = space.sample(rng)
        assert space.from_json(space.to_json(g)) == g
        assert space.from_tokens(space.tokens(g)) == g
        assert all(t in space.vocabulary() for t in space.tokens(g))
        for seq in space.equivalent_tokens(g):
            assert space.key(space.from_tokens(seq)) == space.key(g)


def test_key_is_canonical_under_renumbering(space):
    # node 2 and node 3 hang off node 1 in swapped order: the same tree, the same function
    a = space.validate("tanh0 relu1 sigmoid1 identity2 tanh0 tanh0 tanh0 tanh0")
    b = space.validate("tanh0 sigmoid1 relu1 identity3 tanh0 tanh0 tanh0 tanh0")
    c = space.validate("tanh0 sigmoid1 relu1 identity2 tanh0 tanh0 tanh0 tanh0")
    assert a != b and space.key(a) == space.key(b)
    assert space.key(a) != space.key(c)  # identity now follows sigmoid: a different cell


def test_ten_thousand_mutations_stay_valid_and_change_the_cell(space):
    rng = np.random.default_rng(1)
    g = space.validate("DARTS_V2")
    for _ in range(10_000):
        child = space.mutate(g, rng)
        assert space.validate(space.to_json(child)) == child
        assert space.key(child) != space.key(g)
        diff = sum(x != y for x, y in zip(child, g))
        assert diff == 1  # one node's activation or predecessor
        g = child


def _reference_step(cell, genotype, x, h, mask):
    """One step computed node by node, as DARTS wrote it (``mask``: hidden dropout)."""
    hsz = cell.hidden_size
    c0, h0 = (torch.cat([x, h * mask], -1) @ cell.w0).split(hsz, -1)
    states = [h + torch.sigmoid(c0) * (torch.tanh(h0) - h)]
    for i, (act, pred) in enumerate(genotype):
        c, hh = (states[pred] * mask @ cell.ws[i]).split(hsz, -1)
        s = states[pred]
        states.append(s + torch.sigmoid(c) * (ACTIVATIONS[act](hh) - s))
    return torch.stack([states[i] for i in cell.outputs]).mean(0)


@pytest.mark.parametrize("output", ["all", "loose_ends"])
def test_cell_matches_node_by_node_reference(output):
    space = get_space("darts_rnn", output=output)
    g = space.validate("DARTS_V2")
    torch.manual_seed(0)
    cell = space.build_cell(g, 6, 10).double()
    x = torch.randn(7, 3, 6, dtype=torch.float64)
    mask = (torch.rand(3, 10) > 0.3).double() / 0.7
    out, (h_last,) = cell(x, cell.init_state(3), mask)
    h = torch.zeros(3, 10, dtype=torch.float64)
    ref = []
    for t in range(7):
        h = _reference_step(cell, g, x[t], h, mask)
        ref.append(h)
        torch.testing.assert_close(out[t], h)
    torch.testing.assert_close(h_last, h)
    # gradients (the cell forms its recurrent weights' gradients in one product) match plain
    # autograd through the reference
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), (cell.w0, cell.ws))
    expected = torch.autograd.grad((torch.stack(ref) * weights).sum(), (cell.w0, cell.ws))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_recurrent_weight_gives_plain_autograd_gradients_of_every_order():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    h0 = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)

    def loss(custom: bool) -> torch.Tensor:
        step = RecurrentWeight(w * 1.0) if custom else (lambda z: z @ (w * 1.0))
        h = h0
        for _ in range(5):
            h = torch.tanh(step(h))
        return h.pow(2).sum()

    firsts = [torch.autograd.grad(loss(c), (w, h0), create_graph=True) for c in (True, False)]
    for got, want in zip(*firsts, strict=True):
        torch.testing.assert_close(got, want)
    seconds = [torch.autograd.grad(f[0].sum(), h0)[0] for f in firsts]
    torch.testing.assert_close(seconds[0], seconds[1])
    assert torch.autograd.gradcheck(lambda a, b: RecurrentWeight(b)(a), (h0, w))


def test_loose_ends_are_the_leaves():
    space = get_space("darts_rnn", output="loose_ends")
    g = space.validate("DARTS_V1")  # relu0 relu1 tanh2 relu3 relu4 identity1 relu5 relu1
    assert space.output_nodes(g) == [6, 7, 8]


def test_space_options_are_checked():
    with pytest.raises(GenotypeError, match="activations"):
        get_space("darts_rnn", activations=("tanh", "swish"))
    small = get_space("darts_rnn", nodes=3)
    assert small.named() == {}
    with pytest.raises(GenotypeError, match="8 nodes"):
        small.validate("DARTS_V2")
