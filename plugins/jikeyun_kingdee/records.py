"""Source-record models: what Jikeyun's ``erp.warehouse.get`` returns, validated at the boundary.

Python names are snake_case; the aliases are Jikeyun's camelCase names, so ``model_dump(by_alias=True)`` gives
Jikeyun's field names back. Unknown fields are kept (``extra="allow"``). ``gmtCreate``/``gmtModified`` arrive as
epoch milliseconds; they also accept ISO strings, ``yyyy-MM-dd HH:mm:ss`` (read as Beijing time when no offset is
given) and datetimes, and always become timezone-aware datetimes (UTC).

Representation choice: the default JSON dump writes ISO-8601 datetimes (readable in staged files, and
``Warehouse.model_validate(w.model_dump(mode="json", by_alias=True)) == w``); :func:`to_epoch_ms` gives Jikeyun's
own representation of a time (epoch ms).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import pendulum
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: Jikeyun speaks Beijing time: the one time zone of the package (records, hooks, alerts)
BEIJING = pendulum.timezone("Asia/Shanghai")
#: how Jikeyun writes a time on the wire (pendulum tokens): ``yyyy-MM-dd HH:mm:ss``, Beijing time
WIRE_TIME_FORMAT = "YYYY-MM-DD HH:mm:ss"


def parse_jikeyun_time(value: Any) -> datetime | None:
    """Turn a Jikeyun time (epoch ms, ISO string, ``yyyy-MM-dd HH:mm:ss`` Beijing, datetime) into aware UTC.

    :param value: the raw field value; ``None`` or ``""`` give ``None``.
    :raises ValueError: for anything else that is not a time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=BEIJING)
    elif isinstance(value, str):
        parsed = pendulum.parse(value.strip(), tz=BEIJING)  # an explicit offset in the string wins
        if not isinstance(parsed, datetime):
            raise ValueError(f"not a date-time: {value!r}")
        moment = parsed
    else:
        raise ValueError(f"not a time: {value!r}")
    return datetime.fromtimestamp(moment.timestamp(), tz=timezone.utc)


def beijing_time(moment: datetime | float) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as Jikeyun takes times on the wire, from an aware datetime or epoch
    seconds."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("Jikeyun windows need timezone-aware datetimes")
        return pendulum.instance(moment).in_timezone(BEIJING).format(WIRE_TIME_FORMAT)
    return pendulum.from_timestamp(moment, tz=BEIJING).format(WIRE_TIME_FORMAT)


def to_epoch_ms(moment: datetime | None) -> int | None:
    """Jikeyun's representation of a time: integer epoch milliseconds."""
    return None if moment is None else round(moment.timestamp() * 1000)


JikeyunTime = Annotated[AwareDatetime | None, BeforeValidator(parse_jikeyun_time)]
_CONFIG = ConfigDict(
    alias_generator=to_camel, populate_by_name=True, extra="allow", coerce_numbers_to_str=True
)


class SalesChannelRef(BaseModel):
    """One entry of a warehouse's ``salesList``: a sales channel (shop) served by the warehouse."""

    model_config = _CONFIG

    warehouse_id: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None
    channel_code: str | None = None


class Warehouse(BaseModel):
    """A Jikeyun warehouse (``result.data.warehouseInfo[]`` of ``erp.warehouse.get``).

    ``warehouse_code`` is the business key (Kingdee ``FNumber``); everything else is optional because Jikeyun
    omits empty fields. ``is_blockup``: 0 active, 1 disabled; ``is_delete``: 0/1.
    """

    model_config = _CONFIG

    warehouse_id: str | None = None
    warehouse_code: str = Field(min_length=1)
    warehouse_name: str | None = None
    is_blockup: int | None = None
    is_delete: int | None = None
    warehouse_type_code: str | None = None
    warehouse_type_name: str | None = None
    country_name: str | None = None
    province_name: str | None = None
    city_name: str | None = None
    town_name: str | None = None
    street_name: str | None = None
    address: str | None = None
    postcode: str | None = None
    tel: str | None = None
    link_man: str | None = None
    gmt_create: JikeyunTime = None
    gmt_modified: JikeyunTime = None
    warehouse_depart_id: str | None = None
    warehouse_depart_name: str | None = None
    warehouse_depart_code: str | None = None
    warehouse_company_id: str | None = None
    warehouse_company_name: str | None = None
    warehouse_company_code: str | None = None
    vend_id: str | None = None
    vend_name: str | None = None
    sales_list: list[SalesChannelRef] | None = None
