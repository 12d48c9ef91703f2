"""``oms.trade.fullinfoget`` (销售单查询) in the Jikeyun sandbox: sales trades (销售单) with their goods lines,
served under ``result.data.trades``, by offset pages or by a scroll cursor over a snapshot.

What the sandbox assumes (docs/protocol/jikeyun.md, "Trades"):

* ``fields`` is required (comma-separated; a missing one is refused with the bad-parameter sub-code); only the
  listed fields come back. Line fields are listed as ``goodsDetail.x`` (a bare ``goodsDetail`` returns whole
  lines), batch fields as ``goodsDelivery.x`` (inside each line). Unknown names are ignored.
* One of ``tradeNo`` (comma list), ``tradeIds``, ``sourceTradeNos``, ``tradeDeliveryNo`` or a time window must be
  given. Windows (``startModified/endModified`` on ``gmtModified``, ``…Created`` on ``gmtCreate``, ``…ConsignTime``,
  ``…AuditTime``, ``…CompleteTime``, ``…TradeTime``) are ``yyyy-MM-dd HH:mm:ss`` Beijing time, as the records'
  times are; a window over ``max_window`` (7 days, "起止时间不能超过7天") is refused. Both ends of a window must be
  given (the 7-day rule needs both) [I]. Inclusive or exclusive ends: the gateway's bounds, as for warehouses.
* ``pageSize`` defaults to 50, at most 200. Without ``scrollId``: offset pages (``pageIndex``, 0-based [I]) over
  the live data, ordered by ``tradeId``, so an edit between two page reads shifts later pages. With
  ``scrollId: ""``: a scroll starts over a **snapshot** of the matching trades (ordered by ``tradeId``) and each
  page returns a new scroll id (only when ``scrollId`` is listed in ``fields``, as the doc says), which the next
  call sends back ("分页pageIndx失效": ``pageIndex`` is then ignored, and so are the filters: the snapshot holds).
* Where the scroll id comes back is unsure [?]: ``scroll_id_location`` ``data`` (``result.data.scrollId``, the
  doc's example, default), ``rows`` (on every trade) or ``last_row`` (on the last trade, as one Go client reads
  it). Whether an answered scroll id may be sent again is unknown: ``scroll_replay`` (default yes: the same page
  again, so a retried call is safe). Scrolls expire after ``scroll_idle`` without use (sandbox clock) and/or
  ``scroll_max_uses`` pages, or by :meth:`TradeBook.expire_scrolls`; the expired answer's sub-code and message are
  not documented and **made up** (:data:`SCROLL_EXPIRED`, configurable).
* Filters: ``tradeStatus``/``tradeStatusList``, ``tradeType``/``tradeTypeList``, ``shopIds``, ``warehouseIds``
  (JSON arrays, arrays inside strings as the doc's example sends them, or comma text), ``isDelete`` (0/1; when
  missing, deleted trades are included unless ``hide_deleted``: the default is not documented [?]).
  ``hasTotal: 1`` (or ``totalResults`` in ``fields``) adds ``totalResults``.
* The shop code's key is ``shopcode`` in the official doc copy; ``shop_code_key`` renames it. Long ids
  (``tradeId``, ``shopId``, ``warehouseId``, ``subTradeId``, ``goodsId``, ``specId``) are strings, or numbers with
  ``ids_as_numbers`` (the doc types them Long, its example sends strings) [?].
* After-sales returns (``tradeType`` 8) carry negative quantities and amounts [I: a public return-bill mapping
  negates ``sellCount``].

Records are never changed in place (an edit stores a new dict), so a snapshot is a list of references.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jikeyun_kingdee.sandbox.jikeyun_common import (
    DEFAULT_FROM,
    DEFAULT_TO,
    ApiFailure,
    Bounds,
    Check,
    IdMaker,
    SandboxClock,
    bad_parameter,
    beijing_midnight,
    between,
    epoch_ms,
    field_between,
    field_in,
    flag_is,
    parse_id_list,
    parse_wire_time,
    passes,
    pick,
    wire_time,
)

TRADES_METHOD = "oms.trade.fullinfoget"
#: made up: no source shows the answer to an expired or unknown scroll id (configurable per sandbox)
SCROLL_EXPIRED = ("0050030098", "游标已失效，请重新查询 (scrollId expired or unknown; sandbox sub-code, made up)")
STATUS_NAMES = {
    1010: "待审核", 2000: "备货等待", 4110: "待发货待递交", 4122: "待发货已取消", 4130: "待发货部分发货",
    5010: "已取消", 5020: "已取消被合并", 5030: "已取消被拆分", 6000: "发货在途", 9090: "已完成",
}
TYPE_NAMES = {1: "零售业务", 2: "代发货", 7: "售后发货", 8: "售后退货", 9: "批发业务"}
SHIPPED = frozenset({4130, 6000, 9090})
CANCELLED = frozenset({4122, 5010, 5020, 5030})
#: request window pairs (start, end) and the record time each filters
WINDOWS = (
    ("gmtModified", "startModified", "endModified"), ("gmtCreate", "startCreated", "endCreated"),
    ("consignTime", "startConsignTime", "endConsignTime"), ("auditTime", "startAuditTime", "endAuditTime"),
    ("completeTime", "startCompleteTime", "endCompleteTime"), ("tradeTime", "startTradeTime", "endTradeTime"),
)
#: number criteria and the record field each matches
NUMBER_CRITERIA = {"tradeNo": "tradeNo", "tradeIds": "tradeId", "sourceTradeNos": "sourceTradeNo",
                   "tradeDeliveryNo": "tradeDeliveryNo"}
_ID_FIELDS = ("tradeId", "shopId", "warehouseId")
_LINE_ID_FIELDS = ("subTradeId", "tradeId", "goodsId", "specId")
SCROLL_ID_LOCATIONS = ("data", "rows", "last_row")

#: statuses by weight (in 100): 58 % completed, 15 % in transit, 8 % waiting to ship, 6 % cancelled …
_STATUSES = (9090,) * 58 + (6000,) * 15 + (4110,) * 8 + (4130,) * 3 + (5010,) * 6 + (1010,) * 4 + (2000,) * 2 + (
    4122, 5020, 5020, 5030)
#: types by weight (in 100): 80 % retail, 6 % after-sales returns, 6 % wholesale, 4 % drop-shipping, 4 % resends
_TYPES = (1,) * 80 + (2,) * 4 + (7,) * 4 + (8,) * 6 + (9,) * 6
_COUNTS = (1,) * 60 + (2,) * 20 + (3,) * 8 + (4,) * 5 + (5,) * 4 + (10,) * 3
#: lines per trade as [low, high) ranges by weight (in 1000): mostly one or two, now and then up to 200
_LINE_COUNTS = ((1, 2),) * 550 + ((2, 3),) * 200 + ((3, 4),) * 100 + ((4, 6),) * 80 + ((6, 11),) * 40 + (
    (11, 31),) * 20 + ((31, 101),) * 8 + ((101, 201),) * 2
DELETED_TRADES = 0.01
_SHOPS = (  # shopId, shopName, shopcode, shopTypeCode; the last one sells wholesale (tradeType 9)
    ("1647727244400592896", "依然天猫旗舰店", "TM001", "TMALL"),
    ("1647727244400592897", "依然京东旗舰店", "JD001", "JD"),
    ("1647727244400592898", "依然抖音小店", "DY001", "FXG"),
    ("1647727244400592899", "依然拼多多店", "PDD001", "PDD"),
    ("1647727244400592900", "依然微信小程序", "WX001", "WEIXIN"),
    ("1647727244400592901", "线下批发部", "PF001", "OFFLINE"),
)
_LOGISTICS = (("申通快递", "STO"), ("中通快递", "ZTO"), ("顺丰速运", "SF"), ("圆通速递", "YTO"), ("韵达快递", "YUNDA"))
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_MEMOS = ("", "", "", "", "", "加急", "顺丰发货", "送小样", "开发票")
TAX_RATE = 0.13


def _ids(value: Any) -> set[str]:
    return set(parse_id_list(value))


def _cents(value: float) -> int:
    return round(value * 100)


def priced(line: dict[str, Any], order_rate: float) -> dict[str, Any]:
    """A line with its amounts computed from ``sellCount``, ``sellPrice``, its own ``discountFee`` and the share
    ``order_rate`` of the trade's discount: ``shareFavourableAfterFee = sellTotal - shareFavourableFee``."""
    total = round(line["sellCount"] * _cents(line["sellPrice"]))
    own = _cents(line.get("discountFee") or 0)
    share = own + round((total - own) * order_rate)
    after = total - share
    tax = round(after * line.get("taxRate", 0) / (1 + line.get("taxRate", 0)))
    return {**line, "sellTotal": total / 100, "shareFavourableFee": share / 100,
            "shareFavourableAfterFee": after / 100, "divideSellTotal": after / 100, "taxFee": tax / 100}


def order_rate(line: dict[str, Any]) -> float:
    """The share of the trade's discount a priced line carries."""
    base = _cents(line["sellTotal"]) - _cents(line.get("discountFee") or 0)
    return (_cents(line["shareFavourableFee"]) - _cents(line.get("discountFee") or 0)) / base if base else 0.0


def totalled(trade: dict[str, Any]) -> dict[str, Any]:
    """A trade with its header amounts summed from its lines."""
    lines = trade["goodsDetail"]
    total = sum(_cents(line["sellTotal"]) for line in lines)
    discount = sum(_cents(line["shareFavourableFee"]) for line in lines)
    return {**trade, "totalFee": total / 100, "discountFee": discount / 100,
            "payment": (total - discount + _cents(trade.get("postFee") or 0)) / 100,
            "taxFee": sum(_cents(line["taxFee"]) for line in lines) / 100,
            "tradeCount": round(sum(line["sellCount"] for line in lines), 4),
            "goodsTypeCount": len({line["barcode"] for line in lines})}


class _TradeMaker:
    """Builds realistic trades over given SKUs and warehouses (shared by the generator and ``add_trade``)."""

    def __init__(self, skus: Sequence[dict[str, Any]], warehouses: Sequence[dict[str, Any]], make_id: IdMaker) -> None:
        self.skus = [s for s in skus if not s.get("isDelete")]
        active = [w for w in warehouses if not w.get("isDelete") and not w.get("isBlockup")]
        self.warehouses = active or list(warehouses)
        if not self.skus or not self.warehouses:
            raise ValueError("trades need goods (SKUs not deleted) and warehouses in the sandbox")
        self.make_id = make_id

    def trade(self, rng: random.Random, number: int, modified: int, *, status: int | None = None,
              trade_type: int | None = None, lines: int | list[dict[str, Any]] | None = None,
              at_once: bool = False) -> dict[str, Any]:
        """One trade last modified at ``modified`` (epoch s); ``at_once``: every time of it is that second."""
        draw = rng.random
        status = status if status is not None else pick(draw, _STATUSES)
        trade_type = trade_type if trade_type is not None else pick(draw, _TYPES)

        def before(low: int, high: int) -> int:
            return 0 if at_once else between(draw, low, high)

        times: dict[str, int | None] = dict.fromkeys(("completeTime", "consignTime", "auditTime"))
        moment = modified - before(1, 600)
        if status == 9090:
            times["completeTime"] = moment
            moment -= before(2 * 86400, 10 * 86400)
        if status in SHIPPED:
            times["consignTime"] = moment
            moment -= before(1800, 2 * 86400)
        if status != 1010:
            times["auditTime"] = moment
            moment -= before(60, 3600)
        created = moment
        ordered = created - before(10, 600)
        shop_id, shop_name, shop_code, shop_type = pick(draw, _SHOPS[:-1] if trade_type != 9 else _SHOPS[-1:])
        warehouse = pick(draw, self.warehouses)
        day = wire_time(created * 1000)[:10].replace("-", "")
        customer = pick(draw, _SURNAMES) + ("氏商贸" if trade_type == 9 else pick(draw, ("先生", "女士")))
        trade: dict[str, Any] = {
            "tradeId": str(self.make_id(created * 1000)), "tradeNo": f"JY{day}{number % 10**6:06d}",
            "tradeStatus": status, "tradeStatusExplain": STATUS_NAMES.get(status, ""),
            "tradeType": trade_type, "tradeFrom": {7: 6, 8: 6, 9: 2}.get(trade_type, 1),
            "shopId": shop_id, "shopName": shop_name, "shopcode": shop_code, "shopTypeCode": shop_type,
            "warehouseId": warehouse["warehouseId"], "warehouseCode": warehouse["warehouseCode"],
            "warehouseName": warehouse["warehouseName"], "companyName": warehouse.get("warehouseCompanyName"),
            "customerCode": f"C{between(draw, 10**7, 10**8)}", "customerName": customer,
            "sourceTradeNo": str(between(draw, 10**17, 10**18)), "onlineTradeNo": str(between(draw, 10**17, 10**18)),
            "tradeTime": wire_time(ordered * 1000), "payTime": wire_time((ordered + created) // 2 * 1000),
            "gmtCreate": wire_time(created * 1000),
            **{k: wire_time(v * 1000) if v is not None else None for k, v in times.items()},
            "gmtModified": wire_time(modified * 1000),
            "postFee": pick(draw, (0.0, 0.0, 0.0, 6.0, 8.0, 12.0)), "chargeCurrency": "人民币",
            "chargeCurrencyCode": "CNY", "payStatus": 9, "isDelete": int(draw() < DELETED_TRADES),
            "sellerMemo": pick(draw, _MEMOS), "buyerMemo": pick(draw, _MEMOS), "seller": pick(draw, _SURNAMES) + "经理",
            "logisticName": None, "logisticCode": None, "mainPostid": None, "stockoutNo": None,
        }
        if status in SHIPPED:
            trade.update(self.shipment(draw, trade))
        count = lines if isinstance(lines, int) else len(lines) if lines else between(draw, *pick(draw, _LINE_COUNTS))
        specs = lines if isinstance(lines, list) else [{}] * count
        discount_rate = pick(draw, (0.0, 0.0, 0.0, 0.05, 0.1, 0.15))
        detail = [self.line(draw, trade, created * 1000, spec, discount_rate, gift_allowed=count > 1)
                  for spec in specs]
        if status in SHIPPED:
            shipped = (times["consignTime"] or modified) * 1000
            detail = [{**line, "goodsDelivery": self.batches(draw, line, shipped)} if "goodsDelivery" in line
                      else line for line in detail]
        return totalled({**trade, "goodsDetail": detail})

    def line(self, draw: Callable[[], float], trade: dict[str, Any], created_ms: int, spec: dict[str, Any],
             discount_rate: float, *, gift_allowed: bool) -> dict[str, Any]:
        sku = self.sku(draw, spec)
        wholesale, sign = trade["tradeType"] == 9, -1 if trade["tradeType"] == 8 else 1
        count: float = between(draw, 10, 201) if wholesale else pick(draw, _COUNTS)
        if sku.get("unitName") == "千克":
            count = round(count * pick(draw, (0.5, 1, 1.5, 2.5)), 2)
        gift = gift_allowed and draw() < 0.05
        price = 0.0 if gift else round(float(sku.get("retailPrice") or 0) * (0.8 if wholesale else 1), 2)
        own_discount = 0.0 if gift or draw() < 0.85 else round(price * count * pick(draw, (0.02, 0.05)), 2)
        line = {
            "subTradeId": str(self.make_id(created_ms)), "tradeId": trade["tradeId"],
            "goodsId": sku["goodsId"], "specId": sku["skuId"], "goodsNo": sku["goodsNo"],
            "goodsName": sku["goodsName"], "specName": sku["skuName"], "barcode": sku["skuBarcode"],
            "unit": sku["unitName"], "outerId": sku.get("skuNo"), "cateName": sku.get("cateName"),
            "brandName": sku.get("brandName"), "sellCount": count * sign, "sellPrice": price,
            "discountFee": own_discount * sign, "taxRate": TAX_RATE, "isGift": int(gift), "isFit": 0,
            "refundStatus": 0, "goodsMemo": "",
        }
        line.update({k: v for k, v in spec.items() if k not in ("skuId", "barcode")})
        line = priced(line, 0.0 if gift else discount_rate)
        if sku.get("isBatchMgmt"):  # batch-managed goods: their batches once shipped (goodsDelivery.*)
            line["goodsDelivery"] = []
        return line

    def sku(self, draw: Callable[[], float], spec: dict[str, Any]) -> dict[str, Any]:
        """The SKU a line spec names by ``skuId`` or ``barcode``, else a random one."""
        for key, field_name in (("skuId", "skuId"), ("barcode", "skuBarcode")):
            if key in spec:
                found = [s for s in self.skus if str(s[field_name]) == str(spec[key])]
                if not found:
                    raise KeyError(f"no SKU with {field_name} {spec[key]!r} (deleted goods cannot be sold)")
                return found[0]
        return pick(draw, self.skus)

    @staticmethod
    def shipment(draw: Callable[[], float], trade: dict[str, Any]) -> dict[str, Any]:
        name, code = pick(draw, _LOGISTICS)
        day = (trade.get("consignTime") or trade["gmtModified"])[:10].replace("-", "")
        return {"logisticName": name, "logisticCode": code, "mainPostid": f"{code}{between(draw, 10**11, 10**12)}",
                "stockoutNo": f"CK{day}{trade['tradeNo'][-6:]}"}

    @staticmethod
    def batches(draw: Callable[[], float], line: dict[str, Any], shipped_ms: int) -> list[dict[str, Any]]:
        produced = beijing_midnight(shipped_ms) - between(draw, 10, 200) * 86_400_000
        text = wire_time(produced)
        return [{"batchNo": f"B{text[:10].replace('-', '')}{between(draw, 10, 99)}", "sendCount": line["sellCount"],
                 "productionDate": text, "expirationDate": wire_time(produced + 365 * 86_400_000)}]


def generate_trades(
    n: int,
    *,
    skus: Sequence[dict[str, Any]],
    warehouses: Sequence[dict[str, Any]],
    seed: int = 7,
    modified_from: datetime = DEFAULT_FROM,
    modified_to: datetime = DEFAULT_TO,
) -> list[dict[str, Any]]:
    """``n`` realistic trades over these SKUs (not deleted) and warehouses (active), the same for the same
    arguments: lines reference the SKUs (``skuBarcode`` as ``barcode``, ``unitName`` as ``unit``), statuses and
    types in realistic proportions (58 % completed, 15 % in transit, 6 % returns …), one or two lines mostly and
    now and then up to 200, shop discounts apportioned to lines, gifts. ``gmtModified`` (whole seconds) is spread
    over ``[modified_from, modified_to)``; the earlier times of each trade lie before it."""
    if n <= 0:
        return []
    rng = random.Random(seed)
    maker = _TradeMaker(skus, warehouses, IdMaker())
    start = int(modified_from.timestamp())
    span = int(modified_to.timestamp()) - start
    return [maker.trade(rng, number, start + rng.randrange(span)) for number in range(1, n + 1)]


@dataclass
class _Scroll:
    trades: list[dict[str, Any]]
    last_used: datetime
    uses: int = 0
    expired: bool = False
    answered: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Projection:
    header: tuple[str, ...]
    lines: tuple[str, ...] | None  # None: no goodsDetail; () with whole_lines: every line field
    whole_lines: bool
    deliveries: tuple[str, ...]
    scroll_id: bool
    total: bool


class TradeBook:
    """The sandbox's trades: records, scripted changes, scrolls and the method's handler.

    :param records: raw trades (:func:`generate_trades`).
    :param skus: the sandbox's current SKU records (for added trades).
    :param warehouses: the sandbox's current warehouse records (for added trades).
    :param max_window: the longest window accepted (7 days).
    :param scroll_id_location: ``data`` | ``rows`` | ``last_row``.
    :param scroll_idle: a scroll expires after this long without use (sandbox clock); ``None``: never.
    :param scroll_max_uses: a scroll expires after answering this many pages; ``None``: never.
    :param scroll_replay: an answered scroll id may be sent again (answers the same page).
    :param scroll_expired: ``(subCode, msg)`` of the made-up expired-scroll answer.
    :param hide_deleted: leave deleted trades out when ``isDelete`` is not sent.
    :param shop_code_key: the key of the shop code in answers and ``fields``.
    :param ids_as_numbers: long ids as JSON numbers instead of strings.
    """

    def __init__(self, records: Iterable[dict[str, Any]], *, clock: SandboxClock, bounds: Bounds,
                 skus: Callable[[], Sequence[dict[str, Any]]], warehouses: Callable[[], Sequence[dict[str, Any]]],
                 page_size_max: int = 200, max_window: timedelta = timedelta(days=7),
                 scroll_id_location: str = "data", scroll_idle: timedelta | None = timedelta(minutes=10),
                 scroll_max_uses: int | None = None, scroll_replay: bool = True,
                 scroll_expired: tuple[str, str] = SCROLL_EXPIRED, hide_deleted: bool = False,
                 shop_code_key: str = "shopcode", ids_as_numbers: bool = False, seed: int = 7) -> None:
        if scroll_id_location not in SCROLL_ID_LOCATIONS:
            raise ValueError(f"scroll_id_location is one of {SCROLL_ID_LOCATIONS}, not {scroll_id_location!r}")
        self.clock, self.bounds, self.page_size_max, self.max_window = clock, bounds, page_size_max, max_window
        self.scroll_id_location = scroll_id_location
        self.scroll_idle, self.scroll_max_uses = scroll_idle, scroll_max_uses
        self.scroll_replay, self.scroll_expired, self.hide_deleted = scroll_replay, scroll_expired, hide_deleted
        self.shop_code_key, self.ids_as_numbers = shop_code_key, ids_as_numbers
        self._skus, self._warehouses, self._seed = skus, warehouses, seed
        self.records: dict[int, dict[str, Any]] = {int(t["tradeId"]): t for t in records}
        self._order = sorted(self.records)
        self._by_no = {t["tradeNo"]: int(t["tradeId"]) for t in self.records.values()}
        self._numbers = itertools.count(len(self.records) + 500_001)
        self._make_id = IdMaker(start=10**6 + sum(len(t["goodsDetail"]) + 1 for t in self.records.values()))
        self._scrolls: dict[str, tuple[_Scroll, int]] = {}
        self._scroll_serial = itertools.count(1)
        self._paging_modification: dict[str, Any] | None = None
        self._lock = threading.RLock()

    # -- reading ----------------------------------------------------------------------------------------------
    def trade(self, trade_no: str) -> dict[str, Any]:
        with self._lock:
            if trade_no not in self._by_no:
                raise KeyError(f"no trade {trade_no!r}")
            return self.records[self._by_no[trade_no]]

    # -- scripting --------------------------------------------------------------------------------------------
    def add_trade(self, *, lines: int | list[dict[str, Any]] = 1, status: int = 4110, trade_type: int = 1,
                  modified_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Add a trade over the sandbox's goods and warehouses, created, audited (unless 1010) and last modified at
        ``modified_at`` (default now). ``lines``: a count of random SKUs, or one dict per line choosing the SKU by
        ``skuId`` or ``barcode`` and overriding line fields (``sellCount``, ``sellPrice``, ``isGift`` …); header
        ``fields`` override the rest. Returns the stored trade."""
        moment = modified_at or self.clock.now()
        with self._lock:
            number = next(self._numbers)
            maker = _TradeMaker(self._skus(), self._warehouses(), self._make_id)
            trade = maker.trade(random.Random(self._seed * 1_000_003 + number), number, int(moment.timestamp()),
                                status=status, trade_type=trade_type, lines=lines, at_once=True)
            trade = {**trade, **fields}
            if trade["tradeNo"] in self._by_no:
                raise ValueError(f"tradeNo {trade['tradeNo']!r} exists")
            self._store(trade)
            return trade

    def edit_trade(self, trade_no: str, *, modified_at: datetime | None = None, **changes: Any) -> dict[str, Any]:
        """Header changes (not ids, lines or ``gmtModified``); ``gmtModified`` = ``modified_at`` (default now)."""
        wrong = sorted(set(changes) & {"tradeId", "tradeNo", "goodsDetail", "gmtModified"})
        if wrong:
            raise ValueError(f"not editable trade fields: {wrong} (use edit_line for lines)")
        return self._replace(trade_no, modified_at, changes)

    def edit_line(self, trade_no: str, sub_trade_id: str, *, modified_at: datetime | None = None,
                  **changes: Any) -> dict[str, Any]:
        """Change one line (``sellCount``, ``sellPrice``, ``discountFee``, ``isGift``, ``goodsMemo`` …); its amounts
        and the trade's totals follow; ``gmtModified`` moves. Returns the new trade."""
        wrong = sorted(set(changes) & {"subTradeId", "tradeId", "sellTotal", "shareFavourableFee",
                                       "shareFavourableAfterFee", "divideSellTotal", "taxFee"})
        if wrong:
            raise ValueError(f"not editable line fields (ids, or computed from count and price): {wrong}")
        with self._lock:
            trade = self.trade(trade_no)
            lines = list(trade["goodsDetail"])
            index = next((i for i, line in enumerate(lines) if line["subTradeId"] == str(sub_trade_id)), None)
            if index is None:
                raise KeyError(f"trade {trade_no!r} has no line {sub_trade_id!r}")
            rate = order_rate(lines[index])
            lines[index] = priced({**lines[index], **changes}, rate)
            return self._replace(trade_no, modified_at, {"goodsDetail": lines})

    def ship(self, trade_no: str, *, at: datetime | None = None) -> dict[str, Any]:
        """A trade waiting to ship (e.g. 4110) ships: 6000 发货在途, ``consignTime`` and ``gmtModified`` = ``at``."""
        with self._lock:
            trade = self.trade(trade_no)
            status = trade["tradeStatus"]
            if status in SHIPPED - {4130} or status in CANCELLED:
                raise ValueError(f"trade {trade_no} is {status} {trade['tradeStatusExplain']}: cannot ship")
            moment = at or self.clock.now()
            text = wire_time(epoch_ms(moment))
            draw = random.Random(int(trade["tradeId"])).random
            shipped = {**trade, "consignTime": text, "auditTime": trade.get("auditTime") or text}
            shipped.update(_TradeMaker.shipment(draw, shipped))
            shipped["goodsDetail"] = [{**line, "goodsDelivery": _TradeMaker.batches(draw, line, epoch_ms(moment))}
                                      if "goodsDelivery" in line else line for line in trade["goodsDetail"]]
            return self._replace(trade_no, moment, {**shipped, **self._status(6000)})

    def complete(self, trade_no: str, *, at: datetime | None = None) -> dict[str, Any]:
        """A shipped trade completes: 9090 已完成, ``completeTime`` and ``gmtModified`` = ``at``."""
        with self._lock:
            if self.trade(trade_no)["tradeStatus"] not in SHIPPED:
                raise ValueError(f"trade {trade_no} is not shipped: cannot complete")
            moment = at or self.clock.now()
            return self._replace(trade_no, moment, {"completeTime": wire_time(epoch_ms(moment)), **self._status(9090)})

    def cancel(self, trade_no: str, *, at: datetime | None = None) -> dict[str, Any]:
        """A trade not shipped yet is cancelled: 5010 已取消."""
        with self._lock:
            if self.trade(trade_no)["tradeStatus"] in SHIPPED:
                raise ValueError(f"trade {trade_no} has shipped: cannot cancel")
            return self._replace(trade_no, at, self._status(5010))

    def delete(self, trade_no: str, *, at: datetime | None = None) -> dict[str, Any]:
        """Delete a trade: ``isDelete`` = 1 (see ``hide_deleted`` for who still sees it)."""
        return self._replace(trade_no, at, {"isDelete": 1})

    def modify_during_paging(self, *, after_page: int | None = None, after_calls: int | None = None,
                             count: int = 1, action: str = "edit", modified_at: datetime | None = None,
                             **changes: Any) -> None:
        """One-shot concurrent change of the first ``count`` trades of a page, right after it is answered.

        :param after_page: after a non-empty page at this ``pageIndex`` (offset) or page number (scroll, from 0) ...
        :param after_calls: ... or after the ``after_calls``-th trades page served from now.
        :param action: ``edit`` (header ``changes``), ``ship``, ``complete``, ``cancel``, ``delete``, or ``expire``
            (every open scroll expires, as an idle one does on the real server).
        :param modified_at: when; default the sandbox's now.
        """
        if (after_page is None) == (after_calls is None):
            raise ValueError("give exactly one of after_page and after_calls")
        if action not in ("edit", "ship", "complete", "cancel", "delete", "expire"):
            raise ValueError(f"unknown action {action!r}")
        with self._lock:
            self._paging_modification = {"after_page": after_page, "after_calls": after_calls, "count": count,
                                         "action": action, "modified_at": modified_at, "changes": changes}

    def expire_scrolls(self) -> int:
        """Expire every open scroll; returns how many there were."""
        with self._lock:
            scrolls = {id(s): s for s, _ in self._scrolls.values() if not s.expired}
            for scroll in scrolls.values():
                scroll.expired = True
            return len(scrolls)

    # -- protocol ---------------------------------------------------------------------------------------------
    def handle(self, biz: dict[str, Any]) -> dict[str, Any]:
        """One page of ``oms.trade.fullinfoget``: ``{"trades": [...]}`` plus ``scrollId`` / ``totalResults``."""
        if not str(biz.get("fields") or "").strip():
            raise bad_parameter("查询字段不能为空 (fields is required)")
        projection = self._projection(str(biz["fields"]))
        try:
            page_size = int(50 if biz.get("pageSize") in (None, "") else biz["pageSize"])
            page_index = int(0 if biz.get("pageIndex") in (None, "") else biz["pageIndex"])
        except (TypeError, ValueError):
            raise bad_parameter("参数格式错误 (pageIndex/pageSize)") from None
        if page_index < 0 or not 1 <= page_size <= self.page_size_max:
            raise bad_parameter(f"pageSize超出范围 1..{self.page_size_max}")
        scroll_id = biz.get("scrollId")
        with self._lock:
            scroll: _Scroll | None = None
            if scroll_id not in (None, ""):  # a scroll goes on over its snapshot: filters and pageIndex ignored
                scroll, position = self._open_scroll(str(scroll_id))
                trades = scroll.trades
            else:
                checks = self._criteria(biz)
                trades = [t for t in (self.records[i] for i in self._order) if passes(t, checks)]
                position = 0 if scroll_id == "" else page_index * page_size
                if scroll_id == "":
                    self._forget_expired()
                    scroll = _Scroll(trades, self.clock.now())
            page = trades[position : position + page_size]
            next_id = None
            if scroll is not None:
                scroll.uses += 1
                scroll.last_used = self.clock.now()
                next_id = self._scroll_id(scroll, position + page_size)
            self._apply_due_modification(position // page_size, page)
        data: dict[str, Any] = {"trades": [self._project(t, projection) for t in page]}
        if next_id is not None and projection.scroll_id:
            if self.scroll_id_location == "data":
                data["scrollId"] = next_id
            else:
                for row in data["trades"] if self.scroll_id_location == "rows" else data["trades"][-1:]:
                    row["scrollId"] = next_id
        if projection.total or str(biz.get("hasTotal", "")) == "1":
            data["totalResults"] = len(trades)
        return data

    def _criteria(self, biz: dict[str, Any]) -> list[Check]:
        """The request's filters as checks; refuses a request without a criterion or with a window over
        ``max_window``."""
        checks = []
        for record_field, start_key, end_key in WINDOWS:
            start, end = biz.get(start_key), biz.get(end_key)
            if start in (None, "") and end in (None, ""):
                continue
            if start in (None, "") or end in (None, ""):
                raise bad_parameter(f"{start_key}/{end_key}须成对传入 (both ends of a window)")
            try:
                low, high = parse_wire_time(str(start)), parse_wire_time(str(end))
            except ValueError:
                raise bad_parameter(f"{start_key}/{end_key}时间格式错误 (yyyy-MM-dd HH:mm:ss)") from None
            if high - low > self.max_window.total_seconds() * 1000:
                raise bad_parameter(f"起止时间不能超过{self.max_window.days}天 ({start_key}/{end_key})")
            low, high = self.bounds.closed(low, high, step=1000)  # record times are whole seconds
            checks.append(field_between(record_field, wire_time(low), wire_time(high)))
        numbers = [field_in(field, _ids(biz.get(key))) for key, field in NUMBER_CRITERIA.items()
                   if biz.get(key) not in (None, "", [])]
        if not checks and not numbers:
            raise bad_parameter("销售单号、网店订单号、分批发货申请单号、修改时间、创建时间、审核时间、发货时间、"
                                "完成时间、下单时间必传其一")
        try:
            statuses = {int(s) for s in _ids(biz.get("tradeStatus")) | _ids(biz.get("tradeStatusList"))}
            types = {int(t) for t in _ids(biz.get("tradeType")) | _ids(biz.get("tradeTypeList"))}
            deleted = None if biz.get("isDelete") in (None, "") else int(biz["isDelete"])
        except (TypeError, ValueError):
            raise bad_parameter("参数格式错误 (tradeStatus/tradeType/isDelete)") from None
        if deleted is None and self.hide_deleted:
            deleted = 0
        sets: dict[str, set[Any]] = {"tradeStatus": statuses, "tradeType": types, "shopId": _ids(biz.get("shopIds")),
                "warehouseId": _ids(biz.get("warehouseIds"))}
        checks += numbers + [field_in(field, values) for field, values in sets.items() if values]
        return checks + ([] if deleted is None else [flag_is("isDelete", deleted)])

    def _projection(self, fields: str) -> _Projection:
        names = [n.strip() for n in fields.split(",") if n.strip()]
        lines = tuple(n.split(".", 1)[1] for n in names if n.startswith("goodsDetail."))
        deliveries = tuple(n.split(".", 1)[1] for n in names if n.startswith("goodsDelivery."))
        whole_lines = "goodsDetail" in names and not lines
        header = tuple(n for n in names if "." not in n and n not in ("goodsDetail", "scrollId", "totalResults"))
        return _Projection(header, lines if lines or deliveries or whole_lines else None, whole_lines, deliveries,
                           "scrollId" in names, "totalResults" in names)

    def _project(self, trade: dict[str, Any], projection: _Projection) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name in projection.header:
            key = "shopcode" if name == self.shop_code_key else name
            if key in trade and (key != "shopcode" or name == self.shop_code_key):
                row[name] = self._id(key, trade[key], _ID_FIELDS)
        if projection.lines is not None:
            row["goodsDetail"] = [self._project_line(line, projection) for line in trade["goodsDetail"]]
        return row

    def _project_line(self, line: dict[str, Any], projection: _Projection) -> dict[str, Any]:
        if projection.whole_lines:
            row = {k: self._id(k, v, _LINE_ID_FIELDS) for k, v in line.items() if k != "goodsDelivery"}
        else:
            row = {k: self._id(k, line[k], _LINE_ID_FIELDS) for k in projection.lines or () if k in line}
        if projection.deliveries or projection.whole_lines:
            keys = projection.deliveries
            row["goodsDelivery"] = [{k: v for k, v in batch.items() if not keys or k in keys}
                                    for batch in line.get("goodsDelivery") or ()]
        return row

    def _id(self, key: str, value: Any, id_fields: tuple[str, ...]) -> Any:
        return int(value) if self.ids_as_numbers and key in id_fields and value is not None else value

    # -- scrolls ----------------------------------------------------------------------------------------------
    def _scroll_id(self, scroll: _Scroll, position: int) -> str:
        scroll_id = hashlib.md5(f"{self._seed}:{next(self._scroll_serial)}".encode()).hexdigest()
        self._scrolls[scroll_id] = (scroll, position)
        return scroll_id

    def _open_scroll(self, scroll_id: str) -> tuple[_Scroll, int]:
        entry = self._scrolls.get(scroll_id)
        if entry is None or self._expired(entry[0]) or (scroll_id in entry[0].answered and not self.scroll_replay):
            raise ApiFailure(*self.scroll_expired)
        entry[0].answered.add(scroll_id)
        return entry

    def _expired(self, scroll: _Scroll) -> bool:
        idle = self.scroll_idle is not None and self.clock.now() - scroll.last_used > self.scroll_idle
        used_up = self.scroll_max_uses is not None and scroll.uses >= self.scroll_max_uses
        return scroll.expired or idle or used_up

    def _forget_expired(self) -> None:
        for scroll_id in [k for k, (scroll, _) in self._scrolls.items() if self._expired(scroll)]:
            del self._scrolls[scroll_id]

    # -- internals --------------------------------------------------------------------------------------------
    def _apply_due_modification(self, page_number: int, page: list[dict[str, Any]]) -> None:
        plan = self._paging_modification
        if plan is None:
            return
        if plan["after_calls"] is not None:
            plan["after_calls"] -= 1
            due = plan["after_calls"] <= 0
        else:
            due = plan["after_page"] == page_number and bool(page)
        if not due:
            return
        self._paging_modification = None
        if plan["action"] == "expire":
            self.expire_scrolls()
            return
        for trade in page[: plan["count"]]:
            number, moment = trade["tradeNo"], plan["modified_at"]
            if plan["action"] == "edit":
                self.edit_trade(number, modified_at=moment, **plan["changes"])
            else:
                getattr(self, plan["action"])(number, at=moment)

    @staticmethod
    def _status(status: int) -> dict[str, Any]:
        return {"tradeStatus": status, "tradeStatusExplain": STATUS_NAMES.get(status, "")}

    def _replace(self, trade_no: str, modified_at: datetime | None, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            trade = self.trade(trade_no)
            moment = wire_time(epoch_ms(modified_at or self.clock.now()))
            new = {**trade, **changes, "gmtModified": moment}
            if "goodsDetail" in changes:
                new = totalled(new)
            self.records[int(trade["tradeId"])] = new
            return new

    def _store(self, trade: dict[str, Any]) -> None:
        trade_id = int(trade["tradeId"])
        if trade_id in self.records:
            raise ValueError(f"tradeId {trade_id} exists")
        self.records[trade_id] = trade
        self._order.append(trade_id)
        self._order.sort()
        self._by_no[trade["tradeNo"]] = trade_id
