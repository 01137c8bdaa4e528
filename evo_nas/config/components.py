"""The components a config names: registry entries built with options checked like YAML.

``space``, ``ground_truth`` and ``surrogate`` name registry entries; their ``options`` are
checked against the constructor's signature and types, so a bad option is a one-line
:class:`~evo_nas.config.errors.ConfigError` naming ``<section>.options.<key>``.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from evo_nas.config.errors import ConfigError, first_error, first_line
from evo_nas_common.registry import UnknownNameError
from ground_truths import GROUND_TRUTHS
from search_spaces import SPACES
from surrogates import SURROGATES

#: how every config mapping reads its values: unknown keys refused; types strict (no ``true``
#: for a number, no ``"3"`` for a seed); numbers finite (no ``.inf`` or ``.nan`` where they
#: mean nothing)
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Section(BaseModel):
    """A config mapping whose unknown keys are refused and whose values are strictly typed."""

    model_config = STRICT


class Component(Section):
    """A registry entry by name, with the options passed to its constructor."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


_REGISTRIES = {"space": SPACES, "ground_truth": GROUND_TRUTHS, "surrogate": SURROGATES}
# constructor arguments the engine passes itself, per section
_INJECTED = {
    "space": {"self"},
    "ground_truth": {"self", "space"},
    "surrogate": {"self", "space", "seed"},
}


def _factory(section: str, comp: Component) -> Any:
    try:
        return _REGISTRIES[section].get(comp.name)
    except UnknownNameError as e:
        raise ConfigError(f"{section}.name: {e}") from None


def _option_fields(factory: Any, section: str) -> dict[str, tuple[Any, Any]] | None:
    """pydantic fields from a constructor signature (None if it takes ``**kwargs``)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # unresolvable annotations: accept any value
        hints = {}
    fields: dict[str, tuple[Any, Any]] = {}
    for name, p in sig.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            return None
        if name in _INJECTED[section] or p.kind is p.VAR_POSITIONAL:
            continue
        default = ... if p.default is p.empty else p.default
        fields[name] = (_from_yaml(hints.get(name, Any)), default)
    return fields


def _from_yaml(annotation: Any) -> Any:
    """An option's type as a strict model reads YAML: a path from a string, a tuple from a
    list (what YAML can write)."""
    if _is_path(annotation) or _holds(annotation, tuple):
        return Annotated[annotation, Field(strict=False)]
    return annotation


def _holds(annotation: Any, kind: type) -> bool:
    if annotation is kind or typing.get_origin(annotation) is kind:
        return True
    return any(_holds(a, kind) for a in typing.get_args(annotation))


def _is_path(annotation: Any) -> bool:
    if typing.get_origin(annotation) is Annotated:
        return _is_path(typing.get_args(annotation)[0])
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(a is Path for a in typing.get_args(annotation))
    return False


def _resolve_paths(section: str, comp: Component, base_dir: Path) -> dict[str, Any]:
    fields = _option_fields(_factory(section, comp), section) or {}
    out = dict(comp.options)
    for name, value in out.items():
        if name in fields and _is_path(fields[name][0]) and isinstance(value, str):
            p = Path(value).expanduser()
            out[name] = str(p if p.is_absolute() else (base_dir / p).resolve())
    return out


def validated_options(section: str, comp: Component) -> dict[str, Any]:
    """The component's options checked against its constructor's signature and types."""
    factory = _factory(section, comp)
    fields = _option_fields(factory, section)
    if fields is None:
        return dict(comp.options)
    model = create_model(
        f"{comp.name}_options",
        __config__=ConfigDict(**STRICT, arbitrary_types_allowed=True),
        **fields,
    )
    try:
        parsed = model.model_validate(comp.options)
    except ValidationError as e:
        raise ConfigError(f"{section}.options.{first_error(e)}") from None
    return {k: getattr(parsed, k) for k in comp.options}


def construct(section: str, comp: Component, **injected: Any) -> Any:
    """Instantiate a component with validated options; any failure is a ConfigError."""
    options = validated_options(section, comp)
    try:
        return _factory(section, comp)(**injected, **options)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise ConfigError(f"{section}: {first_line(e)}") from None


def resolve_component(section: str, comp: Component | None, base_dir: Path) -> None:
    """Make the component's path options absolute, relative to ``base_dir``."""
    if comp is not None:
        comp.options = _resolve_paths(section, comp, base_dir)


def takes_option(section: str, comp: Component, name: str) -> bool:
    """Whether the component's constructor takes the option ``name``."""
    return name in (_option_fields(_factory(section, comp), section) or {})


def build(section: str, name: str, options: dict[str, Any] | None = None, **injected: Any) -> Any:
    """The registry entry ``name`` of ``section`` (``space``, ``surrogate`` or
    ``ground_truth``) built as a config builds it: ``options`` checked against the
    constructor, ``injected`` (``space``, ``seed``) passed as the engine passes them."""
    if section not in _REGISTRIES:
        raise ConfigError(f"section must be {'|'.join(_REGISTRIES)}, got '{section}'")
    return construct(section, Component(name=name, options=options or {}), **injected)
