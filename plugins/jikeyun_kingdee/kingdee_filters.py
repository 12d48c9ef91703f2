"""Kingdee ``ExecuteBillQuery`` FilterString literals (pure functions, no I/O).

FilterString is SQL-like text (``FNumber in ('A','B') and FUseOrgId.FNumber = 'I0134'``); these helpers quote
values so a number or name with a quote in it cannot change the filter.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
