"""NAS-Bench-NLP recurrent cells: arbitrary DAGs of linear, blend, elementwise and activation nodes.

Genotypes are the benchmark's own cell graphs (``recepie`` dicts, see
:mod:`search_spaces.nasbench_nlp_graph`), so every cell of the benchmark's logs is a genotype
as it is. Sampling follows the benchmark's random generator; mutation makes one local edit.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from search_spaces import nasbench_nlp_structure as structure
from search_spaces.base import GenotypeError, SearchSpace
from search_spaces.nasbench_nlp_batch import NasBenchNLPCellBatch
from search_spaces.nasbench_nlp_cell import NasBenchNLPCell
from search_spaces.nasbench_nlp_graph import (
    ACTIVATION_OPS,
    ARITY,
    COMMUTATIVE,
    OPS,
    NLPGenotype,
    canonical,
    check,
    descendants,
    fresh_name,
    from_key,
    is_state_input,
    key_names,
    output_index,
    parse,
    prune,
    relabel,
    sane,
    state_size,
    to_recepie,
)

#: the benchmark's hand-written cells (its recepies 1000000-1000002), node names as there
_NAMED: dict[str, dict[str, dict[str, Any]]] = {
    "rnn": {
        "f": {"op": "linear", "input": ["x", "h_prev_0"]},
        "h_new_0": {"op": "activation_tanh", "input": ["f"]},
    },
    "lstm": {
        "i": {"op": "linear", "input": ["x", "h_prev_0"]},
        "i_act": {"op": "activation_tanh", "input": ["i"]},
        "j": {"op": "linear", "input": ["x", "h_prev_0"]},
        "j_act": {"op": "activation_sigm", "input": ["j"]},
        "f": {"op": "linear", "input": ["x", "h_prev_0"]},
        "f_act": {"op": "activation_sigm", "input": ["f"]},
        "o": {"op": "linear", "input": ["x", "h_prev_0"]},
        "o_act": {"op": "activation_tanh", "input": ["o"]},
        "h_new_1_part1": {"op": "elementwise_prod", "input": ["f_act", "h_prev_1"]},
        "h_new_1_part2": {"op": "elementwise_prod", "input": ["i_act", "j_act"]},
        "h_new_1": {"op": "elementwise_sum", "input": ["h_new_1_part1", "h_new_1_part2"]},
        "h_new_1_act": {"op": "activation_tanh", "input": ["h_new_1"]},
        "h_new_0": {"op": "elementwise_prod", "input": ["h_new_1_act", "o_act"]},
    },
    "gru": {
        "r": {"op": "linear", "input": ["x", "h_prev_0"]},
        "r_act": {"op": "activation_sigm", "input": ["r"]},
        "z": {"op": "linear", "input": ["x", "h_prev_0"]},
        "z_act": {"op": "activation_sigm", "input": ["z"]},
        "rh": {"op": "elementwise_prod", "input": ["r_act", "h_prev_0"]},
        "h_tilde": {"op": "linear", "input": ["x", "rh"]},
        "h_tilde_act": {"op": "activation_tanh", "input": ["h_tilde"]},
        "h_new_0": {"op": "blend", "input": ["z_act", "h_prev_0", "h_tilde_act"]},
    },
}

_MAIN_OPS = ("linear", "blend", "elementwise_prod", "elementwise_sum")
_MAIN_WEIGHTS = np.array([3.0, 1.0, 1.0, 1.0]) / 6.0
_MAIN_CUMULATIVE = np.cumsum(_MAIN_WEIGHTS)[:-1].tolist()
_LINEAR_THREE_INPUTS = 0.2  # linear nodes read 2 or 3 inputs, weights 4 : 1 in the generator
_MUTATIONS = ("op", "rewire", "insert", "delete")
#: drawn nodes before outputs are chosen: ``name -> (op, inputs)`` in the order drawn
_Drawn = dict[str, tuple[str, tuple[str, ...]]]


def _reached(spec: _Drawn, outs: list[str]) -> set[str]:
    """The names ``outs`` depend on, themselves and the cell inputs they read included."""
    live: set[str] = set()
    stack = list(outs)
    while stack:
        n = stack.pop()
        if n not in live:
            live.add(n)
            stack.extend(i for i in spec.get(n, ((), ()))[1] if i not in live)
    return live


class NasBenchNLPSpace(SearchSpace):
    """Cells of the NAS-Bench-NLP search space.

    ``hidden_states`` and ``intermediate`` set the random generator (the benchmark's PTB runs
    drew 2 and 7); ``max_states`` and ``max_nodes`` bound what :meth:`validate` accepts and
    size the token vocabulary (the benchmark's cells have at most 3 states and 21 nodes).
    """

    name = "nasbench_nlp"

    def __init__(
        self,
        hidden_states: int = 2,
        intermediate: int = 7,
        max_states: int = 3,
        max_nodes: int = 32,
    ) -> None:
        if not 1 <= hidden_states <= max_states:
            raise ValueError(f"hidden_states must be in 1..max_states={max_states}")
        if intermediate < 1:
            raise ValueError(f"intermediate must be at least 1, got {intermediate}")
        if max_nodes < hidden_states + intermediate + 1:
            raise ValueError(
                f"max_nodes={max_nodes} is below what the generator can draw "
                f"(hidden_states + intermediate + 1 = {hidden_states + intermediate + 1})"
            )
        self.hidden_states = int(hidden_states)
        self.intermediate = int(intermediate)
        self.max_states = int(max_states)
        self.max_nodes = int(max_nodes)

    # -- parsing -----------------------------------------------------------------------------
    def named(self) -> dict[str, NLPGenotype]:
        return {name: parse(recepie) for name, recepie in _NAMED.items()}

    def validate(self, obj: Any) -> NLPGenotype:
        """A recepie (a dict or its JSON string), a built-in name or a :meth:`key`."""
        if isinstance(obj, str) and obj.strip() in _NAMED:
            obj = _NAMED[obj.strip()]
        if isinstance(obj, str) and "=" in obj and not obj.lstrip().startswith("{"):
            return self.from_key(obj)
        return self._limited(parse(obj))

    def from_key(self, key: str) -> NLPGenotype:
        """The cell a :meth:`key` names (``n0=linear(h_prev_0,x);h_new_0=...``)."""
        return self._limited(from_key(key))

    def _limited(self, g: NLPGenotype) -> NLPGenotype:
        """``g`` unless it has more states or nodes than the space allows."""
        if state_size(g) > self.max_states:
            raise GenotypeError(
                f"node 'h_new_{state_size(g) - 1}': more than "
                f"max_states={self.max_states} state vectors"
            )
        if len(g) > self.max_nodes:
            raise GenotypeError(
                f"node '{g[-1][0]}': the cell has {len(g)} nodes, more than "
                f"max_nodes={self.max_nodes}"
            )
        return g

    def key(self, genotype: NLPGenotype) -> str:
        return canonical(genotype)[0]

    def to_json(self, genotype: NLPGenotype) -> dict[str, dict[str, Any]]:
        return to_recepie(genotype)

    def describe(self, genotype: NLPGenotype) -> str:
        return self.key(genotype)

    def graph(self, genotype: NLPGenotype) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The cell with its nodes named as :meth:`key` names them (``n0``, ``h_new_1``)."""
        nodes = {"x": "x"} | {f"h_prev_{i}": f"h_prev_{i}" for i in range(state_size(genotype))}
        edges = []
        for name, op, inputs in relabel(genotype, key_names(genotype)):
            nodes[name] = f"{name}: {op.removeprefix('activation_')}"
            edges += [(i, name) for i in inputs]
        return nodes, edges

    # -- random operators --------------------------------------------------------------------
    def _draw(self, rng: np.random.Generator) -> NLPGenotype | None:
        """One run of the benchmark's RecepieGenerator; None when its sanity check fails.

        Nodes ``node_<i>`` are added until ``hidden_states + intermediate`` exist. A linear
        node reads 2 or 3 of x, h_prev_* and earlier activation nodes and is always followed
        by an activation node; blend (3 inputs) and elementwise ops (2) read any earlier node
        or h_prev_*, never x. Random nodes then become h_new_*, and nodes that reach no
        output are pruned. The draw is rejected when an input is unused or an h_prev_* feeds
        an h_new_* directly.
        """
        spec = self._draw_nodes(rng)
        names = list(spec)
        keys = rng.random(len(names)).tolist()
        outs = [names[j] for j in sorted(range(len(names)), key=keys.__getitem__)]
        outs = outs[: self.hidden_states]
        hidden = [f"h_prev_{i}" for i in range(self.hidden_states)]
        # the sanity check runs before any renaming (most draws fail)
        if any(i in spec[o][1] for o in outs for i in hidden):
            return None
        live = _reached(spec, outs)
        if not live.issuperset(["x", *hidden]):
            return None
        rename = {o: f"h_new_{i}" for i, o in enumerate(outs)}
        return tuple(
            (rename.get(n, n), op, tuple(rename.get(i, i) for i in ins))
            for n, (op, ins) in spec.items()
            if n in live
        )

    def _draw_nodes(self, rng: np.random.Generator) -> _Drawn:
        """The generator's nodes ``node_<i>: (op, inputs)`` in the order drawn, before outputs.

        One numpy call draws the random numbers of many steps (speed); the first ``arity``
        entries of a random ordering of the candidates are a uniform draw without replacement.
        """
        budget = self.hidden_states + self.intermediate
        hidden = [f"h_prev_{i}" for i in range(self.hidden_states)]
        linear_sources = ["x", *hidden]
        other_sources = list(hidden)
        spec: _Drawn = {}
        rows: list[list[float]] = []
        while len(spec) < budget:
            if not rows:
                rows = rng.random((2 * budget, 4 + len(hidden) + budget)).tolist()
            row = rows.pop()
            op = _MAIN_OPS[sum(row[0] >= c for c in _MAIN_CUMULATIVE)]
            if op == "linear":
                candidates = linear_sources
                arity = min(2 + (row[1] < _LINEAR_THREE_INPUTS), len(candidates))
            else:
                candidates = other_sources
                arity = ARITY[op][0]
                if arity > len(candidates):
                    continue
            keys = row[3 : 3 + len(candidates)]
            picks = sorted(range(len(candidates)), key=keys.__getitem__)[:arity]
            name = f"node_{len(spec)}"
            spec[name] = (op, tuple(candidates[p] for p in picks))
            other_sources.append(name)
            if op == "linear":
                act = f"node_{len(spec)}"
                spec[act] = (ACTIVATION_OPS[int(row[2] * len(ACTIVATION_OPS))], (name,))
                other_sources.append(act)
                linear_sources.append(act)
        return spec

    def sample(self, rng: np.random.Generator) -> NLPGenotype:
        """The benchmark's generator, redrawn until its sanity rules hold."""
        while True:
            g = self._draw(rng)
            if g is not None and len(g) <= self.max_nodes:
                return check(g)

    def mutate(self, genotype: NLPGenotype, rng: np.random.Generator) -> NLPGenotype:
        """One local edit; keeps the generator's sanity rules when the parent met them."""
        parent_key = self.key(genotype)
        keep_sane = sane(genotype)
        for attempt in range(1024):
            kind = _MUTATIONS[int(rng.integers(len(_MUTATIONS)))] if attempt < 64 else "op"
            child = getattr(self, f"_mutate_{kind}")(genotype, rng)
            if child is None or len(child) > self.max_nodes:
                continue
            try:
                child = check(child)
            except GenotypeError:
                continue
            # Changing an op always changes the op multiset, hence the key, so after 64
            # tries only op changes are drawn and the loop ends as soon as one is possible.
            if (attempt >= 64 or not keep_sane or sane(child)) and self.key(child) != parent_key:
                return child
        raise GenotypeError(f"no mutation found for {self.key(genotype)}")

    @staticmethod
    def _mutate_op(g: NLPGenotype, rng: np.random.Generator) -> NLPGenotype | None:
        i = int(rng.integers(len(g)))
        name, op, ins = g[i]
        others = [
            o
            for o in OPS
            if o != op
            and ARITY[o][0] <= len(ins) <= ARITY[o][1]
            and (o == "linear" or "x" not in ins)
        ]
        if not others:
            return None
        new = others[int(rng.integers(len(others)))]
        return g[:i] + ((name, new, ins),) + g[i + 1 :]

    @staticmethod
    def _sources(g: NLPGenotype, exclude: set[str], op: str) -> list[str]:
        """Values a node with ``op`` may read: x (linear only), h_prev_*, nodes not excluded."""
        k = state_size(g)
        base = ["x"] * (op == "linear") + [f"h_prev_{i}" for i in range(k)]
        return base + [n for n, _, _ in g if n not in exclude]

    def _mutate_rewire(self, g: NLPGenotype, rng: np.random.Generator) -> NLPGenotype | None:
        i = int(rng.integers(len(g)))
        name, op, ins = g[i]
        slot = int(rng.integers(len(ins)))
        choices = [s for s in self._sources(g, descendants(g, name), op) if s != ins[slot]]
        if not choices:
            return None
        new_ins = ins[:slot] + (choices[int(rng.integers(len(choices)))],) + ins[slot + 1 :]
        return prune(g[:i] + ((name, op, new_ins),) + g[i + 1 :])

    def _mutate_insert(self, g: NLPGenotype, rng: np.random.Generator) -> NLPGenotype | None:
        # Put a new node on one input edge of node i: it reads the old input (plus others).
        i = int(rng.integers(len(g)))
        name, op, ins = g[i]
        slot = int(rng.integers(len(ins)))
        new_op = _MAIN_OPS[int(rng.choice(len(_MAIN_OPS), p=_MAIN_WEIGHTS))]
        if rng.random() < 0.25:
            new_op = ACTIVATION_OPS[int(rng.integers(len(ACTIVATION_OPS)))]
        if ins[slot] == "x" and new_op != "linear":
            return None
        arity = ARITY[new_op][0]
        pool = [s for s in self._sources(g, descendants(g, name), new_op) if s != ins[slot]]
        if len(pool) < arity - 1:
            return None
        extra = [pool[int(j)] for j in rng.choice(len(pool), size=arity - 1, replace=False)]
        new_ins = [ins[slot], *extra]
        rng.shuffle(new_ins)
        taken = [n for n, _, _ in g]
        new_name = fresh_name(taken)
        added = [(new_name, new_op, tuple(new_ins))]
        feed = new_name
        if new_op == "linear":
            act_name = fresh_name(taken + [new_name])
            added.append((act_name, ACTIVATION_OPS[int(rng.integers(3))], (new_name,)))
            feed = act_name
        node = (name, op, ins[:slot] + (feed,) + ins[slot + 1 :])
        return g[:i] + tuple(added) + (node,) + g[i + 1 :]

    def _mutate_delete(self, g: NLPGenotype, rng: np.random.Generator) -> NLPGenotype | None:
        # Remove an intermediate node; its readers read one of its inputs instead.
        inner = [j for j, (n, _, _) in enumerate(g) if output_index(n) is None]
        if not inner:
            return None
        j = inner[int(rng.integers(len(inner)))]
        name, _, ins = g[j]
        repl = ins[int(rng.integers(len(ins)))]
        rest = g[:j] + g[j + 1 :]
        return prune(
            tuple((n, op, tuple(repl if x == name else x for x in xs)) for n, op, xs in rest)
        )

    # -- features for pool mode ----------------------------------------------------------------
    def descriptors(self, genotype: NLPGenotype) -> dict[str, float]:
        """Paths, recurrence and op counts of the graph (:mod:`search_spaces.
        nasbench_nlp_structure`), ``input_delay`` and ``input_gated`` among them."""
        return structure.descriptors(genotype)

    def features(self, genotype: NLPGenotype) -> np.ndarray:
        """Op counts, edge-type counts (source kind -> op) and the state size."""
        kinds = ["x", "h_prev", *OPS]
        pos = {k: i for i, k in enumerate(kinds)}
        ops = {n: op for n, op, _ in genotype}
        counts = np.zeros(len(OPS))
        edges = np.zeros((len(kinds), len(OPS)))
        for _, op, ins in genotype:
            counts[OPS.index(op)] += 1
            for i in ins:
                src = "x" if i == "x" else "h_prev" if is_state_input(i) else ops[i]
                edges[pos[src], OPS.index(op)] += 1
        return np.concatenate([counts, edges.ravel(), [state_size(genotype)]])

    # -- tokens --------------------------------------------------------------------------------
    def vocabulary(self) -> list[str]:
        return (
            [f"op_{op}" for op in OPS]
            + ["in_x"]
            + [f"in_h{i}" for i in range(self.max_states)]
            + [f"in_n{j}" for j in range(self.max_nodes)]
            + ["out_none"]
            + [f"out_{i}" for i in range(self.max_states)]
        )

    def _tokens_in_order(self, genotype: NLPGenotype, order: Sequence[str]) -> list[str]:
        spec = {n: (op, ins) for n, op, ins in genotype}
        pos = {n: j for j, n in enumerate(order)}

        def ref(i: str) -> tuple[int, int, str]:
            if i == "x":
                return 0, 0, "in_x"
            if i in pos:
                return 2, pos[i], f"in_n{pos[i]}"
            j = int(i.removeprefix("h_prev_"))
            return 1, j, f"in_h{j}"

        out: list[str] = []
        for n in order:
            op, ins = spec[n]
            refs = [ref(i) for i in ins]
            if op in COMMUTATIVE:
                refs.sort()
            k = output_index(n)
            out += [f"op_{op}", *(r[2] for r in refs), "out_none" if k is None else f"out_{k}"]
        return out

    def tokens(self, genotype: NLPGenotype) -> list[str]:
        """Per node in canonical topological order: ``op_<op>``, its inputs, ``out_<i|none>``.

        Inputs are ``in_x``, ``in_h<i>`` (h_prev_i) or ``in_n<j>`` (the j-th node of the
        sequence); inputs of commutative ops are sorted, blend's keep their order.
        """
        return self._tokens_in_order(genotype, self._canonical_topo(genotype))

    def _canonical_topo(
        self, genotype: NLPGenotype, rng: np.random.Generator | None = None
    ) -> list[str]:
        """Kahn's order taking the canonically first ready node (or a random one with rng)."""
        rank = {n: r for r, n in enumerate(canonical(genotype)[1])}
        spec = {n: ins for n, _, ins in genotype}
        waiting = {n: {i for i in ins if i in spec} for n, ins in spec.items()}
        order: list[str] = []
        while waiting:
            ready = sorted((n for n, deps in waiting.items() if not deps), key=rank.__getitem__)
            n = ready[0] if rng is None else ready[int(rng.integers(len(ready)))]
            order.append(n)
            del waiting[n]
            for deps in waiting.values():
                deps.discard(n)
        return order

    def from_tokens(self, tokens: Sequence[str]) -> NLPGenotype:
        nodes: list[tuple[str, str, list[str]]] = []
        names: list[str] = []
        current: list[Any] | None = None
        for t in tokens:
            where = f"token {len(nodes)}"
            if t.startswith("op_"):
                if current is not None:
                    raise GenotypeError(f"{where}: '{t}' before the previous node's out_ token")
                current = [t[3:], []]
            elif current is None:
                raise GenotypeError(f"{where}: '{t}' outside a node (expected op_<op>)")
            elif t.startswith("in_"):
                ref = t[3:]
                if ref == "x":
                    current[1].append("x")
                elif ref.startswith("h") and ref[1:].isdigit():
                    current[1].append(f"h_prev_{ref[1:]}")
                elif ref.startswith("n") and ref[1:].isdigit() and int(ref[1:]) < len(names):
                    current[1].append(names[int(ref[1:])])
                else:
                    raise GenotypeError(f"{where}: '{t}' refers to no earlier node")
            elif t.startswith("out_"):
                name = f"node_{len(nodes)}" if t == "out_none" else f"h_new_{t[4:]}"
                names.append(name)
                nodes.append((name, current[0], current[1]))
                current = None
            else:
                raise GenotypeError(f"{where}: unknown token '{t}'")
        if current is not None:
            raise GenotypeError("the last node has no out_ token")
        return self.validate({n: {"op": op, "input": ins} for n, op, ins in nodes})

    def equivalent_tokens(self, genotype: NLPGenotype, limit: int = 8) -> list[list[str]]:
        """The canonical sequence, then other topological orders (at most ``limit`` in all)."""
        seqs = [self.tokens(genotype)]
        seen = {tuple(seqs[0])}
        rng = np.random.default_rng(zlib.crc32(self.key(genotype).encode()))
        for _ in range(4 * limit):
            if len(seqs) >= limit:
                break
            seq = self._tokens_in_order(genotype, self._canonical_topo(genotype, rng))
            if tuple(seq) not in seen:
                seen.add(tuple(seq))
                seqs.append(seq)
        return seqs

    # -- cell ----------------------------------------------------------------------------------
    def build_cell(
        self, genotype: NLPGenotype, input_size: int, hidden_size: int
    ) -> NasBenchNLPCell:
        return NasBenchNLPCell(genotype, input_size, hidden_size)

    def build_cell_batch(
        self,
        genotypes: Sequence[NLPGenotype],
        input_size: int,
        hidden_size: int,
        seed: int | None = None,
    ) -> NasBenchNLPCellBatch:
        """All motifs in one batched computation (the Petri dish's inner loop)."""
        return NasBenchNLPCellBatch(genotypes, input_size, hidden_size, seed=seed)
