"""Pure functions of the pipeline: one record to one item, conditions, lifecycle states. No I/O, no Airflow.

Rendering the Kingdee row is the scheme's field map (:mod:`jikeyun_kingdee.fields`); values are compared loosely
(:mod:`jikeyun_kingdee.values`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jikeyun_kingdee.fields import MappingError
from jikeyun_kingdee.items import Item, State
from jikeyun_kingdee.records import parse_jikeyun_time, to_epoch_ms
from jikeyun_kingdee.scheme import Comparison, Lifecycle
from jikeyun_kingdee.values import loose, number, truthy

if TYPE_CHECKING:
    from pydantic import BaseModel

    from jikeyun_kingdee.scheme import Scheme

__all__ = ["MappingError", "check_required", "holds", "lifecycle_state", "matches", "staged_state",
           "transform_record"]


def check_required(row: dict[str, Any], required: Iterable[str]) -> None:
    """:raises MappingError: naming the first required target field that is empty (blank text, no entries)."""
    for name in required:
        value = row.get(name)
        if value is None or value == [] or (isinstance(value, str) and not value.strip()):
            raise MappingError(f"{name}: required but empty")


def holds(comparison: Comparison, record: dict[str, Any]) -> bool:
    """Evaluate one comparison against a record (missing fields are empty)."""
    actual = record.get(comparison.field)
    op, expected = comparison.op, comparison.value
    if op in ("empty", "not_empty"):
        empty = actual is None or (isinstance(actual, (list, dict)) and not actual) or loose(actual) == ""
        return empty if op == "empty" else not empty
    if op in ("eq", "ne"):
        return (loose(actual) == loose(expected)) == (op == "eq")
    if op in ("ieq", "ine"):
        return (loose(actual).casefold() == loose(expected).casefold()) == (op == "ieq")
    if op in ("in", "not_in"):
        values = {loose(v) for v in (expected if isinstance(expected, list) else [expected])}
        return (loose(actual) in values) == (op == "in")
    left, right = number(actual), number(expected)
    if left is None or right is None:
        return False
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right}[op]


def matches(condition: Sequence[Sequence[Comparison]], record: dict[str, Any]) -> bool:
    """The platform's condition arrays: the outer list is OR, each inner list AND; no condition keeps everything."""
    if not condition:
        return True
    return any(all(holds(c, record) for c in group) for group in condition)


def lifecycle_state(lifecycle: Lifecycle | None, record: dict[str, Any]) -> State:
    """``deleted`` when the deleted field is truthy (1, "1", true), else ``blocked`` when any blocked field is, else
    ``active``; without a lifecycle every record is ``active``."""
    if lifecycle is None:
        return "active"
    if truthy(record.get(lifecycle.deleted_field)):
        return "deleted"
    if any(truthy(record.get(field)) for field in lifecycle.blocked_fields):
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


def transform_record(scheme: Scheme, raw: dict[str, Any]) -> Item:
    """One source record → its :class:`~jikeyun_kingdee.items.Item`.

    ``modified`` is the record's modification time in epoch ms — the latest of its modification fields (one per
    window pass: a goods record has a goods-level and a SKU-level one) — parsed once: by the scheme's record model
    when it has one (the record is validated into it), else from the raw fields; ``source`` holds the fields filter
    reads (the condition's and the lifecycle's); ``row`` is the target field map's rendering.

    :raises ValueError: (ValidationError, MappingError) naming the field.
    """
    source, target = scheme.source, scheme.target
    model = source.record_type
    if model is None:
        times = [parse_jikeyun_time(raw.get(name)) for name in source.modified_fields]
    else:
        record = model.model_validate(raw)
        times = [_modified_of(record, name) for name in source.modified_fields]
    modified = max((t for t in times if t is not None), default=None)
    key = raw.get(source.id_field)
    if key is None or str(key).strip() == "":
        raise MappingError(f"{source.id_field}: id field is empty")
    if target.kind == "document" and not matches(source.condition, raw):
        row: dict[str, Any] = {}  # a document the condition leaves out is never written: nothing to map or refuse
    else:
        row = target.field_map.render(raw)
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
