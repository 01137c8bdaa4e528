"""YAML files written by people: read safely, strictly, and within bounds.

UTF-8 text, or UTF-16 or UTF-32 with a byte-order mark; a key given twice
in one mapping is an error rather than the last one silently winning; a document nested
absurdly deep or expanding (through aliases) to absurdly many values is refused before
anything walks it. Every problem is a one-line :class:`YAMLInputError` naming the file.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

MAX_BYTES = 16 * 2**20
MAX_DEPTH = 50
MAX_VALUES = 1_000_000
#: byte-order marks and the codecs they select (UTF-32's before UTF-16's, which it extends)
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


class YAMLInputError(ValueError):
    """A YAML file that cannot be read, in one line naming it."""


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:
                    continue  # an unhashable key: the safe loader reports it
                if repeated:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


class _Dumper(yaml.SafeDumper):
    """The safe dumper, quoting what :class:`_StrictLoader` would not read back as a string."""


# a number with an exponent and no decimal point (``1e-3``) is a float, as in YAML 1.2, not
# the string YAML 1.1 reads (the configs' numbers are strictly typed: a string is no number)
for _cls in (_StrictLoader, _Dumper):
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def dump_yaml(data: Any) -> str:
    """``data`` as YAML that :func:`read_yaml` reads back as it is (a string ``"1e3"``
    quoted)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False)


def read_scalar(text: str) -> Any:
    """One value written on a command line (``--set key=VALUE``), read as a config's are."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (safe)
    except (yaml.YAMLError, RecursionError):
        return text


def _check_shape(data: Any, path: Path) -> None:
    """Refuse a document deeper than MAX_DEPTH or with more than MAX_VALUES values."""
    stack = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise YAMLInputError(f"{path}: more than {MAX_VALUES:,} values (aliases expanding?)")
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise YAMLInputError(f"{path}: nested deeper than {MAX_DEPTH} levels")
            items = list(value.keys()) + list(value.values()) if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)


def _text(data: bytes, path: Path) -> str:
    encoding = next((enc for bom, enc in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise YAMLInputError(
            f"{path}: not {encoding.upper().removesuffix('-SIG')} text (byte {e.start} cannot be "
            "decoded: a binary file?)"
        ) from None


def read_yaml(path: Path | str) -> Any:
    """The content of a YAML file; a missing, unreadable or malformed one is refused."""
    path = Path(path)
    if not path.is_file():
        raise YAMLInputError(f"{path}: config file not found")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise YAMLInputError(f"{path}: larger than {MAX_BYTES // 2**20} MiB, not a config")
        data = path.read_bytes()
    except OSError as e:
        raise YAMLInputError(f"{path}: cannot read ({e.strerror})") from None
    try:
        content = yaml.load(_text(data, path), Loader=_StrictLoader)  # noqa: S506 (safe)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise YAMLInputError(f"{path}{where}: invalid YAML ({problem})") from None
    except RecursionError:
        raise YAMLInputError(f"{path}: nested deeper than YAML can be read") from None
    _check_shape(content, path)
    return content
