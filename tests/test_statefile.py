"""State trees as data: exact round trips, refusals naming the value, and every registered
surrogate's fitted state stored and restored without pickle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from surrogate_helpers import synthetic, unique_sample

from evo_nas_common import statefile
from evo_nas_common.statefile import StateError
from search_spaces import get_space
from surrogates import SURROGATES


def test_a_tree_round_trips_exactly():
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    tree = {
        "ints": [0, -1, 2**70],
        "floats": [0.1, -0.0, 1e300, math.inf, -math.inf, math.nan],
        "text": "x\n\u00e9",
        "flags": [True, False, None],
        "nested": {"a": [{"b": []}], "c": {}},
        "f32": np.linspace(0, 1, 7, dtype=np.float32),
        "f16": np.array([1.5, -2.25], dtype=np.float16),
        "u8": np.arange(256, dtype=np.uint8),
        "bool": np.array([[True, False]]),
        "scalar": np.array(3.25),
        "empty": np.zeros((0, 4)),
        "strided": np.arange(20.0).reshape(4, 5)[:, ::2],
        "big_endian": big_endian,
    }
    back = statefile.loads(statefile.dumps(tree))
    assert back.keys() == tree.keys()
    assert back["ints"] == tree["ints"] and all(type(v) is int for v in back["ints"])
    assert [repr(v) for v in back["floats"]] == [repr(v) for v in tree["floats"]]
    assert back["text"] == tree["text"] and back["flags"] == tree["flags"]
    assert back["nested"] == tree["nested"]
    for name in ("f32", "f16", "u8", "bool", "scalar", "empty", "strided", "big_endian"):
        assert back[name].dtype == tree[name].dtype, name
        assert back[name].shape == tree[name].shape, name
        np.testing.assert_array_equal(back[name], tree[name])
        assert back[name].flags.writeable
    assert b"NaN" not in statefile.dumps(tree)  # strict JSON: tags, not NaN/Infinity tokens
    assert statefile.loads(statefile.dumps({"t": (1, (2.5, "x"))})) == {"t": [1, [2.5, "x"]]}


@pytest.mark.parametrize(
    "value, where",
    [
        (torch.zeros(2), "state['a']: a torch.Tensor"),
        (np.int64(3), "state['a']: a numpy.int64"),
        (np.array(["x"]), "state['a']: numpy arrays of dtype <U1"),
        (np.array([object()]), "state['a']: numpy arrays of dtype object"),
        ({1: "x"}, "state['a']: key 1 is not a string"),
        ({"$array": 1}, "state['a']: key '$array' starts with '$'"),
        ([{1, 2}], "state['a'][0]: a set"),
        (lambda: 0, "state['a']: a function"),
    ],
)
def test_anything_else_is_refused_naming_where_it_is(value, where):
    with pytest.raises(StateError) as err:
        statefile.dumps({"a": value})
    assert str(err.value).startswith(where), err.value


def _array_record(**spec) -> bytes:
    full = {"dtype": "<f8", "shape": [2], "base64": "AAAAAAAA8D8AAAAAAAAAQA==", **spec}
    import json

    return json.dumps({"x": {"$array": full}}).encode()


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (b"\x80\x04\x95\x00garbage", "not UTF-8 text"),
        (b'{"a": [1, 2', "not valid JSON"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"x": {"$float": "huge"}}', "unknown record '$float'"),
        (b'{"x": {"$array": 1, "y": 2}}', "a tagged record holds one key"),
        (b'{"x": {"$code": "os.system"}}', "unknown record '$code'"),
        (_array_record(dtype="O"), "array dtype object is not allowed"),
        (_array_record(dtype=[["a", "<f8"]]), "unknown array dtype"),
        (_array_record(dtype=None), "unknown array dtype"),
        (_array_record(dtype="M8"), "array dtype datetime64 is not allowed"),
        (_array_record(dtype="nonsense"), "unknown array dtype"),
        (_array_record(shape=[3]), "holds 16 bytes, shape [3] of float64 needs 24"),
        (_array_record(shape=[-2]), "is not a list of sizes"),
        (_array_record(base64="!!!"), "not valid base64"),
        (_array_record(extra=1), "malformed array record"),
    ],
)
def test_a_damaged_file_is_one_line_naming_the_problem(data, problem):
    with pytest.raises(StateError) as err:
        statefile.loads(data)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_a_good_array_record_reads():
    np.testing.assert_array_equal(statefile.loads(_array_record())["x"], [1.0, 2.0])


# -- every registered surrogate -----------------------------------------------------------------
# (space, options, training cells): small enough to fit in a second or so; a surrogate
# registered without a recipe here fails the test rather than being skipped
RECIPES: dict[str, list[tuple[str, dict, int]]] = {
    "random": [("darts_rnn", {}, 12)],
    "params": [("darts_rnn", {"ref_size": 8}, 12)],
    "forest": [
        ("darts_rnn", {"n_estimators": 10}, 12),
        ("darts_rnn", {"model": "gradient_boosting", "n_estimators": 10}, 12),
    ],
    "nao": [("darts_rnn", {"embedding": 16, "hidden": 16, "mlp_hidden": 16, "epochs": 3}, 12)],
    "spd": [
        (
            "darts_rnn",
            dict(
                device="cpu",
                dish=dict(
                    kind="rnn",
                    dishes=2,
                    samples=4,
                    val_samples=4,
                    steps=4,
                    dims=4,
                    input_size=4,
                    hidden_size=4,
                    inner_steps=3,
                    meta_steps=2,
                ),
            ),
            8,
        ),
        (
            "sigmoid_slope",
            dict(device="cpu", dish=dict(kind="mlp", dishes=2, inner_steps=10, meta_steps=2)),
            8,
        ),
    ],
}


@pytest.mark.parametrize("name", SURROGATES.names())
def test_every_registered_surrogate_state_round_trips(name):
    assert name in RECIPES, f"add a small-fit recipe for surrogate '{name}' to RECIPES"
    for space_name, options, n in RECIPES[name]:
        space = get_space(space_name, **({"nodes": 4} if space_name == "darts_rnn" else {}))
        if space_name == "darts_rnn":
            cells = unique_sample(space, n, seed=0)
            y = [synthetic(space, g) for g in cells]
        else:
            cells = [0.2 + 0.2 * i for i in range(n)]
            y = [(c - 1.0) ** 2 for c in cells]
        y[1] = math.inf  # a diverged cell among them
        fitted = SURROGATES.create(name, space=space, seed=1, **options).fit(cells, y)
        state = statefile.loads(statefile.dumps(fitted.state_dict()))
        fresh = SURROGATES.create(name, space=space, seed=1, **options)
        fresh.load_state_dict(state)
        probe = cells + (unique_sample(space, 5, seed=9) if space_name == "darts_rnn" else [1.9])
        np.testing.assert_array_equal(fresh.predict(probe), fitted.predict(probe), err_msg=name)
