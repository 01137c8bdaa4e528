"""Many NAS-Bench-NLP cells at once: one batched computation over motifs, for the Petri dish.

Every value of every motif is a row of one table per step: row 0 zeros, then each motif's
``x``, then its ``h_prev_*``, then its nodes. The nodes that sit at the same position of
their motifs' topological order and apply the same op form a group of contiguous rows, and
the groups of a position read their inputs with one gather, so a position costs a few
tensor ops for all motifs and no op is computed for a motif that does not use it; the
Python loop runs over steps, positions and groups, never over motifs. A ``linear`` node
holds one matrix per input slot (up to 3) and a bias, like
:class:`~search_spaces.nasbench_nlp_cell.NasBenchNLPCell`; the ``x`` parts and biases of all
nodes are computed for all steps at once, before the loop.

The backward pass through the steps is written out by hand (:class:`_Unrolled`): autograd's
bookkeeping of thousands of small ops cost more than their arithmetic. It reproduces the
arithmetic of autograd over the masked formulation these cells had before (every op at a
position computed for every motif, then selected) to the bit, so that the Petri dish's
records, which a chaotic cell's last bits move, stay what they were: every product has the
shape autograd gave it, and every gradient sums its terms in the order autograd's engine
did (a value's: first what the step's output and the next step passed back, then its
readers from the last position to the first; a weight's: the steps from the last to the
first). The one difference: a motif whose values overflowed could get NaN gradients from
the ops it does not use, and no longer does. A gradient that must itself be differentiable
(the dish's meta-gradient) is autograd's, over a recomputation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import CellBatch, seeded_generator
from search_spaces.nasbench_nlp_graph import (
    ACTIVATION_OPS,
    NLPGenotype,
    output_index,
    prev_index,
    state_size,
    topological_order,
)

_MAX_IN = 3
#: a motif's nodes: name -> (op, input names)
_Specs = dict[str, tuple[str, tuple[str, ...]]]
_SLOPE = 0.01  # leaky ReLU
#: activation: ``(output gradient, output, grad_input=into)``, autograd's input gradient
_BACKWARD = {
    "activation_tanh": torch.ops.aten.tanh_backward.grad_input,
    "activation_sigm": torch.ops.aten.sigmoid_backward.grad_input,
    # the output has the input's sign, so it tells which slope applied
    "activation_leaky_relu": partial(
        torch.ops.aten.leaky_relu_backward.grad_input, negative_slope=_SLOPE, self_is_result=True
    ),
}


class _Group(NamedTuple):
    """The nodes of one position ``pos`` and op: table rows ``lo:hi``, reading ``arity``
    rows each (``arg_rows[args : args + (hi - lo) * arity]``: every node's first input,
    then every node's second...); linear nodes are also numbered among all linear nodes,
    from ``lin``."""

    pos: int
    op: str
    lo: int
    hi: int
    arity: int
    args: int
    lin: int


class NasBenchNLPCellBatch(CellBatch):
    """``len(genotypes)`` NAS-Bench-NLP cells computed together (see the module docstring).

    Parameters: ``bias [M, L, H]``, ``w_x [M, L, 3, I, H]`` (for inputs that are ``x``) and
    ``w_h [M, L, 3, H, H]`` (other inputs) for the node at topological position ``l``; entries
    a motif does not use get no gradient. With ``seed`` every motif starts from the same draw.
    """

    def __init__(
        self,
        genotypes: Sequence[NLPGenotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(len(genotypes), input_size, hidden_size)
        m = len(genotypes)
        orders = [topological_order(g) for g in genotypes]
        self.length = max(len(o) for o in orders)
        states = max(state_size(g) for g in genotypes)
        # table rows: 0 zeros, 1 + j motif j's x, 1 + m + i * m + j its h_prev_i, then nodes
        self.first_node = 1 + m + states * m
        specs = [{n: (op, ins) for n, op, ins in g} for g in genotypes]
        nodes = sorted(
            (k, specs[j][n][0], j, n) for j, order in enumerate(orders) for k, n in enumerate(order)
        )
        out_rows, w_x_mask, w_h_mask = self._group_nodes(nodes, specs, states)
        lin = [g for g in self.groups if g.op == "linear"]
        entries = [e for g in lin for e in range(g.args, g.args + (g.hi - g.lo) * g.arity)]
        self.register_buffer(
            "lin_entries", torch.tensor(entries, dtype=torch.long), persistent=False
        )
        lin_rows = [r for g in lin for r in range(g.lo, g.hi)]
        self.register_buffer("lin_rows", torch.tensor(lin_rows, dtype=torch.long), persistent=False)
        self.register_buffer("out_rows", out_rows.reshape(-1), persistent=False)
        self.register_buffer("from_x", w_x_mask[..., None, None], persistent=False)
        self.register_buffer("from_h", w_h_mask[..., None, None], persistent=False)
        self._index_plan: tuple[torch.Tensor | None, list] = (None, [])
        self._draw_weights(seed)

    def _input_row(
        self,
        specs: list[_Specs],
        row: dict[tuple[int, str], int],
        states: int,
        j: int,
        name: str,
        node: str,
    ) -> int:
        """The table row from which node ``node`` of motif ``j`` reads its input ``name``
        (``row``: every node's own row)."""
        m = self.num_motifs
        if name == "x":
            if specs[j][node][0] == "linear":
                return 0  # read through the node's x part: zeros in its h-slot
            if self.input_size != self.hidden_size:
                raise ValueError(f"node '{node}' reads x directly: needs input = hidden size")
            return 1 + j
        i = prev_index(name)
        if i is None:
            return row[j, name]
        return 1 + m + i * m + j if i < states else 0

    def _group_nodes(
        self, nodes: list[tuple[int, str, int, str]], specs: list[_Specs], states: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Groups the ``nodes`` (``(position, op, motif, name)``, sorted) into ``self.groups``
        and registers the rows the groups read (``arg_rows``) and write (``rep_rows``) and
        where their linear weights sit; returns every motif's output rows ``[S, M]`` and which
        linear slots read ``x`` and which a state or node (masks ``[M, L, 3]``)."""
        m, length = self.num_motifs, self.length
        row = {(j, n): self.first_node + r for r, (_, _, j, n) in enumerate(nodes)}
        source = partial(self._input_row, specs, row, states)
        w_x_mask = torch.zeros(m, length, _MAX_IN)
        w_h_mask = torch.zeros(m, length, _MAX_IN)
        out_rows = torch.zeros(states, m, dtype=torch.long)
        self.groups: list[_Group] = []
        arg_rows: list[int] = []
        rep_rows: list[int] = []  # beside each entry of arg_rows, its node's row
        lin_mk: list[int] = []
        slot_pos: list[int] = []  # per slot of a linear group: linear node * 3 + slot
        start = 0
        for r, (k, op, j, n) in enumerate(nodes):
            out = output_index(n)
            if out is not None:
                out_rows[out, j] = self.first_node + r
            if r + 1 < len(nodes) and nodes[r + 1][:2] == (k, op):
                continue
            members = nodes[start : r + 1]
            arity = max(len(specs[j2][n2][1]) for _, _, j2, n2 in members)
            lo, hi = self.first_node + start, self.first_node + r + 1
            self.groups.append(_Group(k, op, lo, hi, arity, len(arg_rows), len(lin_mk)))
            # slot-major: the first inputs of all the group's nodes, then their second...
            reads = [specs[j2][n2][1] for _, _, j2, n2 in members]
            for i in range(arity):
                for (_, _, j2, n2), ins in zip(members, reads, strict=True):
                    arg_rows.append(source(j2, ins[i], n2) if i < len(ins) else 0)
                rep_rows += range(self.first_node + start, self.first_node + r + 1)
                if op == "linear":
                    slot_pos += [3 * (len(lin_mk) + j) + i for j in range(len(members))]
            if op == "linear":
                for (_, _, j2, _), ins in zip(members, reads, strict=True):
                    lin_mk.append(j2 * length + k)
                    for i, name in enumerate(ins):
                        (w_x_mask if name == "x" else w_h_mask)[j2, k, i] = 1.0
            start = r + 1
        self.register_buffer("arg_rows", torch.tensor(arg_rows, dtype=torch.long), persistent=False)
        self.register_buffer("rep_rows", torch.tensor(rep_rows, dtype=torch.long), persistent=False)
        self.register_buffer("lin_mk", torch.tensor(lin_mk, dtype=torch.long), persistent=False)
        self.register_buffer("slot_pos", torch.tensor(slot_pos, dtype=torch.long), persistent=False)
        return out_rows, w_x_mask, w_h_mask

    def _draw_weights(self, seed: int | None) -> None:
        """The parameters ``bias``, ``w_x`` and ``w_h``, uniform in ``±1/sqrt(hidden_size)``."""
        m, length = self.num_motifs, self.length
        bound = 1.0 / self.hidden_size**0.5
        # with a seed, position k draws from its own stream: a motif's initial weights must
        # not depend on how long the longest motif of its batch is, or its dish score would
        # change with the motifs it happens to be scored beside
        gens = [None if seed is None else seeded_generator(seed, k) for k in range(length)]
        shared = m if seed is None else 1

        def draw(*shape: int) -> nn.Parameter:
            w = torch.stack([torch.rand(shared, *shape, generator=g) for g in gens], dim=1)
            w = (w * 2 - 1) * bound
            return nn.Parameter(w.expand(m, length, *shape).clone())

        self.bias = draw(self.hidden_size)
        self.w_x = draw(_MAX_IN, self.input_size, self.hidden_size)
        self.w_h = draw(_MAX_IN, self.hidden_size, self.hidden_size)

    def _positions(self) -> list[_Position]:
        """Per position: where its groups' inputs sit among all groups' (``arg_rows``), one
        after the other, and its groups (without a forward pass's tensors). Computed once
        per device of the buffers."""
        if self._index_plan[0] is not self.arg_rows:  # built, or moved since
            positions, lin_at = [], 0
            for _, grouped in itertools.groupby(self.groups, key=lambda g: g.pos):
                groups = list(grouped)
                first, plans = groups[0].args, []
                for g in groups:
                    n, at = g.hi - g.lo, slice(g.args, g.args + (g.hi - g.lo) * g.arity)
                    rows, lin, swap = self.arg_rows[at], None, None
                    if g.op == "elementwise_prod":
                        swap = rows.view(2, n).flip(0).reshape(-1)
                    elif g.op == "linear":
                        lin = slice(lin_at, lin_at + n * g.arity)
                        lin_at = lin.stop
                    span = slice(at.start - first, at.stop - first)
                    plans.append(_Plan(g, span, rows, self.rep_rows[at], lin, swap, None, None))
                at = slice(first, at.stop)
                positions.append(_Position(at, self.arg_rows[at], plans))
            self._index_plan = (self.arg_rows, positions)
        return self._index_plan[1]

    def plan(self, x_parts: torch.Tensor, w_h: torch.Tensor) -> list[_Position]:
        """The positions and groups with a forward pass's linear weights (``w_h``, masked)
        and x parts (``[T, M, L, B, H]``)."""
        steps, batch, hsz = x_parts.size(0), x_parts.size(3), self.hidden_size
        xp = x_parts.reshape(steps, -1, batch, hsz).index_select(1, self.lin_mk)  # [T, N, B, H]
        w_lin = w_h.reshape(-1, _MAX_IN, hsz, hsz).index_select(0, self.lin_mk)  # [N, 3, H, H]
        plan = []
        for pos in self._positions():
            plans = []
            for p in pos.groups:
                g, mat, xpg = p.group, None, None
                if g.op == "linear":
                    n = g.hi - g.lo
                    mat = w_lin[g.lin : g.lin + n, : g.arity].transpose(0, 1).reshape(-1, hsz, hsz)
                    xpg = xp[:, g.lin : g.lin + n]
                plans.append(_Plan(g, p.span, p.idx, p.rep, p.lin, p.swap, mat, xpg))
            plan.append(_Position(pos.at, pos.idx, plans))
        return plan

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # x parts and biases of every node, all steps at once: [T, M, L, B, H]
        w_x = (self.w_x * self.from_x).sum(2)  # [M, L, I, H]
        x_parts = torch.einsum("tmbi,mlih->tmlbh", inputs, w_x) + self.bias[:, :, None]
        w_h = self.w_h * self.from_h  # zero where a slot reads x or nothing
        if torch.is_grad_enabled() and any(t.requires_grad for t in (x_parts, w_h, inputs)):
            return _Unrolled.apply(self, x_parts, w_h, inputs)
        with torch.no_grad():
            return _unroll(self, x_parts, w_h, inputs, graph=False)[0]


class _Plan(NamedTuple):
    """A group in a forward pass: where its inputs sit among its position's (``span``), its
    input rows ``idx`` and its node rows once per input ``rep`` (slot-major); a linear
    group's place among all linear groups' inputs ``lin``, its matrices ``mat`` (one per slot
    and node) and x parts ``xp`` ``[T, n, B, H]``; a product's input rows swapped."""

    group: _Group
    span: slice
    idx: torch.Tensor
    rep: torch.Tensor
    lin: slice | None
    swap: torch.Tensor | None
    mat: torch.Tensor | None
    xp: torch.Tensor | None


class _Position(NamedTuple):
    """The groups of one position: where their inputs sit among all groups', their input
    rows (one gather and one scatter serve them all), and the groups."""

    at: slice
    idx: torch.Tensor
    groups: list[_Plan]


def _unroll(
    cells: NasBenchNLPCellBatch,
    x_parts: torch.Tensor,
    w_h: torch.Tensor,
    inputs: torch.Tensor,
    graph: bool,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The outputs ``[T, M, B, H]`` and what the hand-written backward needs. With ``graph``
    every value is written out of place into a table per step, so that autograd can
    differentiate the computation; otherwise in place into one table for all steps."""
    steps, m, batch = inputs.shape[:3]
    hsz = cells.hidden_size
    plan = cells.plan(x_parts, w_h)
    tables, table = _tables(cells, inputs, graph)
    state = slice(1 + m, cells.first_node)
    # every group's inputs, gathered per step (the weight gradients read the linear ones)
    args = None if graph else inputs.new_empty(steps, cells.arg_rows.numel(), batch, hsz)
    for t, v in enumerate(tables):
        if t and graph:
            v[state] = tables[t - 1].index_select(0, cells.out_rows)
        elif t:
            torch.index_select(tables[t - 1], 0, cells.out_rows, out=v[state])
        for pos in plan:
            if graph:
                gathered = v.index_select(0, pos.idx)
            else:
                gathered = torch.index_select(v, 0, pos.idx, out=args[t, pos.at])
            for p in pos.groups:
                g = p.group
                dst = None if graph else v[g.lo : g.hi]
                y = _group_values(p, gathered[p.span], t, dst)
                if graph:
                    v[g.lo : g.hi] = y
    out_rows = cells.out_rows[:m]
    if graph:
        return torch.stack([v.index_select(0, out_rows) for v in tables]), {}
    saved = {"table": table, "plan": plan, "args": args}
    return table.index_select(1, out_rows), saved


def _tables(
    cells: NasBenchNLPCellBatch, inputs: torch.Tensor, graph: bool
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Every step's table of values ``[rows, B, H]`` before its nodes are computed: zeros, and
    ``x`` in its rows where nodes read it directly. With ``graph`` a new tensor per step (and
    no tensor of all steps); otherwise the steps of one tensor ``[T, rows, B, H]``, which is
    returned too."""
    steps, m, batch = inputs.shape[:3]
    hsz = cells.hidden_size
    rows = cells.groups[-1].hi
    reads_x = inputs.size(-1) == hsz
    if graph:
        tables = [inputs.new_zeros(rows, batch, hsz) for _ in range(steps)]
        if reads_x:
            for t, v in enumerate(tables):
                v[1 : 1 + m] = inputs[t]
        return tables, None
    table = inputs.new_empty(steps, rows, batch, hsz)
    table[:, : cells.first_node].zero_()
    if reads_x:
        table[:, 1 : 1 + m] = inputs
    return list(table.unbind(0)), table


def _group_values(p: _Plan, a: torch.Tensor, t: int, dst: torch.Tensor | None) -> torch.Tensor:
    """A group's values at step ``t`` from its inputs ``a`` (slot-major): written into
    ``dst`` when given, otherwise a new tensor (for autograd)."""
    g = p.group
    op, n = g.op, g.hi - g.lo
    if op == "linear":
        # one product per slot, summed in slot order after the x part (as autograd sees
        # ``x_part + a_0 @ w_0 + a_1 @ w_1 + ...``)
        prods = torch.bmm(a, p.mat)
        y = p.xp[t]
        for i in range(g.arity):
            last = i + 1 == g.arity
            y = torch.add(y, prods[i * n : (i + 1) * n], out=dst if last else None)
        return y
    if op == "activation_tanh":
        return torch.tanh(a, out=dst)
    if op == "activation_sigm":
        return torch.sigmoid(a, out=dst)
    if op == "activation_leaky_relu":
        return F.leaky_relu(a, _SLOPE) if dst is None else F.leaky_relu_(dst.copy_(a), _SLOPE)
    if op == "blend":
        return torch.add(a[:n] * a[n : 2 * n], (1 - a[:n]) * a[2 * n :], out=dst)
    if op == "elementwise_prod":
        return torch.mul(a[:n], a[n:], out=dst)
    if op == "elementwise_sum":
        return torch.add(a[:n], a[n:], out=dst)
    raise ValueError(f"unknown op '{op}'")


class _Unrolled(torch.autograd.Function):
    """The cells over all steps, with the backward pass written out (module docstring)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        cells: NasBenchNLPCellBatch,
        x_parts: torch.Tensor,
        w_h: torch.Tensor,
        inputs: torch.Tensor,
    ) -> torch.Tensor:
        out, saved = _unroll(cells, x_parts, w_h, inputs, graph=False)
        ctx.cells, ctx.saved = cells, saved
        ctx.save_for_backward(x_parts, w_h, inputs)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        cells, needs = ctx.cells, ctx.needs_input_grad[1:]
        x_parts, w_h, inputs = ctx.saved_tensors
        if torch.is_grad_enabled():
            # a gradient that must itself be differentiable: autograd over a recomputation
            saved = (x_parts, w_h, inputs)
            wanted = [t for t, need in zip(saved, needs, strict=True) if need]
            with torch.enable_grad():
                out, _ = _unroll(cells, *saved, graph=True)
            found = iter(torch.autograd.grad(out, wanted, grad, create_graph=True))
            return (None, *(next(found) if need else None for need in needs))
        return (None, *_backward(cells, ctx.saved, grad, w_h, inputs, needs[2]))


def _backward(
    cells: NasBenchNLPCellBatch,
    saved: dict[str, Any],
    grad: torch.Tensor,
    w_h: torch.Tensor,
    inputs: torch.Tensor,
    input_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Back-propagation through the steps and groups of :func:`_unroll`, by hand, summing
    every gradient in autograd's order (module docstring)."""
    table, plan = saved["table"], saved["plan"]
    steps, m, batch = inputs.shape[:3]
    hsz = cells.hidden_size
    first_state, state = 1 + m, slice(1 + m, cells.first_node)
    g_xp = grad.new_zeros(steps, w_h.shape[0] * w_h.shape[1], batch, hsz)
    # x reaches the outputs through the x parts (the caller's autograd) and, when it is of
    # the hidden size, through the nodes that read it directly
    g_x = grad.new_empty(steps, m, batch, hsz) if input_grad and inputs.size(-1) == hsz else None
    g_lin = grad.new_empty(steps, cells.lin_entries.numel(), batch, hsz)  # linear outputs'
    buffers = [torch.empty_like(table[0]), torch.empty_like(table[0])]
    into = grad.new_empty(cells.arg_rows.numel(), batch, hsz)  # every group's inputs'
    for t in reversed(range(steps)):
        g, later, v = buffers[t % 2], buffers[(t + 1) % 2], table[t]
        g.zero_()
        # an output node's gradient starts with what its step's output and the next step's
        # readers of its state passed back, in that order (summed in the state rows there)
        if t + 1 == steps:
            g.index_copy_(0, cells.out_rows[:m], grad[t])
        else:
            g.index_copy_(0, cells.out_rows, later[state])
        if t:
            g[first_state : first_state + m] = grad[t - 1]
        for pos in reversed(plan):
            _position_backward(pos, g, v, into[pos.at], g_lin[t])
        if cells.lin_mk.numel():
            g_xp[t].index_copy_(0, cells.lin_mk, g.index_select(0, cells.lin_rows))
        if g_x is not None:
            g_x[t] = g[1 : 1 + m]
    g_wh = _weight_grad(cells, saved["args"], g_lin, w_h)
    return g_xp.view(steps, m, -1, batch, hsz), g_wh, g_x


def _position_backward(
    pos: _Position, g: torch.Tensor, v: torch.Tensor, ga: torch.Tensor, g_lin: torch.Tensor
) -> None:
    """Adds to the value gradients ``g`` of a step what its position ``pos`` passes back to
    its groups' inputs, computed in ``ga`` (the position's part of every group's inputs'),
    from the step's values ``v``; the linear groups' output gradients go into ``g_lin`` (the
    step's part) for the weight gradients."""
    batch, hsz = v.shape[1:]
    for grp, span, idx, rep, lin, swap, mat, _ in pos.groups:
        op, out = grp.op, ga[span]
        if op == "linear":
            gy = torch.index_select(g, 0, rep, out=g_lin[lin])
            torch.bmm(gy, mat.transpose(1, 2), out=out)
        elif op in ACTIVATION_OPS:
            _BACKWARD[op](g[grp.lo : grp.hi], v[grp.lo : grp.hi], grad_input=out)
        elif op == "elementwise_sum":
            torch.index_select(g, 0, rep, out=out)
        elif op == "elementwise_prod":
            torch.mul(g.index_select(0, rep), v.index_select(0, swap), out=out)
        else:  # blend: a * b + (1 - a) * c
            gy = g[grp.lo : grp.hi]
            a, b, c = v.index_select(0, idx).view(3, -1, batch, hsz).unbind(0)
            torch.cat([gy * b - gy * c, gy * a, gy * (1 - a)], out=out)
    # the position's groups read rows of other motifs each: one scatter for all
    g.index_add_(0, pos.idx, ga)


def _weight_grad(
    cells: NasBenchNLPCellBatch, args: torch.Tensor, g_lin: torch.Tensor, w_h: torch.Tensor
) -> torch.Tensor:
    """The gradient of ``w_h`` from every step's inputs of the groups (``args``) and output
    gradients of the linear groups (``g_lin``): every (step, linear node, slot) weight
    gradient in one product; then each weight's sum over the steps from the last to the
    first."""
    steps, _, batch, hsz = g_lin.shape
    g_w = w_h.new_zeros(cells.lin_mk.numel() * _MAX_IN, hsz, hsz)
    if cells.lin_entries.numel():
        a = args.index_select(1, cells.lin_entries).view(-1, batch, hsz)
        per_step = torch.bmm(a.transpose(1, 2), g_lin.view(-1, batch, hsz))
        per_step = per_step.view(steps, -1, hsz, hsz)
        total = per_step[-1]
        for t in reversed(range(steps - 1)):
            total = total + per_step[t]
        g_w.index_copy_(0, cells.slot_pos, total)
    g_wh = w_h.new_zeros(w_h.shape).view(-1, _MAX_IN * hsz, hsz)
    g_wh.index_copy_(0, cells.lin_mk, g_w.view(-1, _MAX_IN * hsz, hsz))
    return g_wh.view_as(w_h)
