"""The DARTS/ENAS/NAO recurrent cell: a tree of highway nodes over one hidden state.

Node 0 mixes x_t and h_{t-1}; node i >= 1 picks a predecessor j < i and an activation f:
``[c, h] = W_i s_j``, ``s_i = s_j + sigmoid(c) * (f(h) - s_j)``. The new state is the mean
of the output nodes (all of 1..N by default, or the loose ends as in NAO).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.base import CellBatch, GenotypeError, RecurrentCell, SearchSpace
from search_spaces.darts_ops import ACTIVATIONS, DartsGenotype
from search_spaces.darts_rnn_batch import DartsCellBatch
from search_spaces.recurrent_weight import RecurrentWeight

_NAMED = {
    "DARTS_V1": "relu0 relu1 tanh2 relu3 relu4 identity1 relu5 relu1",
    "DARTS_V2": "sigmoid0 relu1 relu1 identity1 tanh2 sigmoid5 tanh3 relu5",
}
_NODE_RE = re.compile(r"^([a-z_]+?)(\d+)$")
#: a key's parts: a node's activation (``x`` at the root), its opening and closing bracket, a comma
_KEY_TOKEN = re.compile(r"\s*([a-z_]+\(|\)|,)")


class DartsRNNSpace(SearchSpace):
    """Recurrent cells of ``nodes`` highway nodes, each choosing a predecessor and activation.

    ``output`` is ``"all"`` (DARTS: the mean of nodes 1..N) or ``"loose_ends"`` (NAO/ENAS:
    the mean of the nodes no other node reads).
    """

    name = "darts_rnn"

    def __init__(
        self,
        nodes: int = 8,
        activations: tuple[str, ...] = ("tanh", "relu", "sigmoid", "identity"),
        output: str = "all",
    ) -> None:
        if nodes < 1:
            raise GenotypeError(f"nodes must be at least 1, got {nodes}")
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown or not activations:
            raise GenotypeError(
                f"activations: unknown {unknown or 'empty list'} (known: {', '.join(ACTIVATIONS)})"
            )
        if output not in ("all", "loose_ends"):
            raise GenotypeError(f"output must be 'all' or 'loose_ends', got '{output}'")
        self.nodes = int(nodes)
        self.activations = tuple(activations)
        self.output = output

    # -- parsing -----------------------------------------------------------------------------
    def named(self) -> dict[str, DartsGenotype]:
        if self.nodes != 8:
            return {}
        return {
            name: self.validate(text)
            for name, text in _NAMED.items()
            if all(a in self.activations for a in re.findall(r"[a-z_]+", text))
        }

    def _parse_node(self, i: int, item: Any) -> tuple[str, int]:
        if isinstance(item, str):
            m = _NODE_RE.match(item.strip())
            if not m:
                raise GenotypeError(f"node {i}: cannot read '{item}' (expected e.g. 'relu0')")
            act, pred = m.group(1), int(m.group(2))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            act, pred = item
            if not isinstance(act, str) or isinstance(pred, bool) or not isinstance(pred, int):
                raise GenotypeError(f"node {i}: expected [activation, predecessor], got {item!r}")
        else:
            raise GenotypeError(f"node {i}: expected 'act<pred>' or [act, pred], got {item!r}")
        if act not in self.activations:
            raise GenotypeError(
                f"node {i}: unknown activation '{act}' (known: {', '.join(self.activations)})"
            )
        if not 0 <= pred < i:
            raise GenotypeError(f"node {i}: predecessor {pred} out of range (must be 0..{i - 1})")
        return act, pred

    def validate(self, obj: Any) -> DartsGenotype:
        if isinstance(obj, str) and "(" in obj:
            return self.from_key(obj)
        if isinstance(obj, str):
            text = obj.strip()
            named = _NAMED.get(text)
            if named is not None:
                if self.nodes != 8:
                    raise GenotypeError(f"{text} has 8 nodes but the space has {self.nodes}")
                text = named
            items: Sequence[Any] = text.replace(",", " ").split()
        elif isinstance(obj, dict) and "nodes" in obj:
            items = obj["nodes"]
        elif isinstance(obj, (list, tuple)):
            items = obj
        else:
            raise GenotypeError(f"expected a string or a list of nodes, got {type(obj).__name__}")
        if not isinstance(items, (list, tuple)):
            raise GenotypeError("'nodes' must be a list")
        if len(items) != self.nodes:
            raise GenotypeError(
                f"wrong length: {len(items)} nodes given, the space has {self.nodes}"
            )
        return tuple(self._parse_node(i + 1, item) for i, item in enumerate(items))

    def from_key(self, key: str) -> DartsGenotype:
        """The cell a :meth:`key` names (``x(relu(tanh()),sigmoid())``): nodes numbered depth
        first, each reading its parent in the tree."""
        text = key.strip()
        if not text.startswith("x("):
            raise GenotypeError(f"key: must start with 'x(', got '{text[:20]}'")
        items: list[tuple[str, int]] = []
        parents = [0]  # the open nodes, innermost last
        pos, last = 2, "("
        while parents:
            m = _KEY_TOKEN.match(text, pos)
            part = m.group(1) if m else ""
            # a node opens after '(' or ','; a ')' closes after '(' or ')'; a ',' follows ')'
            if not (
                (part.endswith("(") and last in "(,")
                or (part == ")" and last in "()")
                or (part == "," and last == ")")
            ):
                if not text[pos:].strip():
                    raise GenotypeError(f"key: ends before its last ')' ('{text[-20:]}')")
                raise GenotypeError(f"key: cannot read '{text[pos : pos + 20]}' at char {pos}")
            pos, last = m.end(), part[-1]
            if part.endswith("("):
                items.append((part[:-1], parents[-1]))
                parents.append(len(items))
            elif part == ")":
                parents.pop()
        if text[pos:].strip():
            raise GenotypeError(f"key: cannot read '{text[pos : pos + 20]}' at char {pos}")
        return self.validate(items)

    def to_json(self, genotype: DartsGenotype) -> str:
        return " ".join(f"{act}{pred}" for act, pred in genotype)

    def describe(self, genotype: DartsGenotype) -> str:
        return self.to_json(genotype)

    # -- structure ---------------------------------------------------------------------------
    @staticmethod
    def _children(genotype: DartsGenotype) -> list[list[int]]:
        children: list[list[int]] = [[] for _ in range(len(genotype) + 1)]
        for i, (_, pred) in enumerate(genotype, start=1):
            children[pred].append(i)
        return children

    def output_nodes(self, genotype: DartsGenotype) -> list[int]:
        """Indices of the nodes averaged into the new state."""
        if self.output == "all":
            return list(range(1, len(genotype) + 1))
        children = self._children(genotype)
        return [i for i in range(1, len(genotype) + 1) if not children[i]]

    def key(self, genotype: DartsGenotype) -> str:
        # The cell is a tree rooted at node 0 whose output is symmetric in the nodes, so
        # isomorphic labelled trees compute the same function: key = canonical tree string.
        children = self._children(genotype)

        def canon(i: int) -> str:
            label = "x" if i == 0 else genotype[i - 1][0]
            return label + "(" + ",".join(sorted(canon(c) for c in children[i])) + ")"

        return canon(0)

    # -- random operators ----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        acts = rng.integers(len(self.activations), size=self.nodes)
        return tuple(
            (self.activations[int(a)], int(rng.integers(i))) for i, a in enumerate(acts, start=1)
        )

    def mutate(self, genotype: DartsGenotype, rng: np.random.Generator) -> DartsGenotype:
        # Changing an activation always changes the key; rewiring may give an isomorphic
        # tree, so retry until the key moves (bounded: an activation change ends it).
        base_key = self.key(genotype)
        child = genotype
        for _ in range(64):
            nodes = list(genotype)
            i = int(rng.integers(len(nodes)))
            act, pred = nodes[i]
            rewire = i > 0 and (len(self.activations) == 1 or rng.random() < 0.5)
            if rewire:
                choices = [j for j in range(i + 1) if j != pred]
                nodes[i] = (act, int(choices[int(rng.integers(len(choices)))]))
            else:
                others = [a for a in self.activations if a != act]
                nodes[i] = (others[int(rng.integers(len(others)))], pred)
            child = tuple(nodes)
            if self.key(child) != base_key:
                return child
        return child

    # -- tokens --------------------------------------------------------------------------------
    def vocabulary(self) -> list[str]:
        return [f"in{j}" for j in range(self.nodes)] + [f"act_{a}" for a in self.activations]

    def tokens(self, genotype: DartsGenotype) -> list[str]:
        out: list[str] = []
        for act, pred in genotype:
            out += [f"in{pred}", f"act_{act}"]
        return out

    def from_tokens(self, tokens: Sequence[str]) -> DartsGenotype:
        if len(tokens) != 2 * self.nodes:
            raise GenotypeError(f"wrong length: {len(tokens)} tokens, expected {2 * self.nodes}")
        items = []
        for i in range(self.nodes):
            src, act = tokens[2 * i], tokens[2 * i + 1]
            if not (src.startswith("in") and src[2:].isdigit()) or not act.startswith("act_"):
                raise GenotypeError(f"node {i + 1}: tokens '{src} {act}' are not 'in<j> act_<f>'")
            items.append((act[4:], int(src[2:])))
        return self.validate(items)

    def equivalent_tokens(self, genotype: DartsGenotype) -> list[list[str]]:
        # Renumberings of the tree that keep every predecessor before its node describe the
        # same cell; give the original and the canonical (sorted depth-first) numbering.
        children = self._children(genotype)
        memo: dict[int, str] = {}

        def canon(i: int) -> str:
            if i not in memo:
                label = "x" if i == 0 else genotype[i - 1][0]
                memo[i] = label + "(" + ",".join(sorted(canon(c) for c in children[i])) + ")"
            return memo[i]

        order: list[int] = []

        def visit(i: int) -> None:
            for c in sorted(children[i], key=canon):
                order.append(c)
                visit(c)

        visit(0)
        new_index = {0: 0} | {old: new for new, old in enumerate(order, start=1)}
        relabelled = tuple((genotype[o - 1][0], new_index[genotype[o - 1][1]]) for o in order)
        seqs = [self.tokens(genotype)]
        if relabelled != genotype:
            seqs.append(self.tokens(relabelled))
        return seqs

    def graph(self, genotype: DartsGenotype) -> tuple[dict[str, str], list[tuple[str, str]]]:
        nodes = {"x_t": "x_t", "h_prev": "h_{t-1}", "0": "0"}
        edges = [("x_t", "0"), ("h_prev", "0")]
        for i, (act, pred) in enumerate(genotype, start=1):
            nodes[str(i)] = f"{i}: {act}"
            edges.append((str(pred), str(i)))
        nodes["h_t"] = "h_t (mean)"
        edges += [(str(i), "h_t") for i in self.output_nodes(genotype)]
        return nodes, edges

    # -- cell ----------------------------------------------------------------------------------
    def build_cell(self, genotype: DartsGenotype, input_size: int, hidden_size: int) -> DartsCell:
        return DartsCell(genotype, self.output_nodes(genotype), input_size, hidden_size)

    def build_cell_batch(
        self,
        genotypes: Sequence[DartsGenotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> CellBatch:
        """All ``genotypes`` as one vectorised :class:`DartsCellBatch` (see the base class)."""
        outputs = [self.output_nodes(g) for g in genotypes]
        return DartsCellBatch(genotypes, outputs, input_size, hidden_size, seed)


class DartsCell(RecurrentCell):
    """The DARTS cell; the nodes reading the same predecessor share one matmul per step.

    As in DARTS' training code, ``state_mask`` (the hidden-state dropout) multiplies the
    state entering every matmul of the step, node 0's and each node's.
    """

    def __init__(
        self, genotype: DartsGenotype, outputs: list[int], input_size: int, hidden_size: int
    ) -> None:
        super().__init__(input_size, hidden_size, state_size=1)
        bound = 1.0 / hidden_size**0.5
        self.w0 = nn.Parameter(torch.empty(input_size + hidden_size, 2 * hidden_size))
        self.ws = nn.Parameter(torch.empty(len(genotype), hidden_size, 2 * hidden_size))
        nn.init.uniform_(self.w0, -bound, bound)
        nn.init.uniform_(self.ws, -bound, bound)
        self.genotype = genotype
        self.outputs = list(outputs)
        # (predecessor, the nodes reading it), in an order where every predecessor is ready:
        # one [B, H] x [H, k * 2H] matmul per group is faster than k small ones or a bmm
        self.groups: list[tuple[int, list[int]]] = []
        for pred in range(len(genotype)):
            readers = [i for i, (_, j) in enumerate(genotype, start=1) if j == pred]
            if readers:
                self.groups.append((pred, readers))

    def forward(
        self,
        inputs: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        state_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        hsz = self.hidden_size
        (h,) = state
        # unbind/cat rather than indexing or slicing in the loop: their backward passes
        # stack, where an index's or a slice's zero-fills a whole buffer every time
        x_parts = (inputs @ self.w0[: self.input_size]).unbind(0)  # all steps at once
        w_h = RecurrentWeight(self.w0[self.input_size :])
        node_weights = self.ws.unbind(0)
        group_weights = [
            RecurrentWeight(torch.cat([node_weights[i - 1] for i in idx], dim=1))
            for _, idx in self.groups
        ]  # [H, k * 2H]: node after node, each [c | h]
        outputs = []
        for x_part in x_parts:
            h_in = h * state_mask if state_mask is not None else h
            c0, h0 = (x_part + w_h(h_in)).split(hsz, dim=-1)
            s: list[torch.Tensor | None] = [None] * (len(self.genotype) + 1)
            s[0] = torch.lerp(h, torch.tanh(h0), torch.sigmoid(c0))
            for (pred, idx), w in zip(self.groups, group_weights):
                prev = s[pred]
                prev_in = prev * state_mask if state_mask is not None else prev
                c, hh = w(prev_in).view(prev.size(0), len(idx), 2, hsz).unbind(2)
                gates = torch.sigmoid(c).unbind(1)
                for k, (i, z) in enumerate(zip(idx, hh.unbind(1))):
                    f = ACTIVATIONS[self.genotype[i - 1][0]]
                    s[i] = torch.lerp(prev, f(z), gates[k])
            h = torch.stack([s[i] for i in self.outputs]).mean(0)
            outputs.append(h)
        return torch.stack(outputs), (h,)
