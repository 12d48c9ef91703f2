"""Pure functions of the pipeline: one record to one item, conditions, lifecycle states, chunk sizes. No I/O, no
Airflow."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from jikeyun_kingdee.records import parse_jikeyun_time, to_epoch_ms
from jikeyun_kingdee.scheme import REFERENCE, Comparison, Lifecycle

if TYPE_CHECKING:
    from pydantic import BaseModel

    from jikeyun_kingdee.scheme import Scheme

T = TypeVar("T")
State = Literal["active", "blocked", "deleted"]


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
    if isinstance(value, int):  # the common case (Jikeyun's 0/1 flags), without a Decimal
        return str(value)
    if value is None:
        return ""
    return _loose_text(str(value))


@functools.lru_cache(maxsize=4096)  # conditions compare few distinct texts ("0", "1") over and over
def _loose_text(text: str) -> str:
    try:
        number = Decimal(text.strip())
        if number.is_finite():
            return format(number.normalize(), "f") if number != 0 else "0"
    except (InvalidOperation, ValueError):
        pass
    return text.strip()


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


def lifecycle_state(lifecycle: Lifecycle | None, record: dict[str, Any]) -> State:
    """``deleted`` when the deleted field is truthy (1, "1", true), else ``blocked`` when the blocked field is, else
    ``active``; without a lifecycle every record is ``active``."""
    if lifecycle is None:
        return "active"
    if _truthy(record.get(lifecycle.deleted_field)):
        return "deleted"
    if _truthy(record.get(lifecycle.blocked_field)):
        return "blocked"
    return "active"


def staged_state(
    condition: Sequence[Sequence[Comparison]], lifecycle: Lifecycle | None, record: dict[str, Any]
) -> State | None:
    """The state filter stages a record in, or ``None`` when the record is filtered out.

    An active record is staged when it matches the condition; a blocked or deleted one when the lifecycle says
    ``forbid`` for its state (whatever the condition says: it is there to be forbidden, not written).
    """
    state = lifecycle_state(lifecycle, record)
    if state == "active":
        return state if matches(condition, record) else None
    if lifecycle is None:  # cannot happen: only a lifecycle gives other states
        return None
    action = lifecycle.on_deleted if state == "deleted" else lifecycle.on_blocked
    return state if action == "forbid" else None


def _truthy(value: Any) -> bool:
    return _loose(value).casefold() in ("1", "true")


def transform_record(scheme: Scheme, raw: dict[str, Any]) -> dict[str, Any]:
    """One source record → the staged item ``{"key", "modified", "source", "row"}``.

    ``modified`` is the record's modification time in epoch ms, parsed once: by the scheme's record model when it
    has one (the record is validated into it), else from the raw field; ``source`` holds the fields filter reads
    (the condition's and the lifecycle's).

    :raises ValueError: (ValidationError, MappingError) naming the field.
    """
    source, target = scheme.source, scheme.target
    model = source.record_type
    if model is None:
        modified = parse_jikeyun_time(raw.get(source.modified_field))
    else:
        modified = _modified_of(model.model_validate(raw), source.modified_field)
    key = raw.get(source.id_field)
    if key is None or str(key).strip() == "":
        raise MappingError(f"{source.id_field}: id field is empty")
    row = render_row(target.fields, raw)
    check_required(row, target.required)
    return {
        "key": str(key).strip(),
        "modified": to_epoch_ms(modified) or 0,
        "source": {name: raw.get(name) for name in scheme.filter_fields},
        "row": row,
    }


def _modified_of(record: BaseModel, field: str) -> datetime | None:
    """The validated record's modification time: its model field of that alias, already parsed (or, when the model
    has no such field, the kept extra value, parsed here)."""
    name = _attribute_of(type(record), field)
    value = getattr(record, name) if name else (record.model_extra or {}).get(field)
    return value if isinstance(value, datetime) else parse_jikeyun_time(value)


@functools.cache
def _attribute_of(model: type[BaseModel], alias: str) -> str | None:
    return next((name for name, info in model.model_fields.items() if alias in (name, info.alias)), None)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily from any iterable."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def rows_per_load_chunk(rows: int, rows_per_chunk: int, max_chunks: int) -> int:
    """Rows per load chunk: the scheme's ``rows_per_chunk``, more when that would need more than ``max_chunks``."""
    return max(rows_per_chunk, math.ceil(rows / max_chunks))
