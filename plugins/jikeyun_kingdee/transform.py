"""Pure functions of the pipeline: mapping, conditions, de-duplication, batching. No I/O, no Airflow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import Any, TypeVar

from jikeyun_kingdee.scheme import REFERENCE, Comparison

T = TypeVar("T")


class MappingError(ValueError):
    """A record cannot be mapped; the message names the field."""


def render_row(fields: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Build one target row from a source record: ``"{field}"`` is replaced by the record's value, the rest is constant.

    :raises MappingError: a referenced source field is absent.
    """
    return {name: _render(value, record, name) for name, value in fields.items()}


def _render(value: Any, record: dict[str, Any], target: str) -> Any:
    if isinstance(value, str):
        match = REFERENCE.match(value)
        if not match:
            return value
        source = match.group(1)
        current: Any = record
        for part in source.split("."):
            if not isinstance(current, dict) or part not in current:
                raise MappingError(f"{target}: source field {source!r} is missing")
            current = current[part]
        return current
    if isinstance(value, dict):
        return {k: _render(v, record, f"{target}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, record, target) for v in value]
    return value


def check_required(row: dict[str, Any], required: Iterable[str]) -> None:
    """:raises MappingError: naming the first required target field that is empty."""
    for name in required:
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise MappingError(f"{name}: required but empty")


def _loose(value: Any) -> str:
    """Canonical text for loose comparison: 0, 0.0, "0" and "0.00" are equal; True is "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        number = Decimal(str(value).strip())
        if number.is_finite():
            return format(number.normalize(), "f") if number != 0 else "0"
    except (InvalidOperation, ValueError):
        pass
    return "" if value is None else str(value).strip()


def _number(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def holds(comparison: Comparison, record: dict[str, Any]) -> bool:
    """Evaluate one comparison against a record (missing fields are empty)."""
    actual = record.get(comparison.field)
    op, expected = comparison.op, comparison.value
    if op in ("empty", "not_empty"):
        empty = actual is None or _loose(actual) == ""
        return empty if op == "empty" else not empty
    if op in ("eq", "ne"):
        return (_loose(actual) == _loose(expected)) == (op == "eq")
    if op in ("ieq", "ine"):
        return (_loose(actual).casefold() == _loose(expected).casefold()) == (op == "ieq")
    if op in ("in", "not_in"):
        values = {_loose(v) for v in (expected if isinstance(expected, list) else [expected])}
        return (_loose(actual) in values) == (op == "in")
    left, right = _number(actual), _number(expected)
    if left is None or right is None:
        return False
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]


def matches(condition: Sequence[Sequence[Comparison]], record: dict[str, Any]) -> bool:
    """The platform's condition arrays: the outer list is OR, each inner list AND; no condition keeps everything."""
    if not condition:
        return True
    return any(all(holds(c, record) for c in group) for group in condition)


def latest_per_key(items: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Keep one item per ``key``: the one with the latest ``modified`` (ties: the one seen last).

    :return: the kept items in first-seen key order, and how many were dropped.
    """
    kept: dict[str, dict[str, Any]] = {}
    seen = 0
    for item in items:
        seen += 1
        current = kept.get(item["key"])
        if current is None or item["modified"] >= current["modified"]:
            kept[item["key"]] = item
    return list(kept.values()), seen - len(kept)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily from any iterable."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def plan_chunks(batch_count: int, max_chunks: int) -> list[list[int]]:
    """Group batch numbers into at most ``max_chunks`` load chunks of consecutive batches, sizes differing by ≤ 1."""
    if batch_count <= 0:
        return []
    chunks = min(batch_count, max_chunks)
    per, extra = divmod(batch_count, chunks)
    plan, start = [], 0
    for i in range(chunks):
        size = per + (1 if i < extra else 0)
        plan.append(list(range(start, start + size)))
        start += size
    return plan
