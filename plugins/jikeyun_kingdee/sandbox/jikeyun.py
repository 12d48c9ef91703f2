"""Jikeyun open-API sandbox, the gateway: signed form POSTs, dispatch by method, throttling, quotas and the sandbox's
clock; ``erp.warehouse.get`` over an in-memory warehouse dataset (here), ``erp.storage.goodslist`` over a goods
catalogue (:mod:`~jikeyun_kingdee.sandbox.jikeyun_goods`) and ``oms.trade.fullinfoget`` over sales trades
(:mod:`~jikeyun_kingdee.sandbox.jikeyun_trades`).

Protocol (see docs/protocol/jikeyun.md): the signature is checked (recomputed from the received parameters), the
timestamp must be Beijing time within ±10 minutes, pages are 0-based with ``pageSize`` ≤ 200 and offset
``pageIndex × pageSize``, the window filters ``gmtModified`` (Beijing time strings), ``includeDeleteAndBlockup`` = 1
adds deleted and blocked-up warehouses. Where the public sources say nothing the sandbox is configurable:
``start_inclusive`` / ``end_inclusive`` (window ends, for every method), ``code_as_string`` (``"200"`` instead of
``200``) and ``sort_by_modified`` — by default warehouses come ordered by ``gmtModified`` (then ``warehouseId``);
``False`` orders them by ``warehouseId`` only, a server whose order says nothing about time. Either order is stable
between calls. The goods and trades modules document their own assumptions and settings.

Quotas: ``daily_quota`` calls per method and Beijing day of the sandbox's clock — ``erp.storage.goodslist`` 1,000 by
default, as the official interface list says; other methods unlimited, their quotas are not known — answered with
sub-code ``0130000609`` 额度不足 once spent; ``calls_today`` counts them. ``quota`` is a budget of calls regardless
of the day (a scripted fault). The clock (:class:`~jikeyun_kingdee.sandbox.jikeyun_common.SandboxClock`) is real
time plus an offset that ``travel`` and ``advance_clock`` move, so tests cross Beijing midnight without sleeping;
the signature's timestamp is still checked against real time, because clients sign with the real clock. Every
answer's ``Date`` header is the sandbox's clock, as a real server's is its own; ``travel-after-refusal`` moves the
clock right after the next quota answer, as if the client had waited for the quota to reset.

Scripting (in-process or ``POST /_sandbox/<command>``): warehouses ``add-warehouse``, ``modify-warehouse``,
``block-warehouse``, ``bulk-edit`` (many warehouses in one modification second, as a bulk action or an import gives
them), ``modify-during-paging`` (edit records between two page reads), ``warehouses``; goods ``add-goods``,
``edit-goods``, ``edit-sku``, ``block-goods``, ``block-sku``, ``delete-goods``, ``bulk-edit-goods``,
``bulk-edit-skus``, ``modify-goods-during-paging``, ``goods``; trades ``add-trade``, ``edit-trade``, ``edit-line``,
``ship-trade``, ``complete-trade``, ``cancel-trade``, ``delete-trade``, ``modify-trades-during-paging``,
``expire-scrolls``, ``trades``; ``throttle``, ``quota``, ``daily-quota``, ``calls-today``, ``travel``,
``travel-after-refusal``, ``advance-clock``, ``clock``. Generic transport faults come from
:class:`~jikeyun_kingdee.sandbox._http.SandboxServer`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

import pendulum

from jikeyun_kingdee.sandbox._http import Reply, Request, SandboxServer
from jikeyun_kingdee.sandbox.jikeyun_common import BAD_PARAMETER as BAD_PARAMETER
from jikeyun_kingdee.sandbox.jikeyun_common import BEIJING as BEIJING
from jikeyun_kingdee.sandbox.jikeyun_common import DEFAULT_FROM as DEFAULT_FROM
from jikeyun_kingdee.sandbox.jikeyun_common import DEFAULT_TO as DEFAULT_TO
from jikeyun_kingdee.sandbox.jikeyun_common import NO_APPKEY as NO_APPKEY
from jikeyun_kingdee.sandbox.jikeyun_common import NOT_SUBSCRIBED as NOT_SUBSCRIBED
from jikeyun_kingdee.sandbox.jikeyun_common import QUOTA_EXHAUSTED as QUOTA_EXHAUSTED
from jikeyun_kingdee.sandbox.jikeyun_common import SIGN_ERROR as SIGN_ERROR
from jikeyun_kingdee.sandbox.jikeyun_common import THROTTLED as THROTTLED
from jikeyun_kingdee.sandbox.jikeyun_common import TIMESTAMP_EXPIRED as TIMESTAMP_EXPIRED
from jikeyun_kingdee.sandbox.jikeyun_common import ApiFailure, Bounds, SandboxClock, epoch_ms, to_datetime
from jikeyun_kingdee.sandbox.jikeyun_goods import GOODS_METHOD as GOODS_METHOD
from jikeyun_kingdee.sandbox.jikeyun_goods import SUCCESS as GOODS_SUCCESS
from jikeyun_kingdee.sandbox.jikeyun_goods import GoodsCatalogue, generate_catalogue
from jikeyun_kingdee.sandbox.jikeyun_trades import SCROLL_ID_LOCATIONS, TradeBook, generate_trades
from jikeyun_kingdee.sandbox.jikeyun_trades import TRADES_METHOD as TRADES_METHOD

# The sandbox stands for the server: it imports nothing of the client side (records, hooks), so a mistake there
# cannot hide by being made on both sides of the wire. Hence its own Beijing time zone (jikeyun_common).
WAREHOUSE_METHOD = "erp.warehouse.get"
#: calls per Beijing day: the official interface list gives erp.storage.goodslist 1000/day (30000/month, not
#: modelled); the quotas of erp.warehouse.get and oms.trade.fullinfoget are not known, so they are unlimited
DAILY_QUOTAS: Mapping[str, int] = {GOODS_METHOD: 1000}

_CITIES = [
    ("北京市", "北京市", "朝阳区", "BJ"), ("上海市", "上海市", "浦东新区", "SH"), ("广东省", "广州市", "白云区", "GZ"),
    ("广东省", "深圳市", "宝安区", "SZ"), ("浙江省", "杭州市", "余杭区", "HZ"), ("四川省", "成都市", "双流区", "CD"),
    ("湖北省", "武汉市", "东西湖区", "WH"), ("陕西省", "西安市", "未央区", "XA"), ("江苏省", "南京市", "江宁区", "NJ"),
    ("江苏省", "苏州市", "吴中区", "SU"), ("天津市", "天津市", "东丽区", "TJ"), ("重庆市", "重庆市", "渝北区", "CQ"),
    ("湖南省", "长沙市", "望城区", "CS"), ("河南省", "郑州市", "中牟县", "ZZ"), ("山东省", "青岛市", "黄岛区", "QD"),
    ("福建省", "厦门市", "集美区", "XM"), ("浙江省", "宁波市", "北仑区", "NB"), ("安徽省", "合肥市", "肥西县", "HF"),
]
_KINDS = ["总仓", "分仓", "电商仓", "退货仓", "中转仓", "门店仓", "保税仓", "冷链仓", "样品仓", "残次品仓"]
_TYPES = [("1", "自建自用"), ("2", "第三方仓"), ("3", "供应商仓"), ("4", "门店仓")]
_BRANDS = ["依然", "青禾", "优品", "嘉和", "鸿运", "悦享", "云杉", "立德"]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "涛", "明", "超", "霞", "平", "刚"]
_STREETS = ["物流园路", "工业大道", "仓储路", "开发区大道", "航空港路", "科技园路"]
_CHANNELS = [("天猫旗舰店", "TM"), ("京东自营", "JD"), ("抖音小店", "DY"), ("拼多多店", "PDD"), ("微信小程序", "WX")]


def generate_warehouses(
    n: int, seed: int = 7, modified_from: datetime = DEFAULT_FROM, modified_to: datetime = DEFAULT_TO
) -> list[dict[str, Any]]:
    """``n`` realistic raw Jikeyun warehouse records, the same for the same arguments.

    Codes are unique (``SH0001``), about 20 % are blocked up, about 2 % deleted; ``gmtModified`` (whole seconds,
    epoch ms) is spread over ``[modified_from, modified_to)``.
    """
    rng = random.Random(seed)
    start, span = int(modified_from.timestamp()), int(modified_to.timestamp() - modified_from.timestamp())
    records = []
    for i in range(1, n + 1):
        province, city, town, abbr = rng.choice(_CITIES)
        brand, kind = rng.choice(_BRANDS), rng.choice(_KINDS)
        type_code, type_name = rng.choice(_TYPES)
        warehouse_id = str(rng.randrange(10**17, 10**18))
        modified = start + rng.randrange(span)
        created = modified - rng.randrange(0, 3 * 365 * 86400)
        record: dict[str, Any] = {
            "warehouseId": warehouse_id,
            "warehouseCode": f"{abbr}{i:04d}",
            "warehouseName": f"{brand}{city[:-1]}{kind}",
            "isBlockup": 1 if rng.random() < 0.2 else 0,
            "isDelete": 1 if rng.random() < 0.02 else 0,
            "warehouseTypeCode": type_code,
            "warehouseTypeName": type_name,
            "countryName": "中国",
            "provinceName": province,
            "cityName": city,
            "townName": town,
            "streetName": f"{rng.choice(_STREETS)}",
            "address": f"{province}{city}{town}{rng.choice(_STREETS)}{rng.randrange(1, 999)}号",
            "postcode": f"{rng.randrange(100000, 860000)}",
            "tel": f"1{rng.choice('3456789')}{rng.randrange(10**8, 10**9)}",
            "linkMan": rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, rng.choice((1, 2)))),
            "gmtCreate": created * 1000,
            "gmtModified": modified * 1000,
            "warehouseDepartId": str(rng.randrange(10**17, 10**18)),
            "warehouseDepartName": f"{city}仓储部",
            "warehouseDepartCode": f"D{abbr}",
            "warehouseCompanyId": "968606409259025100",
            "warehouseCompanyName": f"{brand}电子商务有限公司",
            "warehouseCompanyCode": "I0134",
            "salesList": [
                {"warehouseId": warehouse_id, "channelId": str(rng.randrange(10**17, 10**18)),
                 "channelName": f"{brand}{name}", "channelCode": f"{code}{i:04d}"}
                for name, code in rng.sample(_CHANNELS, rng.randrange(0, 3))
            ],
        }
        if type_code == "3":
            record["vendId"], record["vendName"] = str(rng.randrange(10**17, 10**18)), f"{brand}供应链有限公司"
        records.append(record)
    return records


def verify_sign(params: dict[str, str], secret: str) -> bool:
    """The server side of the signature, written independently of the client's ``sign`` on purpose (both are
    pinned to the reference's test vector)."""
    pairs = sorted((k, v) for k, v in params.items() if k not in {"sign", "token", "contextid"})
    text = (secret + "".join(k + v for k, v in pairs) + secret).lower()
    return hashlib.md5(text.encode("utf-8")).hexdigest() == params.get("sign", "").lower()


class JikeyunSandbox(SandboxServer):
    """In-memory Jikeyun gateway on loopback.

    :param warehouses: how many warehouses :func:`generate_warehouses` makes.
    :param modified_from: the generated ``gmtModified`` values lie in ``[modified_from, modified_to)``.
    :param start_inclusive: ``gmtModifiedStart`` is ``>=`` (else ``>``); the real semantics are unknown.
    :param end_inclusive: ``gmtModifiedEnd`` is ``<=`` (else ``<``).
    :param code_as_string: answer ``"code": "200"`` instead of the number.
    :param sort_by_modified: order by ``gmtModified`` (documented behaviour of this sandbox); ``False`` orders by
        ``warehouseId``, a server whose order says nothing about time.
    :param goods: how many goods :func:`~jikeyun_kingdee.sandbox.jikeyun_goods.generate_catalogue` makes (1 to 5
        SKUs each), or ``skus``: how many SKU records.
    :param trades: how many trades :func:`~jikeyun_kingdee.sandbox.jikeyun_trades.generate_trades` makes over the
        generated goods and warehouses.
    :param daily_quota: calls per method and Beijing day (``None`` = unlimited); default :data:`DAILY_QUOTAS`.
    :param goods_options: keyword arguments of :class:`~jikeyun_kingdee.sandbox.jikeyun_goods.GoodsCatalogue`
        (``cursor_with_window``, ``epoch_ms_windows``).
    :param trades_options: keyword arguments of :class:`~jikeyun_kingdee.sandbox.jikeyun_trades.TradeBook`
        (``scroll_id_location``, ``scroll_idle``, ``scroll_max_uses``, ``scroll_replay``, ``scroll_expired``,
        ``hide_deleted``, ``shop_code_key``, ``ids_as_numbers``, ``max_window``).

    :attr:`last_request` holds the form parameters and headers of the last API request, for tests;
    :attr:`goods` and :attr:`trades` hold the goods catalogue and the trades, with their scripting methods.
    """

    name = "jikeyun"

    def __init__(
        self,
        *,
        appkey: str = "12345678",
        appsecret: str = "0123456789abcdef0123456789ABCDEF",
        warehouses: int = 1000,
        seed: int = 7,
        modified_from: datetime = DEFAULT_FROM,
        modified_to: datetime = DEFAULT_TO,
        page_size_max: int = 200,
        start_inclusive: bool = True,
        end_inclusive: bool = True,
        code_as_string: bool = False,
        sort_by_modified: bool = True,
        timestamp_tolerance: timedelta = timedelta(minutes=10),
        goods: int = 0,
        skus: int | None = None,
        trades: int = 0,
        daily_quota: Mapping[str, int | None] | None = None,
        goods_options: Mapping[str, Any] | None = None,
        trades_options: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.appkey, self.appsecret = appkey, appsecret
        self.page_size_max = page_size_max
        self.start_inclusive, self.end_inclusive = start_inclusive, end_inclusive
        self.code_as_string, self.sort_by_modified = code_as_string, sort_by_modified
        self.last_request: dict[str, Any] = {}
        self.timestamp_tolerance = timestamp_tolerance
        self.clock = SandboxClock()
        self.records: dict[str, dict[str, Any]] = {
            r["warehouseId"]: r for r in generate_warehouses(warehouses, seed, modified_from, modified_to)
        }
        bounds = Bounds(start_inclusive, end_inclusive)
        span: dict[str, Any] = {"seed": seed, "modified_from": modified_from, "modified_to": modified_to}
        catalogue = generate_catalogue(goods, **span) if skus is None else generate_catalogue(skus=skus, **span)
        self.goods = GoodsCatalogue(catalogue, clock=self.clock, bounds=bounds, page_size_max=page_size_max,
                                    seed=seed, **(goods_options or {}))
        self.trades = TradeBook(
            generate_trades(trades, skus=catalogue, warehouses=list(self.records.values()), **span),
            clock=self.clock, bounds=bounds, skus=lambda: list(self.goods.records.values()),
            warehouses=lambda: list(self.records.values()), page_size_max=page_size_max, seed=seed,
            **(trades_options or {}),
        )
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            WAREHOUSE_METHOD: self._warehouse_page, GOODS_METHOD: self.goods.handle, TRADES_METHOD: self.trades.handle,
        }
        #: (subCode, msg) of a success, where a method is known to answer other than ("", "")
        self.success = {GOODS_METHOD: GOODS_SUCCESS}
        self.quota: dict[str, int] = {}  # method -> calls left regardless of the day; absent = unlimited
        quotas = DAILY_QUOTAS if daily_quota is None else daily_quota
        self.daily_quota: dict[str, int] = {m: n for m, n in quotas.items() if n is not None}
        self.day_calls: Counter[tuple[date, str]] = Counter()  # (Beijing day, method) -> calls counted
        self._lock = threading.RLock()
        self._throttle_next = 0
        self._calls_per_second: float | None = None
        self._recent: deque[float] = deque()
        self._paging_modification: dict[str, Any] | None = None
        self._refusal_travel: datetime | None = None
        self._context_ids = iter(range(2376343924312736512, 2**63))

    # -- dataset --------------------------------------------------------------------------------------
    @property
    def warehouses(self) -> dict[str, dict[str, Any]]:
        """Raw records by ``warehouseCode`` (the first record of a duplicated code; all are in :attr:`records`)."""
        with self._lock:
            by_code: dict[str, dict[str, Any]] = {}
            for record in self.records.values():
                by_code.setdefault(record["warehouseCode"], record)
            return by_code

    def add_warehouse(self, *, allow_duplicate_code: bool = False, modified_at: datetime | None = None,
                      **fields: Any) -> dict[str, Any]:
        """Add a warehouse; unspecified fields come from a generated record. Returns the stored record."""
        with self._lock:
            record = generate_warehouses(1, seed=len(self.records) + 100_000)[0]
            record["warehouseCode"] = f"NEW{len(self.records) + 1:05d}"
            record.update(fields)
            if "gmtModified" not in fields:
                record["gmtModified"] = epoch_ms(modified_at or self.clock.now())
            if record["warehouseId"] in self.records:
                raise ValueError(f"warehouseId {record['warehouseId']} exists")
            if not allow_duplicate_code and record["warehouseCode"] in self.warehouses:
                raise ValueError(f"warehouseCode {record['warehouseCode']} exists (allow_duplicate_code=True?)")
            self.records[record["warehouseId"]] = record
            return record

    def modify_warehouse(self, code: str, *, modified_at: datetime | None = None, **changes: Any) -> dict[str, Any]:
        """Change fields of the warehouse with this code and set ``gmtModified`` (default: now)."""
        with self._lock:
            record = self.warehouses.get(code)
            if record is None:
                raise KeyError(f"no warehouse {code!r}")
            record.update(changes)
            record["gmtModified"] = epoch_ms(modified_at or self.clock.now())
            return record

    def block_warehouse(self, code: str, *, modified_at: datetime | None = None) -> dict[str, Any]:
        """Block up (disable) a warehouse: ``isBlockup`` = 1."""
        return self.modify_warehouse(code, modified_at=modified_at, isBlockup=1)

    def bulk_edit(self, *, modified_at: datetime, count: int | None = None, codes: list[str] | None = None,
                  **changes: Any) -> list[str]:
        """One bulk action: ``codes`` (or the first ``count`` warehouses by code) all get ``gmtModified`` =
        ``modified_at`` (whole seconds or not, as given) and ``changes``. Returns the codes edited."""
        with self._lock:
            chosen = list(codes) if codes is not None else sorted(self.warehouses)[:count]
            for code in chosen:
                self.modify_warehouse(code, modified_at=modified_at, **changes)
            return chosen

    # -- faults ---------------------------------------------------------------------------------------
    def throttle(self, next_calls: int = 0, calls_per_second: float | None = None) -> None:
        """Throttle the next ``next_calls`` calls, and/or every call above ``calls_per_second`` (None = off)."""
        with self._lock:
            self._throttle_next = next_calls
            self._calls_per_second = calls_per_second

    def set_quota(self, method: str, calls: int | None) -> None:
        """Allow ``calls`` more calls of ``method``, then answer quota exhausted (None = unlimited)."""
        with self._lock:
            if calls is None:
                self.quota.pop(method, None)
            else:
                self.quota[method] = calls

    def set_daily_quota(self, method: str, calls: int | None) -> dict[str, int]:
        """Allow ``calls`` calls of ``method`` per Beijing day from now on (``None`` = unlimited); calls already
        made today count. Returns every daily quota."""
        with self._lock:
            if calls is None:
                self.daily_quota.pop(method, None)
            else:
                self.daily_quota[method] = calls
            return dict(self.daily_quota)

    def calls_today(self) -> dict[str, int]:
        """Calls counted against the daily quotas today (Beijing day of the sandbox's clock), by method."""
        with self._lock:
            today = self.clock.beijing_day()
            return {method: n for (day, method), n in self.day_calls.items() if day == today}

    def travel(self, to: datetime) -> datetime:
        """Move the sandbox's clock to ``to`` (it runs on from there): quotas, scrolls and default edit times
        follow it; the signature's timestamp check does not."""
        return self.clock.travel(to)

    def advance_clock(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move the sandbox's clock on by ``delta`` or by ``timedelta(**parts)`` (``days=1``, ``seconds=…``)."""
        return self.clock.advance(delta if delta is not None else timedelta(**parts))

    def modify_during_paging(self, *, after_page: int | None = None, after_calls: int | None = None,
                             code: str | None = None, count: int = 1, modified_at: datetime | None = None,
                             **changes: Any) -> None:
        """One-shot concurrent modification, as if someone edited warehouses in Jikeyun between two page reads.

        :param after_page: right after serving a non-empty warehouse page with this ``pageIndex`` ...
        :param after_calls: ... or right after the ``after_calls``-th warehouse page served from now.
        :param code: the warehouse to modify; default: the first ``count`` records of that page.
        :param modified_at: their new ``gmtModified``; default now (later than anything read so far).
        """
        if (after_page is None) == (after_calls is None):
            raise ValueError("give exactly one of after_page and after_calls")
        with self._lock:
            self._paging_modification = {"after_page": after_page, "after_calls": after_calls, "code": code,
                                         "count": count, "modified_at": modified_at, "changes": changes}

    # -- protocol -------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        """One API call. Every answer carries the sandbox's clock in its ``Date`` header, as a server's carries
        its own (clients read the quota day from it)."""
        headers = {"Date": formatdate(self.clock.now().timestamp(), usegmt=True)}
        params = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        method = params.get("method", "")
        self.last_request = {"params": params, "headers": request.headers, "path": request.path}
        self.count(method or "(no method)")
        try:
            if request.method != "POST":
                raise ApiFailure(BAD_PARAMETER, "只支持POST请求 (POST only)")
            self._authenticate(params)
            handler = self.methods.get(method)
            if handler is None:
                raise ApiFailure(NOT_SUBSCRIBED, "未查询到应用或应用未订阅此API")
            self._limit(method)
            try:
                bizcontent = json.loads(params.get("bizcontent") or "{}")
            except ValueError:
                raise ApiFailure(BAD_PARAMETER, "bizcontent不是合法的JSON") from None
            data = handler(bizcontent)
        except ApiFailure as failure:
            self.count(f"{method}:{failure.sub_code}")
            if failure.sub_code == QUOTA_EXHAUSTED:
                self._travel_after_refusal()
            return Reply(body={"code": 0, "msg": f"[{failure.sub_code}]{failure.msg}", "subCode": failure.sub_code,
                               "result": {"data": None, "contextId": self._context_id()}}, headers=headers)
        sub_code, msg = self.success.get(method, ("", ""))
        body = {"code": "200" if self.code_as_string else 200, "msg": msg, "subCode": sub_code,
                "result": {"data": data, "contextId": self._context_id()}}
        return Reply(body=body, headers=headers)

    def travel_after_refusal(self, to: datetime | None) -> None:
        """One-shot: right after the next quota answer (额度不足), the clock jumps to ``to`` — as if the client had
        waited until then (e.g. the next Beijing midnight), without a test sleeping. ``None`` cancels it."""
        with self._lock:
            self._refusal_travel = to

    def _travel_after_refusal(self) -> None:
        with self._lock:
            to, self._refusal_travel = self._refusal_travel, None
        if to is not None:
            self.clock.travel(to)

    def _context_id(self) -> str:
        with self._lock:
            return str(next(self._context_ids))

    def _authenticate(self, params: dict[str, str]) -> None:
        missing = [k for k in ("method", "appkey", "version", "contenttype", "timestamp", "sign") if not params.get(k)]
        if missing:
            raise ApiFailure(BAD_PARAMETER, f"缺少公共参数 (missing) {','.join(missing)}")
        if params["appkey"] != self.appkey:
            raise ApiFailure(NO_APPKEY, "appkey不存在")
        if not verify_sign(params, self.appsecret):
            raise ApiFailure(SIGN_ERROR, "签名错误 (sign error)")
        try:
            sent = pendulum.from_format(params["timestamp"], "YYYY-MM-DD HH:mm:ss", tz=BEIJING)
        except ValueError:
            raise ApiFailure(BAD_PARAMETER, "timestamp格式错误 (yyyy-MM-dd HH:mm:ss)") from None
        if abs(pendulum.now("UTC") - sent) > self.timestamp_tolerance:
            raise ApiFailure(TIMESTAMP_EXPIRED, "时间戳已过期 (timestamp expired; sandbox sub-code)")
        # "v1.0" per the docs, "1.0" works live too
        if params["version"].lower().lstrip("v") != "1.0" or params["contenttype"].lower() != "json":
            raise ApiFailure(BAD_PARAMETER, "version/contenttype不支持")

    def _limit(self, method: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent.append(now)
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if self._throttle_next > 0 or (self._calls_per_second and len(self._recent) > self._calls_per_second):
                self._throttle_next = max(0, self._throttle_next - 1)
                raise ApiFailure(THROTTLED, "接口调用频繁，请稍后再试 (throttled)")
            today = (self.clock.beijing_day(), method)
            limit = self.daily_quota.get(method)
            if limit is not None and self.day_calls[today] >= limit:
                raise ApiFailure(QUOTA_EXHAUSTED, f"额度不足 (daily quota of {limit} calls spent; "
                                                  "it resets at Beijing midnight)")
            if method in self.quota:
                if self.quota[method] <= 0:
                    raise ApiFailure(QUOTA_EXHAUSTED, "额度不足 (quota exhausted)")
                self.quota[method] -= 1
            self.day_calls[today] += 1

    def _warehouse_page(self, biz: dict[str, Any]) -> dict[str, Any]:
        data, modification = self._warehouse_get(biz)
        if modification:  # the page is already computed (a copy); the client's next request sees the change
            for code in modification["codes"]:
                self.modify_warehouse(code, modified_at=modification["modified_at"], **modification["changes"])
        return data

    def _warehouse_get(self, biz: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """One page, and the scripted concurrent modification to apply once the page is answered (or None)."""
        try:
            # erp.vend.get documents defaults 0/50; the warehouse doc marks both required: lenient here
            page_index, page_size = int(biz.get("pageIndex", 0)), int(biz.get("pageSize", 50))
            start = self._parse_time(biz.get("gmtModifiedStart"))
            end = self._parse_time(biz.get("gmtModifiedEnd"))
        except (TypeError, ValueError):
            raise ApiFailure(BAD_PARAMETER, "参数格式错误 (pageIndex/pageSize/gmtModified*)") from None
        if page_index < 0 or not 1 <= page_size <= self.page_size_max:
            raise ApiFailure(BAD_PARAMETER, f"pageSize超出范围 1..{self.page_size_max}")
        include_all = str(biz.get("includeDeleteAndBlockup", "")) == "1"
        code, name = biz.get("code"), biz.get("name")
        with self._lock:
            selected = [
                r for r in self.records.values()
                if (include_all or not (r.get("isDelete") == 1 or r.get("isBlockup") == 1))
                and (code is None or r["warehouseCode"] == code)
                and (name is None or name in (r.get("warehouseName") or ""))
                and self._in_window(r["gmtModified"], start, end)
            ]
            selected.sort(key=_by_time if self.sort_by_modified else _by_id)
            page = copy.deepcopy(selected[page_index * page_size : (page_index + 1) * page_size])
        return {"warehouseInfo": page}, self._due_modification(page_index, page)

    def _due_modification(self, page_index: int, page: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The scripted concurrent modification, when this page is the one it waits for (then it is used up)."""
        with self._lock:
            plan = self._paging_modification
            if plan is None:
                return None
            if plan["after_calls"] is not None:
                plan["after_calls"] -= 1
                due = plan["after_calls"] <= 0
            else:
                due = plan["after_page"] == page_index and bool(page)
            if not due:
                return None
            self._paging_modification = None
            codes = [plan["code"]] if plan["code"] else [r["warehouseCode"] for r in page[: plan["count"]]]
            return {**plan, "codes": codes}

    @staticmethod
    def _parse_time(value: Any) -> int | None:
        if value in (None, ""):
            return None
        return epoch_ms(pendulum.from_format(str(value), "YYYY-MM-DD HH:mm:ss", tz=BEIJING))

    def _in_window(self, modified: int, start: int | None, end: int | None) -> bool:
        if start is not None and (modified < start if self.start_inclusive else modified <= start):
            return False
        return not (end is not None and (modified > end if self.end_inclusive else modified >= end))

    # -- scripting over HTTP --------------------------------------------------------------------------
    def control(self, command: str, payload: dict[str, Any]) -> Any:
        payload = {k: to_datetime(v) if k in ("modified_at", "at", "to") else v for k, v in payload.items()}
        goods, trades = self.goods, self.trades
        commands: dict[str, Callable[[], Any]] = {
            "add-warehouse": lambda: self.add_warehouse(**payload),
            "modify-warehouse": lambda: self.modify_warehouse(**payload),
            "block-warehouse": lambda: self.block_warehouse(**payload),
            "throttle": lambda: self.throttle(**payload),
            "quota": lambda: self.set_quota(**payload),
            "modify-during-paging": lambda: self.modify_during_paging(**payload),
            "bulk-edit": lambda: self.bulk_edit(**payload),
            "warehouses": lambda: list(self.records.values()),
            "add-goods": lambda: goods.add_goods(**payload),
            "edit-goods": lambda: goods.edit_goods(**payload),
            "edit-sku": lambda: goods.edit_sku(**payload),
            "block-goods": lambda: goods.block_goods(**payload),
            "block-sku": lambda: goods.block_sku(**payload),
            "delete-goods": lambda: goods.delete_goods(**payload),
            "bulk-edit-goods": lambda: goods.bulk_edit_goods(**payload),
            "bulk-edit-skus": lambda: goods.bulk_edit_skus(**payload),
            "modify-goods-during-paging": lambda: goods.modify_during_paging(**payload),
            "goods": lambda: [goods.records[i] for i in sorted(goods.records)],
            "add-trade": lambda: trades.add_trade(**payload),
            "edit-trade": lambda: trades.edit_trade(**payload),
            "edit-line": lambda: trades.edit_line(**payload),
            "ship-trade": lambda: trades.ship(**payload),
            "complete-trade": lambda: trades.complete(**payload),
            "cancel-trade": lambda: trades.cancel(**payload),
            "delete-trade": lambda: trades.delete(**payload),
            "modify-trades-during-paging": lambda: trades.modify_during_paging(**payload),
            "expire-scrolls": trades.expire_scrolls,
            "trades": lambda: [trades.records[i] for i in sorted(trades.records)],
            "daily-quota": lambda: self.set_daily_quota(**payload),
            "calls-today": self.calls_today,
            "travel": lambda: self.travel(**payload).isoformat(),
            "travel-after-refusal": lambda: self.travel_after_refusal(**payload),
            "advance-clock": lambda: self.advance_clock(**payload).isoformat(),
            "clock": lambda: {"now": self.clock.now().isoformat(), "beijing_day": self.clock.beijing_day().isoformat()},
        }
        if command not in commands:
            raise KeyError(f"unknown jikeyun sandbox command {command!r}; known: {sorted(commands)}")
        return commands[command]()


def _by_time(record: dict[str, Any]) -> tuple[int, str]:
    return record["gmtModified"], record["warehouseId"]


def _by_id(record: dict[str, Any]) -> str:
    return str(record["warehouseId"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--appkey", default="12345678")
    parser.add_argument("--appsecret", default="0123456789abcdef0123456789ABCDEF")
    parser.add_argument("--warehouses", type=int, default=1000, help="generated dataset size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--page-size-max", type=int, default=200)
    parser.add_argument("--start-exclusive", action="store_true", help="gmtModifiedStart compares with >")
    parser.add_argument("--end-exclusive", action="store_true", help="gmtModifiedEnd compares with <")
    parser.add_argument("--unsorted", action="store_true", help="order records by warehouseId, not gmtModified")
    parser.add_argument("--goods", type=int, default=200, help="generated goods (1 to 5 SKUs each)")
    parser.add_argument("--skus", type=int, default=None, help="size the catalogue by SKU records instead")
    parser.add_argument("--trades", type=int, default=None,
                        help="generated trades (need goods and warehouses; default 500 when both exist, else 0)")
    parser.add_argument("--goods-quota", type=int, default=DAILY_QUOTAS[GOODS_METHOD],
                        help="erp.storage.goodslist calls per Beijing day (0: unlimited)")
    parser.add_argument("--cursor-without-window", action="store_true",
                        help="goods: ignore maxSkuId when a modification or creation window is sent")
    parser.add_argument("--scroll-id-location", choices=SCROLL_ID_LOCATIONS, default="data",
                        help="trades: where the next scrollId is answered")
    parser.add_argument("--shop-code-key", default="shopcode", help="trades: the key of the shop code")


def _trades(args: argparse.Namespace) -> int:
    if args.trades is not None:
        return int(args.trades)
    return 500 if args.warehouses and (args.skus if args.skus is not None else args.goods) else 0


def build_server(args: argparse.Namespace) -> JikeyunSandbox:
    return JikeyunSandbox(
        appkey=args.appkey, appsecret=args.appsecret, warehouses=args.warehouses, seed=args.seed,
        page_size_max=args.page_size_max, start_inclusive=not args.start_exclusive,
        end_inclusive=not args.end_exclusive, sort_by_modified=not args.unsorted,
        goods=args.goods, skus=args.skus, trades=_trades(args),
        daily_quota={**DAILY_QUOTAS, GOODS_METHOD: args.goods_quota or None},
        goods_options={"cursor_with_window": not args.cursor_without_window},
        trades_options={"scroll_id_location": args.scroll_id_location, "shop_code_key": args.shop_code_key},
    )
