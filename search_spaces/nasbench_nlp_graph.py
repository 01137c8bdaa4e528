"""NAS-Bench-NLP cell graphs as values: parsing, checking and canonical labelling.

A cell is a ``recepie``: ``node_name -> {"op": ..., "input": [names]}`` over the inputs ``x``
and ``h_prev_<i>``, with outputs ``h_new_0 .. h_new_<k-1>``. Here it is held as an immutable
tuple of ``(name, op, inputs)`` in the order given, so it is hashable and round-trips to the
benchmark's JSON unchanged. The canonical key names intermediate nodes by a colour-refinement
labelling (Weisfeiler-Lehman with individualisation), so renaming them never changes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

from search_spaces.base import GenotypeError

Node = tuple[str, str, tuple[str, ...]]
NLPGenotype = tuple[Node, ...]

ACTIVATION_OPS = ("activation_tanh", "activation_sigm", "activation_leaky_relu")
#: inclusive (min, max) number of inputs per op, as the benchmark's generator drew them
ARITY: dict[str, tuple[int, int]] = {
    "linear": (2, 3),
    "blend": (3, 3),
    "elementwise_prod": (2, 2),
    "elementwise_sum": (2, 2),
    **{a: (1, 1) for a in ACTIVATION_OPS},
}
OPS = tuple(ARITY)
#: ops whose value does not depend on the order of their inputs (blend's gate is ordered)
COMMUTATIVE = frozenset({"linear", "elementwise_prod", "elementwise_sum"})


def _suffix(name: str, prefix: str) -> int | None:
    """``i`` for ``<prefix><i>`` with ``i`` written in plain decimal, otherwise None."""
    if name.startswith(prefix):
        tail = name[len(prefix) :]
        if tail.isascii() and tail.isdigit() and str(int(tail)) == tail:
            return int(tail)
    return None


def prev_index(name: str) -> int | None:
    """``i`` for ``h_prev_<i>``, otherwise None."""
    return _suffix(name, "h_prev_")


def is_state_input(name: str) -> bool:
    """``x`` or ``h_prev_<i>``: a value the cell receives rather than computes."""
    return name == "x" or prev_index(name) is not None


def output_index(name: str) -> int | None:
    """``i`` for ``h_new_<i>``, otherwise None."""
    return _suffix(name, "h_new_")


def state_size(genotype: NLPGenotype) -> int:
    """Number of state vectors (``h_new_*`` nodes) of a valid genotype."""
    return sum(output_index(name) is not None for name, _, _ in genotype)


def parse(obj: Any) -> NLPGenotype:
    """Turn a recepie dict, its JSON string or a genotype tuple into a checked genotype."""
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"recepie is not valid JSON ({e.msg} at char {e.pos})") from None
    if isinstance(obj, tuple):
        return check(obj)
    if not isinstance(obj, dict):
        raise GenotypeError(f"expected a recepie dict or its JSON string, got {type(obj).__name__}")
    nodes = []
    for name, spec in obj.items():
        if not isinstance(name, str):
            raise GenotypeError(f"node {name!r}: node names must be strings")
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("op"), str)
            or not isinstance(spec.get("input"), (list, tuple))
            or not all(isinstance(i, str) for i in spec["input"])
        ):
            raise GenotypeError(f"node '{name}': expected {{'op': str, 'input': [names]}}")
        nodes.append((name, spec["op"], tuple(spec["input"])))
    return check(tuple(nodes))


def check(genotype: NLPGenotype) -> NLPGenotype:
    """Raise :class:`GenotypeError` naming the node at fault unless ``genotype`` is a cell."""
    names = [n for n, _, _ in genotype]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise GenotypeError(f"node '{name}': defined twice")
        if is_state_input(name):
            raise GenotypeError(f"node '{name}': '{name}' is a cell input and cannot be computed")
        seen.add(name)
    outputs = sorted(i for i in (output_index(n) for n in names) if i is not None)
    if 0 not in outputs:
        raise GenotypeError("missing output node 'h_new_0'")
    for want, have in enumerate(outputs):
        if want != have:
            raise GenotypeError(
                f"node 'h_new_{have}': outputs must be numbered without gaps "
                f"(h_new_{want} is missing)"
            )
    k = len(outputs)
    for name, op, inputs in genotype:
        if op not in ARITY:
            raise GenotypeError(f"node '{name}': unknown op '{op}' (known: {', '.join(OPS)})")
        lo, hi = ARITY[op]
        if not lo <= len(inputs) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise GenotypeError(f"node '{name}': op '{op}' takes {want} inputs, got {len(inputs)}")
        if op != "linear" and "x" in inputs:
            raise GenotypeError(
                f"node '{name}': op '{op}' cannot read x (only linear nodes map x to the "
                "hidden size)"
            )
        for i in inputs:
            p = prev_index(i)
            if i in seen or i == "x" or (p is not None and p < k):
                continue
            if p is not None:
                raise GenotypeError(
                    f"node '{name}': input '{i}' has no matching output (the cell has {k} "
                    f"state vector{'s' if k > 1 else ''})"
                )
            raise GenotypeError(f"node '{name}': input '{i}' is not defined")
    topological_order(genotype)
    live = _reaching_outputs(genotype)
    for name in names:
        if name not in live:
            raise GenotypeError(f"node '{name}': does not reach any h_new_* output")
    return genotype


def topological_order(genotype: NLPGenotype) -> list[str]:
    """Computed node names, inputs first; raises :class:`GenotypeError` naming a cycle."""
    spec = {n: inputs for n, _, inputs in genotype}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for i in spec[n]:
            if i not in spec:
                continue
            if state.get(i) == 1:
                cycle = path[path.index(i) :] + [i]
                raise GenotypeError(f"node '{i}': cycle {' -> '.join(cycle)}")
            if i not in state:
                visit(i, path + [i])
        state[n] = 2
        order.append(n)

    for n, _, _ in genotype:
        if n not in state:
            visit(n, [n])
    return order


def _reaching_outputs(genotype: NLPGenotype) -> set[str]:
    spec = {n: inputs for n, _, inputs in genotype}
    live: set[str] = set()
    stack = [n for n in spec if output_index(n) is not None]
    while stack:
        n = stack.pop()
        if n in live or n not in spec:
            continue
        live.add(n)
        stack.extend(spec[n])
    return live


def prune(genotype: NLPGenotype) -> NLPGenotype:
    """Drop the nodes that do not reach an output (as the benchmark's generator did)."""
    live = _reaching_outputs(genotype)
    return tuple(node for node in genotype if node[0] in live)


def to_recepie(genotype: NLPGenotype) -> dict[str, dict[str, Any]]:
    """The benchmark's JSON form."""
    return {name: {"op": op, "input": list(inputs)} for name, op, inputs in genotype}


# -- canonical labelling ---------------------------------------------------------------------


def _ranks(values: list[Any]) -> list[int]:
    order = {v: r for r, v in enumerate(sorted(set(values)))}
    return [order[v] for v in values]


class _IndexedCell(NamedTuple):
    """A cell's nodes by index: the inputs ``x``, ``h_prev_*`` first, then the computed ones."""

    names: list[str]
    ops: list[str]  # ``<x>`` and ``<h_prev>`` for the inputs
    inputs: list[tuple[int, ...]]
    consumers: list[list[tuple[int, int]]]  # (consumer, input slot or -1 where commutative)
    n_in: int


def _indexed(genotype: NLPGenotype) -> _IndexedCell:
    """The nodes of a valid genotype by index, with the nodes that read each one."""
    k = state_size(genotype)
    names = ["x"] + [f"h_prev_{i}" for i in range(k)] + [n for n, _, _ in genotype]
    index = {n: i for i, n in enumerate(names)}
    n_in = 1 + k
    ops = ["<x>"] + ["<h_prev>"] * k + [op for _, op, _ in genotype]
    inputs = [()] * n_in + [tuple(index[i] for i in ins) for _, _, ins in genotype]
    consumers: list[list[tuple[int, int]]] = [[] for _ in names]
    for v, ins in enumerate(inputs):
        for slot, u in enumerate(ins):
            consumers[u].append((v, slot if ops[v] not in COMMUTATIVE else -1))
    return _IndexedCell(names, ops, inputs, consumers, n_in)


def _refine(cell: _IndexedCell, colours: list[int]) -> list[int]:
    """Refine ``colours`` by the colours of inputs and consumers until no class splits."""
    n_classes = len(set(colours))
    while True:
        sigs = []
        for v in range(len(cell.names)):
            ins = [colours[u] for u in cell.inputs[v]]
            if cell.ops[v] in COMMUTATIVE:
                ins.sort()
            outs = sorted((colours[c], s) for c, s in cell.consumers[v])
            sigs.append((colours[v], tuple(ins), tuple(outs)))
        colours = _ranks(sigs)
        if len(set(colours)) == n_classes:
            return colours
        n_classes = len(set(colours))


def _serialise(cell: _IndexedCell, colours: list[int]) -> tuple[str, tuple[str, ...]]:
    """The key and node order of the cell with computed nodes ordered by ``colours``.

    Intermediate nodes are renamed ``n0, n1, ...`` in that order; fixed names stay.
    """
    names, n_in = cell.names, cell.n_in
    computed = sorted(range(n_in, len(names)), key=lambda v: colours[v])
    rename = dict(enumerate(names[:n_in]))
    j = 0
    for v in computed:
        if output_index(names[v]) is None:
            rename[v] = f"n{j}"
            j += 1
        else:
            rename[v] = names[v]
    parts = []
    for v in computed:
        ins = [rename[u] for u in cell.inputs[v]]
        if cell.ops[v] in COMMUTATIVE:
            ins.sort()
        parts.append(f"{rename[v]}={cell.ops[v]}({','.join(ins)})")
    return ";".join(parts), tuple(names[v] for v in computed)


def _search(cell: _IndexedCell, colours: list[int]) -> tuple[str, tuple[str, ...]]:
    """The smallest serialisation over the ways of individualising the first tied class."""
    colours = _refine(cell, colours)
    counts: dict[int, list[int]] = {}
    for v, c in enumerate(colours):
        counts.setdefault(c, []).append(v)
    tied = [vs for c, vs in sorted(counts.items()) if len(vs) > 1]
    if not tied:
        return _serialise(cell, colours)
    best = None
    for v in tied[0]:
        trial = [2 * c + (1 if u == v else 0) for u, c in enumerate(colours)]
        got = _search(cell, trial)
        if best is None or got[0] < best[0]:
            best = got
    assert best is not None
    return best


@lru_cache(maxsize=65536)
def canonical(genotype: NLPGenotype) -> tuple[str, tuple[str, ...]]:
    """``(key, canonical order of computed nodes)`` of a valid genotype.

    Fixed names (``x``, ``h_prev_*``, ``h_new_*``) and ops seed the colours; refinement adds
    the colours of inputs (ordered for blend, as a multiset otherwise) and of consumers (with
    the input slot for blend). Ties left over are broken by trying each member of the first
    tied class and keeping the smallest serialisation, so the key is exact, not a hash.
    """
    cell = _indexed(genotype)
    labels = cell.names[: cell.n_in] + [
        f"{op}@{n}" if output_index(n) is not None else op for n, op, _ in genotype
    ]
    return _search(cell, _ranks(labels))


def key(genotype: NLPGenotype) -> str:
    """The canonical key of a valid genotype."""
    return canonical(genotype)[0]


def key_names(genotype: NLPGenotype) -> dict[str, str]:
    """Each intermediate node's name in the canonical key (``node_3`` -> ``n0``), so that a
    drawing names the nodes as the key printed beside it does."""
    order = [n for n in canonical(genotype)[1] if output_index(n) is None]
    return {n: f"n{j}" for j, n in enumerate(order)}


#: one node of a key: ``name=op(input,input)``
_KEY_NODE = re.compile(r"^\s*(\w+)\s*=\s*(\w+)\s*\(([\w\s,]*)\)\s*$")


def from_key(text: str) -> NLPGenotype:
    """The checked genotype a :func:`key` writes (``n0=linear(h_prev_0,x);h_new_0=...``),
    its nodes in an order that computes every input first."""
    nodes = []
    for i, part in enumerate(text.strip().split(";"), start=1):
        m = _KEY_NODE.match(part)
        if m is None:
            raise GenotypeError(f"key: part {i} '{part.strip()[:40]}' is not name=op(inputs)")
        inputs = tuple(x.strip() for x in m.group(3).split(",")) if m.group(3).strip() else ()
        nodes.append((m.group(1), m.group(2), inputs))
    genotype = check(tuple(nodes))
    by_name = {node[0]: node for node in genotype}
    return tuple(by_name[n] for n in topological_order(genotype))


def relabel(genotype: NLPGenotype, names: dict[str, str]) -> NLPGenotype:
    """The same cell with intermediate nodes renamed by ``names`` (others kept)."""
    return tuple(
        (names.get(n, n), op, tuple(names.get(i, i) for i in ins)) for n, op, ins in genotype
    )


def descendants(genotype: NLPGenotype, name: str) -> set[str]:
    """Nodes whose value depends on ``name`` (including ``name``)."""
    consumers: dict[str, list[str]] = {}
    for n, _, ins in genotype:
        for i in ins:
            consumers.setdefault(i, []).append(n)
    out: set[str] = set()
    stack = [name]
    while stack:
        n = stack.pop()
        if n not in out:
            out.add(n)
            stack.extend(consumers.get(n, []))
    return out


def used_inputs(genotype: NLPGenotype) -> set[str]:
    """The cell inputs (``x``, ``h_prev_*``) that some node reads."""
    return {i for _, _, ins in genotype for i in ins if is_state_input(i)}


def sane(genotype: NLPGenotype) -> bool:
    """The benchmark generator's extra rules: every input used, no h_prev_* -> h_new_* edge."""
    k = state_size(genotype)
    if used_inputs(genotype) != {"x"} | {f"h_prev_{i}" for i in range(k)}:
        return False
    return not any(
        output_index(n) is not None and any(prev_index(i) is not None for i in ins)
        for n, _, ins in genotype
    )


def fresh_name(taken: Iterable[str]) -> str:
    """A ``node_<i>`` name not in ``taken``."""
    taken = set(taken)
    i = 0
    while f"node_{i}" in taken:
        i += 1
    return f"node_{i}"
