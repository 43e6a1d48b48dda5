"""Parameter parsers shared by the commands.

click's ``FloatRange`` lets ``nan`` through any bound (every comparison with NaN is false) and reads ``1e309`` as
``inf``, so a non-finite budget, weight or share would travel into the planner or the trainer. Every float flag
parses with :func:`finite` instead, and values parsed by hand (``SEGMENT=PEOPLE``) with :func:`finite_number`.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def finite_number(text: str) -> float:
    """``text`` as a finite float; ``ValueError`` naming the value otherwise (``nan``, ``inf``, ``1e309``, words)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def finite(min: float | None = None, max: float | None = None) -> Callable[[str], float]:
    """A flag parser (``typer.Option(parser=...)``): a finite float within the inclusive bounds given."""
    if min is not None and max is not None:
        bounds = f"{min}<=x<={max}"
    else:
        bounds = f"x>={min}" if min is not None else f"x<={max}" if max is not None else ""

    def parse(value: str | float) -> float:
        number = finite_number(value if isinstance(value, str) else repr(value))
        if (min is not None and number < min) or (max is not None and number > max):
            raise ValueError(f"{number} is not in the range {bounds}")
        return number

    parse.__name__ = "number" if not bounds else f"number {bounds}"
    return parse


def whole(min: int, max: int) -> Callable[[str], int]:
    """A flag parser for a whole number within ``[min, max]`` whose bound only guards the machine (2^62 followers,
    a 64-bit seed): click would print such a bound in ``--help`` as ``0<=x<=4611686018427387904``; this keeps it
    out of the help and in the error."""

    def parse(value: str | int) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a whole number") from None
        if number < min:
            raise ValueError(f"{number} should be greater than or equal to {min:,}")
        if number > max:
            raise ValueError(f"{number} should be less than or equal to {max:,}")
        return number

    parse.__name__ = "integer"
    return parse
