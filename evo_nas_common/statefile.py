"""State kept on disk as data: trees of plain values and numpy arrays, written as JSON.

A *state tree* is a dict (string keys), list, str, int, float, bool or None, or a numpy array
of booleans, integers or floats, nested in any way: what ``Surrogate.state_dict()`` returns,
and what the run checkpoint and the NAS-Bench-NLP parse cache hold. :func:`dumps` refuses
anything else (a tensor, a numpy scalar, a set, an estimator object), naming where it sits,
so that nothing needs code to be read back: :func:`loads` only parses JSON and decodes arrays
from base64 with an explicit numeric dtype. Arrays keep their dtype, shape and bytes; floats
(``inf`` and ``nan`` included) come back exactly; a tuple comes back as a list, as in JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

#: array dtypes a state may hold: booleans, signed and unsigned integers, floats
ARRAY_KINDS = "biuf"
_ARRAY = "$array"
_FLOAT = "$float"
_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class StateError(ValueError):
    """A value that cannot be stored as a state tree, or a file that is not one."""


def _float_name(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


#: where a value sits while encoding: (parent, key), formatted only for an error message
_Where = tuple[Any, Any]


def _name(where: _Where | str) -> str:
    keys = []
    while isinstance(where, tuple):
        where, key = where
        keys.append(f"[{key!r}]")
    return where + "".join(reversed(keys))


def _encode(tree: Any, where: _Where | str) -> Any:
    kind = type(tree)
    if kind is str or kind is bool or kind is int or tree is None:
        return tree
    if kind is float:
        return tree if math.isfinite(tree) else {_FLOAT: _float_name(tree)}
    if kind is dict:
        out = {}
        for k, v in tree.items():
            if type(k) is not str:
                raise StateError(f"{_name(where)}: key {k!r} is not a string")
            if k.startswith("$"):
                raise StateError(f"{_name(where)}: key {k!r} starts with '$' (reserved)")
            out[k] = _encode(v, (where, k))
        return out
    if kind is list or kind is tuple:
        return [_encode(v, (where, i)) for i, v in enumerate(tree)]
    if isinstance(tree, np.ndarray):
        if tree.dtype.kind not in ARRAY_KINDS or tree.dtype.fields is not None:
            raise StateError(f"{_name(where)}: numpy arrays of dtype {tree.dtype} cannot be stored")
        data = np.ascontiguousarray(tree).tobytes()
        return {
            _ARRAY: {
                "dtype": tree.dtype.str,
                "shape": list(tree.shape),
                "base64": base64.b64encode(data).decode("ascii"),
            }
        }
    # subclasses of the plain types (numpy.float64 is a float, an IntEnum an int) as their base
    for base in (bool, int, float, str):
        if isinstance(tree, base):
            return _encode(base(tree), where)
    for base in (dict, list, tuple):
        if isinstance(tree, base):
            return _encode(base(tree), where)
    name = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    raise StateError(
        f"{_name(where)}: a {name} cannot be stored (a state holds dicts with string keys, "
        "lists, tuples, str, int, float, bool, None and numpy arrays)"
    )


def encode(tree: Any, where: str = "state") -> Any:
    """``tree`` as a JSON value: arrays as base64 records, non-finite floats as tags;
    :class:`StateError` names the first value that cannot be stored (``where`` is its root)."""
    return _encode(tree, where)


def _decode_array(spec: Any, where: str) -> np.ndarray:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "base64"}:
        raise StateError(f"{where}: malformed array record")
    try:
        if not isinstance(spec["dtype"], str):
            raise TypeError
        dtype = np.dtype(spec["dtype"])
    except (TypeError, ValueError):
        raise StateError(f"{where}: unknown array dtype {spec['dtype']!r}") from None
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise StateError(f"{where}: array dtype {dtype} is not allowed")
    shape = spec["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise StateError(f"{where}: array shape {shape!r} is not a list of sizes")
    if not isinstance(spec["base64"], str):
        raise StateError(f"{where}: array data is not a base64 string")
    try:
        data = base64.b64decode(spec["base64"], validate=True)
    except (binascii.Error, ValueError):
        raise StateError(f"{where}: array data is not valid base64") from None
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise StateError(
            f"{where}: array data holds {len(data)} bytes, shape {shape} of {dtype} needs "
            f"{math.prod(shape) * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def decode(value: Any, where: str = "state") -> Any:
    """Inverse of :func:`encode`; a malformed record is a :class:`StateError`."""
    if isinstance(value, dict):
        if any(k.startswith("$") for k in value):
            if len(value) != 1:
                raise StateError(f"{where}: a tagged record holds one key, got {sorted(value)}")
            ((tag, spec),) = value.items()
            if tag == _ARRAY:
                return _decode_array(spec, where)
            if tag == _FLOAT and spec in _NONFINITE:
                return _NONFINITE[spec]
            raise StateError(f"{where}: unknown record {tag!r}: {spec!r}")
        return {k: decode(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _refuse_constant(name: str) -> None:
    raise StateError(f"{name} is not valid JSON")


def dumps_encoded(value: Any) -> bytes:
    """An :func:`encode`-d value as compact JSON bytes."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()


def dumps(tree: Any, where: str = "state") -> bytes:
    """``tree`` as JSON bytes; raises :class:`StateError` naming the first unstorable value."""
    return dumps_encoded(encode(tree, where))


def loads_encoded(data: bytes) -> Any:
    """JSON bytes parsed, still encoded; any problem is one line in a :class:`StateError`."""
    if not data.strip():
        raise StateError("empty file")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise StateError("not UTF-8 text (binary data?)") from None
    except json.JSONDecodeError as e:
        raise StateError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise StateError("nested too deeply") from None


def loads(data: bytes) -> Any:
    """The state tree that :func:`dumps` wrote."""
    try:
        return decode(loads_encoded(data))
    except RecursionError:
        raise StateError("nested too deeply") from None
