"""ExecuteBillQuery in the Kingdee sandbox: the FilterString subset the package sends, the columns a form can be
read by (:func:`column`), and one page of rows (:func:`select`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from jikeyun_kingdee.sandbox.kingdee_forms import FORMS, Field, Form, KingdeeFault, Store

# -- FilterString -------------------------------------------------------------------------------------------
_CLAUSE_RE = re.compile(
    r"^\s*\(?\s*([\w.]+)\s*(?:(=|<>|!=)\s*('(?:[^']|'')*'|-?\d+)|(not\s+in|in)\s*\(([^)]*)\))\s*\)?\s*$", re.I
)
_LITERAL_RE = re.compile(r"'((?:[^']|'')*)'|(-?\d+)")


def _split_and(filter_string: str) -> list[str]:
    """Split on ``and`` outside quotes."""
    parts, current, quoted = [], [], False
    tokens = re.split(r"('|\s+and\s+)", filter_string, flags=re.I)
    for token in tokens:
        if token == "'":
            quoted = not quoted
            current.append(token)
        elif not quoted and re.fullmatch(r"\s+and\s+", token or "", re.I):
            parts.append("".join(current))
            current = []
        else:
            current.append(token or "")
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_filter(filter_string: str) -> list[tuple[str, str, list[str]]]:
    """Parse the FilterString forms the hook uses: ``F = 'v'``, ``F <> 'v'``, ``F in ('a','b')`` joined by ``and``.

    Returns (field, operator, values) triples; raises :class:`KingdeeFault` for anything else.
    """
    clauses = []
    for part in _split_and(filter_string or ""):
        match = _CLAUSE_RE.match(part)
        if not match:
            raise KingdeeFault(f"过滤条件语法错误（沙箱不支持）：{part.strip()}", 8)
        field, op, literal, in_op, in_list = match.groups()
        source = literal if op else in_list
        values = [q.replace("''", "'") if q or n is None else n for q, n in _LITERAL_RE.findall(source)]
        clauses.append((field, (op or in_op).lower().replace("!=", "<>").replace("  ", " "), values))
    return clauses


def _matches(value: Any, op: str, values: list[str]) -> bool:
    text = "" if value is None else ("true" if value is True else "false" if value is False else str(value))
    hit = text.lower() in {v.lower() for v in values}
    return hit if op in ("=", "in") else not hit


# -- columns ---------------------------------------------------------------------------------------------------
Column = Callable[[dict[str, Any], dict[str, Any] | None], Any]


def _reader(key: str, in_entry: bool) -> Column:
    return lambda record, row: (row or {}).get(key) if in_entry else record.get(key)


def _reference_id(store: Store, spec: Field, in_entry: bool) -> Column:
    """The referenced record's id (0 when it is not found), as a bare reference key reads."""
    target = FORMS.get(spec.form or "")
    value = _reader(spec.key, in_entry)

    def read(record: dict[str, Any], row: dict[str, Any] | None) -> Any:
        number = value(record, row)
        if target is None or not number:
            return 0
        found = store.find(target, str(number), str(record.get(spec.scope, "")) if spec.scope else None)
        return found[target.pk] if found else 0

    return read


def column(store: Store, form: Form, key: str) -> tuple[Column, bool] | None:
    """How ExecuteBillQuery reads ``key``: (reader of a record and one of its entry rows, whether it is an entry's
    key), or None when the form has no such key.

    Sub-entity and entry fields are read by their own key, references as ``<Field>.FNumber`` (the number) or
    ``<Field>`` (the referenced record's id), an entry row's id as ``<Entry>_<pk>`` (``FEntity_FEntryID``).
    """
    lower = key.lower()
    if lower in (k.lower() for k in (form.pk, *form.statuses)):
        return _reader(next(k for k in (form.pk, *form.statuses) if k.lower() == lower), False), False
    for entry in form.entries:
        if lower == f"{entry.key}_{entry.pk}".lower():
            return _reader(entry.pk, True), True
    name, _, tail = lower.partition(".")
    spec, in_entry = form.field(name), False
    for entry in form.entries if spec is None else ():
        spec, in_entry = entry.by_key.get(name), True
        if spec is not None:
            break
    if spec is None or (tail and (tail != "fnumber" or spec.kind != "reference")):
        return None
    if spec.kind == "reference" and not tail:
        return _reference_id(store, spec, in_entry), in_entry
    return _reader(spec.key, in_entry), in_entry


def query_rows(store: Store, form: Form, per_entry: bool) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(record, entry row) pairs: one per entry row of each record when ``per_entry``, else one per record."""
    for record in store.all(form):
        rows = [row for entry in form.entries for row in record.get(entry.key, [])] if per_entry else []
        yield from ((record, row) for row in rows) if rows else [(record, None)]


# -- one page ----------------------------------------------------------------------------------------------------
def select(store: Store, form: Form, data: dict[str, Any], *, row_limit: int, over_limit: str,
           entry_rows: str) -> tuple[list[str], list[Column], list[tuple[dict, dict | None]]]:
    """(FieldKeys, their readers, the (record, entry row) pairs of the asked page) of one ExecuteBillQuery.

    :param data: the call's ``data`` (keys lower-cased)
    :param row_limit: the most rows one answer has; ``over_limit`` says what a larger ``Limit`` gets
    :param entry_rows: ``always``: a document has one row per entry row; ``when_asked``: only when an entry key is
        asked, filtered or ordered by
    """
    keys = [k.strip() for k in str(data.get("fieldkeys") or "").split(",") if k.strip()]
    if not keys:
        raise KingdeeFault("data数据包中的参数FieldKeys的值不能为空。", 8)
    clauses = parse_filter(str(data.get("filterstring") or "")) if not isinstance(
        data.get("filterstring"), list) else []  # the array filter form is not simulated
    readers = {}
    for name in keys + [c[0] for c in clauses]:
        read = column(store, form, name)
        if read is None:
            raise KingdeeFault(f"元数据中标识为{name}的字段不存在", 9)
        readers[name.lower()] = read
    order = str(data.get("orderstring") or "").split()
    by = column(store, form, order[0]) if order else None  # an unknown order key is ignored
    per_entry = bool(form.entries) and (entry_rows == "always" or bool(by and by[1])
                                        or any(in_entry for _, in_entry in readers.values()))
    rows = [pair for pair in query_rows(store, form, per_entry)
            if all(_matches(readers[f.lower()][0](*pair), op, v) for f, op, v in clauses)]
    if by:
        rows.sort(key=lambda pair: str(by[0](*pair)), reverse=len(order) > 1 and order[1].lower() == "desc")
    start = int(data.get("startrow") or 0)
    limit = int(data.get("limit") or 0) or row_limit  # no Limit: the server's row limit
    if limit > row_limit:
        if over_limit == "refuse":  # wording not verified
            raise KingdeeFault(f"参数Limit的值不能超过{row_limit}。", 8)
        limit = row_limit
    top = int(data.get("toprowcount") or 0)
    rows = rows[:top] if top else rows
    return keys, [readers[k.lower()][0] for k in keys], rows[start:start + limit]
