"""What a NAS-Bench-NLP cell's graph says about it before any training: named descriptors.

Paths through the graph decide what a language model can learn at all. A cell whose output
cannot see the current word (``input_delay`` > 0: the input reaches ``h_new_0`` only through a
state, a step later) is nearly a unigram model, whatever its weights; an input gated by a
product or a blend on its way to the output (``input_gated``) is the LSTM's and GRU's device.
The other descriptors count operations and measure the recurrence (how many linear maps and
squashing activations a state passes through from one step to the next, whether it can be
carried unchanged, whether the states stay bounded): facts a read-out can weigh once it has
seen a few trained cells. Everything is read off the graph, in microseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from search_spaces.nasbench_nlp_graph import NLPGenotype, state_size, topological_order

#: what a path length is capped at (unreachable, or longer than any generated cell)
_FAR = 9
_SQUASH = ("activation_tanh", "activation_sigm")
_GATES = ("elementwise_prod", "blend")
_OPS = {
    "linear": "linear",
    "blend": "blend",
    "elementwise_prod": "prod",
    "elementwise_sum": "sum",
    "activation_tanh": "tanh",
    "activation_sigm": "sigm",
    "activation_leaky_relu": "leaky_relu",
}

Spec = dict[str, tuple[str, tuple[str, ...]]]


def _cheapest(
    spec: Spec,
    order: list[str],
    source: str,
    cost: Callable[[str], int],
    allowed: Callable[[str, int], bool] = lambda op, arg: True,
) -> dict[str, int]:
    """The least total ``cost`` of the ops on a path from ``source`` to every node it
    reaches (through the arguments ``allowed`` lets pass)."""
    best = {source: 0}
    for n in order:
        op, ins = spec[n]
        reached = [best[i] + cost(op) for a, i in enumerate(ins) if i in best and allowed(op, a)]
        if reached:
            best[n] = min(reached)
    return best


def _input_delay(spec: Spec, order: list[str], states: int) -> int:
    """Steps before the current input can reach ``h_new_0`` (0: it does at once)."""
    reach = {s: _cheapest(spec, order, s, lambda op: 0) for s in ["x", *_prev(states)]}
    delay = {j: 0 for j in range(states) if f"h_new_{j}" in reach["x"]}
    queue = deque(delay)
    while queue:
        j = queue.popleft()
        for k in range(states):
            if k not in delay and f"h_new_{k}" in reach[f"h_prev_{j}"]:
                delay[k] = delay[j] + 1
                queue.append(k)
    return delay.get(0, _FAR)


def _prev(states: int) -> list[str]:
    return [f"h_prev_{i}" for i in range(states)]


def _recurrence(spec: Spec, order: list[str], states: int) -> dict[str, float]:
    """How each state reaches its own next value: the fewest linear maps and squashing
    activations on the way, and whether it can be carried through gates and sums alone."""
    linear, squash, carried = _FAR, _FAR, 0
    for i in range(states):
        own = f"h_new_{i}"
        linear = min(linear, _cheapest(spec, order, f"h_prev_{i}", _is("linear")).get(own, _FAR))
        squash = min(squash, _cheapest(spec, order, f"h_prev_{i}", _is(*_SQUASH)).get(own, _FAR))
        carry = _cheapest(
            spec,
            order,
            f"h_prev_{i}",
            lambda op: 0 if op in (*_GATES, "elementwise_sum") else 1,
            allowed=lambda op, arg: not (op == "blend" and arg == 0),  # not as the gate
        )
        carried = max(carried, int(carry.get(own, _FAR) == 0))
    return {
        "recurrence_linear_steps": min(linear, _FAR),
        "recurrence_squash_steps": min(squash, _FAR),
        "recurrence_carried": carried,
    }


def _is(*ops: str) -> Callable[[str], int]:
    return lambda op: 1 if op in ops else 0


def _bounded(spec: Spec, order: list[str], states: int) -> dict[str, bool]:
    """Which values stay bounded at every step: a fixpoint over the states, squashing
    activations bounded, linear maps and leaky ReLUs not, other ops as their inputs."""
    previous = dict.fromkeys(range(states), True)
    for _ in range(states + 2):
        bounded = {"x": False, **{f"h_prev_{i}": previous[i] for i in range(states)}}
        for n in order:
            op, ins = spec[n]
            if op in _SQUASH:
                bounded[n] = True
            elif op in ("linear", "activation_leaky_relu"):
                bounded[n] = False
            else:
                bounded[n] = all(bounded[i] for i in ins)
        now = {i: bounded[f"h_new_{i}"] for i in range(states)}
        if now == previous:
            break
        previous = now
    return bounded


def descriptors(genotype: NLPGenotype) -> dict[str, float]:
    """The cell's named descriptors (see the module docstring)."""
    spec: Spec = {n: (op, tuple(ins)) for n, op, ins in genotype}
    order = topological_order(genotype)
    states = state_size(genotype)
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = 1 + max((depth.get(i, 0) for i in spec[n][1]), default=0)
    gated = _cheapest(spec, order, "x", lambda op: -1 if op in _GATES else 0)
    bounded = _bounded(spec, order, states)
    out_op = spec["h_new_0"][0]
    reads = [i for n in spec for i in spec[n][1]]
    return {
        **{f"ops_{short}": sum(op == o for op, _ in spec.values()) for o, short in _OPS.items()},
        "nodes": len(spec),
        "states": states,
        "depth": depth["h_new_0"],
        "input_delay": _input_delay(spec, order, states),
        "input_linear_steps": min(
            _cheapest(spec, order, "x", _is("linear")).get("h_new_0", _FAR), _FAR
        ),
        "input_gated": int(gated.get("h_new_0", 0) < 0),
        **_recurrence(spec, order, states),
        "output_bounded": int(bounded["h_new_0"]),
        "states_bounded": int(all(bounded[f"h_new_{i}"] for i in range(states))),
        "state_reads": sum(i.startswith("h_prev") for i in reads),
        "input_reads": sum(i == "x" for i in reads),
        **{f"output_{short}": int(out_op == o) for o, short in _OPS.items()},
    }
