"""Kingdee's vocabulary, in one place: the status fields and their letters, the words of its operations, how a
base-data reference is read back, and ``ExecuteBillQuery`` FilterString literals. Pure, no I/O.

What differs per form (its primary key, business key, organisation field) is the scheme's ``target:``
(:class:`jikeyun_kingdee.scheme.TargetSpec`), never a literal in the engine.

FilterString is SQL-like text (``FNumber in ('A','B') and FUseOrgId.FNumber = 'I0134'``); the helpers quote values
so a number or name with a quote in it cannot change the filter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

#: 单据状态 of every form: Z 暂存 (temporary), A 创建 (created), B 审核中 (submitted), C 已审核 (audited),
#: D 重新审核 (unaudited, to be audited again)
DOCUMENT_STATUS = "FDocumentStatus"
CREATED, SUBMITTED, AUDITED, UNAUDITED = "A", "B", "C", "D"
SUBMITTABLE = ("Z", "A", "D")
#: 禁用状态 of base data: A 正常 (enabled), B 禁用 (forbidden)
FORBID_STATUS = "FForbidStatus"
ENABLED, FORBIDDEN = "A", "B"
#: ``ExcuteOperation`` numbers of the forbid switch (the API's spelling of "Execute" is kept on the wire)
SwitchOperation = Literal["Forbid", "Enable"]
FORBID: SwitchOperation = "Forbid"
ENABLE: SwitchOperation = "Enable"
#: the status each switch operation leads to
SWITCHED_TO: dict[str, str] = {FORBID: FORBIDDEN, ENABLE: ENABLED}
#: the number field of base data, and the organisation that uses a record (documents check references by them)
BASE_DATA_NUMBER = "FNumber"
USE_ORGANISATION = "FUseOrgId"
#: the key under which a base-data reference carries its number (``{"FNumber": x}``; some forms spell it FNUMBER)
NUMBER_KEYS = ("FNumber", "FNUMBER")


def reference_key(field: str) -> str:
    """The ExecuteBillQuery key that reads a base-data reference back: ``<Field>.FNumber``."""
    return f"{field}.FNumber"


def is_forbidden(record: Mapping[str, Any]) -> bool:
    """Whether a query row says the record is forbidden (禁用)."""
    return str(record.get(FORBID_STATUS) or "").strip().upper() == FORBIDDEN


def is_audited(record: Mapping[str, Any]) -> bool:
    """Whether a query row says the record is audited (已审核)."""
    return str(record.get(DOCUMENT_STATUS) or "").strip().upper() == AUDITED


def sql_literal(value: Any) -> str:
    """A FilterString literal: numbers as is, text in single quotes with quotes doubled."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def in_filter(field: str, values: Iterable[Any]) -> str:
    """``field in (v1,v2,...)`` for a FilterString."""
    return f"{field} in ({','.join(sql_literal(v) for v in values)})"


def equals_filter(field: str, value: Any) -> str:
    """``field = v`` for a FilterString."""
    return f"{field} = {sql_literal(value)}"


def organisation_filter(organisation_field: str, organisation: str) -> str:
    """The records of one organisation: ``<organisation_field>.FNumber = '<organisation>'``."""
    return equals_filter(reference_key(organisation_field), organisation)
