"""The batched NAS-Bench-NLP cells' hand-written backward pass against plain autograd.

``autograd_cells`` is the formulation the batched cells had before their backward pass was
written out: every op at every topological position computed for every motif and selected
by masks, values gathered from a stacked table, autograd for the gradients. The Petri
dish's records were computed with it, so the hand-written backward must give its numbers to
the bit (the dish's score of a chaotic cell moves with the last bit of a gradient).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from surrogate_helpers import motifs, petri_dish

from search_spaces import get_space
from search_spaces.nasbench_nlp_batch import NasBenchNLPCellBatch
from search_spaces.nasbench_nlp_graph import output_index, topological_order

_UNARY = {
    "activation_tanh": torch.tanh,
    "activation_sigm": torch.sigmoid,
    "activation_leaky_relu": lambda z: F.leaky_relu(z, 0.01),
}


@pytest.fixture(scope="module")
def space():
    return get_space("nasbench_nlp")


def autograd_cells(genotypes, batch: NasBenchNLPCellBatch, inputs: torch.Tensor) -> torch.Tensor:
    """``batch``'s outputs by the masked formulation, differentiable by autograd."""
    m, length = len(genotypes), batch.length
    src = torch.zeros(length, 3, m, dtype=torch.long)
    from_x, from_h = torch.zeros(m, length, 3), torch.zeros(m, length, 3)
    out_slot = torch.zeros(3, m, dtype=torch.long)
    ops = [[""] * length for _ in range(m)]
    for j, g in enumerate(genotypes):
        spec = {n: (op, ins) for n, op, ins in g}
        order = topological_order(g)
        slot = {"x": 1} | {f"h_prev_{i}": 2 + i for i in range(3)}
        slot |= {n: 5 + k for k, n in enumerate(order)}
        for k, n in enumerate(order):
            ops[j][k], ins = spec[n]
            for i, name in enumerate(ins):
                src[k, i, j] = slot[name]
                if ops[j][k] == "linear":
                    (from_x if name == "x" else from_h)[j, k, i] = 1.0
            if output_index(n) is not None:
                out_slot[output_index(n), j] = slot[n]
    w_x = (batch.w_x * from_x[..., None, None]).sum(2)
    x_parts = torch.einsum("tmbi,mlih->tmlbh", inputs, w_x) + batch.bias[:, :, None]
    w_h = (batch.w_h * from_h[..., None, None]).unbind(1)
    motif = torch.arange(m)
    zeros = inputs.new_zeros(m, inputs.size(2), batch.hidden_size)
    state, outputs = [zeros] * 3, []
    for t, x_part in enumerate(x_parts.unbind(0)):
        values, x_part = [zeros, inputs[t], *state], x_part.unbind(1)
        for k in range(length):
            table = torch.stack(values)
            arity = max(i + 1 for i in range(3) if bool((src[k, i] != 0).any()) or i == 0)
            args = [table[src[k, i], motif] for i in range(arity)]
            node = None
            for op in sorted({ops[j][k] for j in range(m)} - {""}):
                if op == "linear":
                    val = x_part[k]
                    for i, a in enumerate(args):
                        val = val + torch.bmm(a, w_h[k][:, i])
                elif op == "blend":
                    val = args[0] * args[1] + (1 - args[0]) * args[2]
                elif op == "elementwise_prod":
                    val = args[0] * args[1]
                elif op == "elementwise_sum":
                    val = args[0] + args[1]
                else:
                    val = _UNARY[op](args[0])
                mask = torch.tensor([ops[j][k] == op for j in range(m)])[:, None, None]
                node = val if node is None else torch.where(mask, val, node)
            values.append(node)
        table = torch.stack(values)
        state = [table[out_slot[i], motif] for i in range(3)]
        outputs.append(state[0])
    return torch.stack(outputs)


#: a cell whose non-linear nodes read x directly, which the space refuses but the batched
#: cells compute when the input is of the hidden size
READS_X = (
    ("a", "linear", ("x", "h_prev_0")),
    ("b", "activation_sigm", ("a",)),
    ("c", "elementwise_prod", ("x", "b")),
    ("h_new_0", "blend", ("b", "c", "h_prev_0")),
)


def cells(space, n: int = 14):
    named = [space.validate(c) for c in ("lstm", "gru", "rnn")]
    return motifs(space, n, seed=3) + named + [READS_X]


def test_outputs_and_gradients_are_autograds_to_the_bit(space):
    genotypes = cells(space)
    # the dish's sizes: 64 sequences of 8 steps, width 8
    batch = NasBenchNLPCellBatch(genotypes, 8, 8, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 64, 8, generator=gen).expand(-1, len(genotypes), -1, -1)
    probe = torch.randn(8, len(genotypes), 64, 8, generator=gen)
    params = dict(batch.named_parameters())
    out = batch(x)
    ref = autograd_cells(genotypes, batch, x)
    assert torch.equal(out, ref)
    got = torch.autograd.grad((out * probe).sum(), list(params.values()))
    want = torch.autograd.grad((ref * probe).sum(), list(params.values()))
    for name, a, b in zip(params, got, want, strict=True):
        assert torch.equal(a, b), name


def test_the_dish_records_the_autograd_formulations_numbers(space, monkeypatch):
    genotypes = cells(space, 10)
    options = dict(device="cpu", inner_steps=4)
    new = petri_dish(space, seed=0, **options).features(genotypes)
    build = space.build_cell_batch

    def autograd_batch(gs, input_size, hidden_size, seed=None):
        batch = build(gs, input_size, hidden_size, seed)
        batch.forward = lambda inputs: autograd_cells(gs, batch, inputs)
        return batch

    monkeypatch.setattr(space, "build_cell_batch", autograd_batch)
    old = petri_dish(space, seed=0, **options).features(genotypes)
    np.testing.assert_array_equal(new, old)


def test_gradients_of_gradients_for_the_meta_gradient(space):
    # the dish's meta-gradient differentiates the inner gradients: a second derivative
    genotypes = cells(space, 5)
    batch = NasBenchNLPCellBatch(genotypes, 4, 4, seed=1).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, len(genotypes), 3, 4, dtype=torch.float64, generator=gen)
    probe = torch.randn(4, len(genotypes), 3, 4, dtype=torch.float64, generator=gen)
    params = list(batch.parameters())
    directions = [torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in params]
    second = []
    for run in (batch, lambda inputs: autograd_cells(genotypes, batch, inputs)):
        inputs = x.clone().requires_grad_()
        loss = (run(inputs).tanh() * probe).sum()
        grads = torch.autograd.grad(loss, params, create_graph=True)
        along = sum((g * d).sum() for g, d in zip(grads, directions, strict=True))
        second.append(torch.autograd.grad(along, [inputs, *params]))
    for got, want in zip(*second, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_a_motif_gets_no_nan_from_ops_it_does_not_use(space):
    # position 1: a tanh of an infinite value in one motif, a linear node in the other; the
    # masked formulation multiplied the infinite value by the zero gradient of the linear
    # node it did not use (NaN); a motif's gradients are now its own, batched or alone
    squash = space.validate(
        {"n": {"op": "linear", "input": ["x", "h_prev_0"]},
         "h_new_0": {"op": "activation_tanh", "input": ["n"]}}
    )  # fmt: skip
    genotypes = [squash, space.validate("gru")]
    x = torch.randn(3, 1, 4, 5, generator=torch.Generator().manual_seed(2))
    grads = []
    for gs in (genotypes, genotypes[:1]):
        batch = NasBenchNLPCellBatch(gs, 5, 5, seed=0)
        with torch.no_grad():
            batch.bias[0, 0] = float("inf")
        out = batch(x.expand(-1, len(gs), -1, -1))
        out[:, 0].sum().backward()
        grads.append([p.grad[0] for p in batch.parameters()])
    for together, alone in zip(*grads, strict=True):
        assert torch.isfinite(together).all()
        torch.testing.assert_close(together[: alone.shape[0]], alone)
