"""Parse JSON that comes from outside (brand files, request-shaped files a user hands the CLI).

``json.loads`` as it is accepts ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON), turns ``1e309`` into ``inf``,
raises ``RecursionError`` on deeply nested input and ``ValueError`` on integers longer than Python's digit limit,
and lets ``"\\ud800"`` through as a string that cannot be encoded. :func:`parse_json` turns each of those into one
``ValueError`` whose message says what is wrong, so a caller reports it as a problem of that file or line instead
of a traceback.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # no input of audiencefit nests deeper than a handful of levels


def refuse_constant(name: str) -> Any:
    """``parse_constant`` for json: NaN and Infinity are not JSON numbers."""
    raise ValueError(f"{name} is not a JSON number")


def finite_float(text: str) -> float:
    """``parse_float`` for json: a float too large to be finite is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large for a number")
    return value


def _is_text(value: str) -> bool:
    """False for a string holding a lone surrogate (``"\\ud800"`` parses to one): it is no Unicode text."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_tree(value: Any, max_depth: int) -> None:
    """Nesting no deeper than ``max_depth`` and every string (keys too) valid text; without recursion."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str) and not _is_text(item):
            raise ValueError("not valid JSON: a string holds a lone surrogate (\\ud800-\\udfff), which is no text")
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise ValueError(f"not valid JSON: nested deeper than {max_depth} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def parse_json(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Strict JSON: ``ValueError`` for invalid JSON, non-finite numbers, nesting deeper than ``max_depth``, lone
    surrogates, or integers beyond Python's digit limit; the message is meant for the user."""
    try:
        value = json.loads(text, parse_constant=refuse_constant, parse_float=finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError(f"not valid JSON: nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # a refused constant, an overflowing float, an integer beyond the digit limit
        reason = "an integer with too many digits" if "digits" in str(exc) else str(exc)
        raise ValueError(f"not valid JSON: {reason}") from None
    _check_tree(value, max_depth)
    return value
