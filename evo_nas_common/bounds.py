"""The bounded value types of every typed option, and the one way a failed check is told.

Configs, dish options, training options and checkpoints all validate with pydantic; each
takes its numbers from these types, so the same bad value is refused with the same limit and
the same words whether it came from a YAML file or from Python. Limits sit far above any
useful value: they turn a typo's 1e11 into a one-line refusal instead of hours of allocation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationError

#: cells, steps, samples, generations: beyond this one step would not end in any reasonable
#: time, nor fit in memory
MAX_SIZE = 100_000
#: workers, threads, retries, dishes and the like
MAX_COUNT = 1024
#: iteration counts (inner steps, meta-steps, training batches)
MAX_STEPS = 10**9

#: a seed of python, numpy and torch alike (numpy's legacy seeding takes 32 bits)
Seed = Annotated[int, Field(strict=True, ge=0, lt=2**32)]
#: a number of cells, samples or steps, at least one
Size = Annotated[int, Field(strict=True, ge=1, le=MAX_SIZE)]
#: a number that may be zero (no extra cells, no meta-learning)
SizeOrZero = Annotated[int, Field(strict=True, ge=0, le=MAX_SIZE)]
#: workers, threads, dishes, retries: at least one
Count = Annotated[int, Field(strict=True, ge=1, le=MAX_COUNT)]
#: an iteration count of at least one
Steps = Annotated[int, Field(strict=True, ge=1, le=MAX_STEPS)]
#: an iteration count that may be zero
StepsOrZero = Annotated[int, Field(strict=True, ge=0, le=MAX_STEPS)]
#: the size of a tensor dimension
Width = Annotated[int, Field(strict=True, ge=1, le=4096)]
#: a positive finite number (learning rates, temperatures, scales, seconds)
Positive = Annotated[float, Field(strict=True, gt=0, le=1e12, allow_inf_nan=False)]
#: a finite number of at least zero (penalties, weights, costs)
NonNegative = Annotated[float, Field(strict=True, ge=0, le=1e12, allow_inf_nan=False)]
#: a share in (0, 1]
Fraction = Annotated[float, Field(strict=True, gt=0, le=1)]
#: a probability of dropping a unit, in [0, 1)
Dropout = Annotated[float, Field(strict=True, ge=0.0, lt=1.0)]


def first_error(err: ValidationError, prefix: str = "") -> str:
    """The first problem pydantic found as one line, ``prefix.key.path: message``, with the
    value given and how many more problems there are."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
    msg = e["msg"]
    if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        msg = "unknown key"
    elif e["type"] in ("missing", "missing_keyword_argument", "missing_argument"):
        msg = "missing required key"
    else:
        msg = msg.removeprefix("Value error, ")
        if "input" in e and not isinstance(e["input"], (dict, list, tuple)):
            msg += f" (got {_shown(e['input'])})"
    more = len(err.errors()) - 1
    where = f"{loc}: " if loc else ""
    return where + msg + (f" (and {more} more error{'s' if more > 1 else ''})" if more else "")


def _shown(value: object) -> str:
    """A value as an error message quotes it: at most 60 characters."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for text
        return "an integer of too many digits"
    return text if len(text) <= 60 else text[:57] + "..."
