"""Name -> factory registries, open to third-party packages through entry points.

Built-ins are listed as ``"module:attribute"`` strings so that importing the registry stays
cheap; plugins add entries either programmatically (:meth:`Registry.register`) or through the
entry-point group named by the registry (``[options.entry_points]`` in their setup.cfg).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any


class UnknownNameError(KeyError):
    """Raised for a name that no registry entry matches; the message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """A mapping from names to factories, filled from built-ins, entry points and code."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._builtins = dict(builtins)
        self._registered: dict[str, Callable[..., Any]] = {}

    def register(self, name: str, factory: Callable[..., Any] | str) -> None:
        """Add or replace an entry; ``factory`` may be a callable or a ``"module:attr"`` path."""
        if isinstance(factory, str):
            self._builtins[name] = factory
            self._registered.pop(name, None)
        else:
            self._registered[name] = factory

    def unregister(self, name: str) -> None:
        """Remove an entry added with :meth:`register` (built-ins come back if shadowed)."""
        self._registered.pop(name, None)

    def _entry_points(self) -> dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def names(self) -> list[str]:
        """All known names, sorted."""
        return sorted(set(self._builtins) | set(self._registered) | set(self._entry_points()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``; raises :class:`UnknownNameError`."""
        if name in self._registered:
            return self._registered[name]
        if name in self._builtins:
            module, _, attr = self._builtins[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        eps = self._entry_points()
        if name in eps:
            return eps[name].load()
        known = ", ".join(self.names()) or "none"
        raise UnknownNameError(f"unknown {self.kind} '{name}' (known: {known})")

    def create(self, name: str, **options: Any) -> Any:
        """Instantiate the entry ``name`` with ``options``."""
        return self.get(name)(**options)
