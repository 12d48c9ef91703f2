"""How the package reads values loosely, the same way everywhere: conditions, lifecycle flags, field comparisons.

Jikeyun sends flags and numbers as numbers or as text (``0``, ``"0"``, ``0.0``), Kingdee answers booleans as JSON
``true``/``false`` or as text and numbers in its own precision. Two values are the *same* when their loose texts are
equal: numbers by value (``2`` = ``"2.0"`` = ``2.00``), booleans by truth (``True`` = ``"true"`` = ``1``), text
without surrounding spaces, a reference ``{"FNumber": x}`` as ``x``. Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import Any

TRUE_TEXTS = frozenset({"1", "true", "yes"})
BOOLEAN_TEXTS = frozenset({"true", "false"})


def reference_number(value: Any) -> Any:
    """The number of a base-data reference (``{"FNumber": x}`` or ``{"FNUMBER": x}``); other values as they are."""
    if isinstance(value, dict):
        return next((v for k, v in value.items() if k.lower() == "fnumber"), None)
    return value


def loose(value: Any) -> str:
    """Canonical text for loose comparison: 0, 0.0, "0" and "0.00" are "0"; True is "true"; None is ""."""
    value = reference_number(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):  # the common case (Jikeyun's 0/1 flags), without a Decimal
        return str(value)
    if value is None:
        return ""
    return _loose_text(str(value))


@functools.lru_cache(maxsize=4096)  # conditions compare few distinct texts ("0", "1") over and over
def _loose_text(text: str) -> str:
    text = text.strip()
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return text
    if not number.is_finite():
        return text
    return format(number.normalize(), "f") if number != 0 else "0"


def truthy(value: Any) -> bool:
    """A flag that is set: 1, "1", 1.0, true, "true", "yes" (any case)."""
    return loose(value).casefold() in TRUE_TEXTS


def number(value: Any) -> Decimal | None:
    """The value as a Decimal, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def same_value(desired: Any, current: Any) -> bool:
    """Whether a stored value already equals the desired one.

    Booleans compare by truth when either side is one ("true"/True/1 and "false"/False/0/""); a number (not text)
    on either side compares by value (2 = "2.0"); everything else as text without surrounding spaces, so "001" and
    "1" stay different names. References compare by their number.
    """
    desired, current = reference_number(desired), reference_number(current)
    if isinstance(desired, bool) or isinstance(current, bool) or loose(desired).casefold() in BOOLEAN_TEXTS:
        return truthy(desired) == truthy(current)
    if _is_number(desired) or _is_number(current):
        left, right = number(desired), number(current)
        if left is not None and right is not None:
            return left == right
    return _text(desired) == _text(current)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    """Trimmed text; a date and time as ``yyyy-MM-dd HH:mm:ss`` (Kingdee answers ``2026-11-01T09:10:00`` for the
    ``2026-11-01 09:10:00`` it was sent; a fraction of zero seconds is dropped)."""
    text = "" if value is None else str(value).strip()
    moment = _DATE_TIME.match(text)
    return f"{moment[1]} {moment[2]}" if moment else text


_DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.0*)?$")
