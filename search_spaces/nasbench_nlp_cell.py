"""The recurrent cell computing a NAS-Bench-NLP graph, for any input and hidden size.

Every ``linear`` node holds one weight matrix per input and one bias, initialised uniformly
in (-1/sqrt(hidden), 1/sqrt(hidden)) as the benchmark did. For speed, the ``x`` parts of all
linear nodes (and all biases) are computed for every time step in one matmul before the loop,
and inside the loop each value feeding linear nodes is multiplied once by the concatenation
of the weight matrices that read it (a :class:`RecurrentWeight`, whose gradient is one
product per forward pass instead of one per step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.base import RecurrentCell
from search_spaces.nasbench_nlp_graph import NLPGenotype, state_size, topological_order
from search_spaces.recurrent_weight import RecurrentWeight

_ACTIVATIONS = {
    "activation_tanh": torch.tanh,
    "activation_sigm": torch.sigmoid,
    "activation_leaky_relu": lambda z: F.leaky_relu(z, 0.01),
}


class NasBenchNLPCell(RecurrentCell):
    """Evaluates the graph in topological order at every step; state = (h_new_0, ...)."""

    def __init__(self, genotype: NLPGenotype, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, state_size=state_size(genotype))
        spec = {n: (op, ins) for n, op, ins in genotype}
        self.order = topological_order(genotype)
        self.ops = {n: spec[n][0] for n in self.order}
        self.inputs = {n: spec[n][1] for n in self.order}
        linears = [n for n in self.order if spec[n][0] == "linear"]
        self.linear_index = {n: j for j, n in enumerate(linears)}
        # (linear node, slot) pairs reading x, and per other source the linear nodes reading it
        x_reads = [n for n in linears for i in spec[n][1] if i == "x"]
        self.x_blocks = [self.linear_index[n] for n in x_reads]
        h_reads: dict[str, list[str]] = {}
        for n in linears:
            for i in spec[n][1]:
                if i != "x":
                    h_reads.setdefault(i, []).append(n)
        self.sources = sorted(h_reads)
        self.source_targets = {s: [self.linear_index[n] for n in h_reads[s]] for s in self.sources}
        h = hidden_size
        self.bias = nn.Parameter(torch.empty(len(linears), h))
        self.w_x = nn.Parameter(torch.empty(input_size, len(x_reads) * h))
        self.w_h = nn.ParameterList(
            nn.Parameter(torch.empty(h, len(h_reads[s]) * h)) for s in self.sources
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in (-1/sqrt(hidden), 1/sqrt(hidden)), as the benchmark's CustomRNN."""
        bound = 1.0 / self.hidden_size**0.5
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(
        self,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        state_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        steps, batch = inputs.shape[0], inputs.shape[1]
        h = self.hidden_size
        n_lin = self.bias.shape[0]
        # x-dependent parts of every linear node plus biases, for all steps: [T, B, L, H]
        pre = self.bias.expand(steps, batch, n_lin, h)
        if self.x_blocks:
            x_part = (inputs @ self.w_x).view(steps, batch, len(self.x_blocks), h)
            idx = torch.tensor(self.x_blocks, device=inputs.device)
            pre = pre.index_add(2, idx, x_part)
        weights = {s: RecurrentWeight(w) for s, w in zip(self.sources, self.w_h, strict=True)}
        outputs = []
        for t in range(steps):
            values: dict[str, torch.Tensor] = {"x": inputs[t]}
            for i, s in enumerate(state):
                values[f"h_prev_{i}"] = s * state_mask if state_mask is not None else s
            acc = list(pre[t].unbind(1))  # per linear node: [B, H]
            for i in range(len(state)):
                self._feed(f"h_prev_{i}", values, acc, weights)
            for n in self.order:
                values[n] = self._node(n, values, acc)
                self._feed(n, values, acc, weights)
            state = tuple(values[f"h_new_{i}"] for i in range(self.state_size))
            outputs.append(state[0])
        return torch.stack(outputs), state

    def _feed(
        self,
        name: str,
        values: dict[str, torch.Tensor],
        acc: list[torch.Tensor],
        weights: dict[str, RecurrentWeight],
    ) -> None:
        """Add ``name``'s contribution to every linear node reading it (one matmul)."""
        w = weights.get(name)
        if w is None:
            return
        parts = w(values[name]).split(self.hidden_size, dim=-1)
        for j, part in zip(self.source_targets[name], parts):
            acc[j] = acc[j] + part

    def _node(
        self, n: str, values: dict[str, torch.Tensor], acc: list[torch.Tensor]
    ) -> torch.Tensor:
        op, ins = self.ops[n], self.inputs[n]
        if op == "linear":
            return acc[self.linear_index[n]]
        if op == "blend":
            a, b, c = (values[i] for i in ins)
            return a * b + (1 - a) * c
        if op == "elementwise_prod":
            return values[ins[0]] * values[ins[1]]
        if op == "elementwise_sum":
            return values[ins[0]] + values[ins[1]]
        return _ACTIVATIONS[op](values[ins[0]])
