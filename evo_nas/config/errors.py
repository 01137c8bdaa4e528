"""Configuration errors: one line naming the key and the problem (exit status 2)."""

from __future__ import annotations

from evo_nas_common.bounds import first_error

__all__ = ["ConfigError", "first_error", "first_line"]


class ConfigError(ValueError):
    """A configuration mistake, described in one line."""


def first_line(error: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
