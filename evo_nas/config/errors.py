"""Configuration errors: one line naming the key and the problem (exit status 2)."""

from __future__ import annotations

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration mistake, described in one line."""


def first_line(error: BaseException) -> str:
    """An exception's message as one line (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def first_error(err: ValidationError) -> str:
    """The first problem pydantic found, as ``key.path: message`` (how many more, if any)."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"]
    if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key"
    elif e["type"] == "missing":
        msg = "missing required key"
    else:
        msg = msg.removeprefix("Value error, ")
        if "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {e['input']!r})"
    more = len(err.errors()) - 1
    where = f"{loc}: " if loc else ""
    return where + msg + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")
