"""``erp.storage.goodslist`` (分页查询货品信息) in the Jikeyun sandbox: a catalogue of goods (货品) and their SKUs
(规格), served one record per SKU under ``result.data.goods``.

What the sandbox assumes (docs/protocol/jikeyun.md, "Goods"):

* A record holds the goods' fields and the SKU's; a goods with three SKUs gives three records with the same
  ``goodsNo``. Long ids (``goodsId``, ``skuId``) are strings; ``goodsGmtModified``, ``skuGmtModified``,
  ``gmtCreate``, ``skuGmtCreate`` are epoch ms. A goods-level edit (:data:`GOODS_LEVEL_FIELDS`) changes every
  record of the goods and moves only ``goodsGmtModified``; a SKU-level edit (:data:`SKU_LEVEL_FIELDS`) changes
  one record and moves only ``skuGmtModified``.
* ``pageIndex`` is 0-based, ``pageSize`` 1..``page_size_max`` (200); both default (0, 50) when missing, as the
  warehouse method does (the doc marks them required; whether the server refuses a missing one is unknown).
* Records come ordered by ``skuId`` (numerically), not by time. ``maxSkuId`` keeps only ``skuId > maxSkuId``.
  Whether the real server honours ``maxSkuId`` together with a window is not documented [?]:
  ``cursor_with_window`` (default true) says it does; false ignores the cursor when a window is sent.
* Windows: ``startDateModifiedGoods/endDateModifiedGoods`` on ``goodsGmtModified``,
  ``startDateModifiedSku/endDateModifiedSku`` on ``skuGmtModified``, ``startDate/endDate`` on the goods'
  ``gmtCreate``; several pairs are ANDed (no way to OR them is documented, so clients read each level in its
  own pass). Values are ``yyyy-MM-dd HH:mm:ss`` Beijing time, as the doc's examples show; epoch ms are accepted
  too (``epoch_ms_windows``), because what else the server takes is not documented [?]. Inclusive or exclusive
  ends are the gateway's :class:`~jikeyun_kingdee.sandbox.jikeyun_common.Bounds`, as for warehouses.
* Deleted goods only with ``isQueryDelete: 1``; filters ``isBlockup``, ``skuIsBlockup``, ``isPackageGood``
  (0/1), ``goodsNo``, ``goodsNos``, ``skuBarcode``, ``skuBarcodes`` (exact), ``goodsName``, ``skuName``,
  ``cateName`` (contained).
* Success answers carry ``subCode "0030000004"`` and ``msg "操作成功"``, as seen live (:data:`SUCCESS`).

Records are never changed in place: an edit stores new dicts, so a page already computed is never altered by a
later edit (the answer is encoded outside the lock).
"""

from __future__ import annotations

import itertools
import random
import threading
from bisect import bisect_right, insort
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jikeyun_kingdee.sandbox.jikeyun_common import (
    DEFAULT_FROM,
    DEFAULT_TO,
    Bounds,
    Check,
    IdMaker,
    SandboxClock,
    bad_parameter,
    between,
    ean13,
    epoch_ms,
    field_between,
    field_in,
    flag_is,
    parse_bound,
    parse_id_list,
    passes,
    pick,
    text_in,
)

GOODS_METHOD = "erp.storage.goodslist"
#: the success ``(subCode, msg)`` one client saw live for this method
SUCCESS = ("0030000004", "操作成功")
GOODS_LEVEL_FIELDS = frozenset({
    "goodsId", "goodsNo", "goodsName", "cateId", "cateName", "cateFullName", "brandName", "goodsAttr", "isBlockup",
    "isDelete", "isPackageGood", "isBatchMgmt", "isSerialManagement", "goodsMemo", "defaultVendId",
    "defaultVendName", "gmtCreate", "goodsGmtModified",
})
SKU_LEVEL_FIELDS = frozenset({
    "skuId", "skuName", "skuNo", "skuBarcode", "mainBarcode", "skuCode", "unitName", "goodsUnit", "skuIsBlockup",
    "retailPrice", "skuWeight", "skuLength", "skuWidth", "skuHeight", "memo", "skuGmtCreate", "skuGmtModified",
})
#: ids and times: set by the sandbox, never by an edit
_MANAGED = frozenset({"goodsId", "skuId", "gmtCreate", "skuGmtCreate", "goodsGmtModified", "skuGmtModified"})
#: request window pairs and the record field each filters
WINDOWS = (
    ("goodsGmtModified", "startDateModifiedGoods", "endDateModifiedGoods"),
    ("skuGmtModified", "startDateModifiedSku", "endDateModifiedSku"),
    ("gmtCreate", "startDate", "endDate"),
)
_FLAGS = ("isBlockup", "skuIsBlockup", "isPackageGood")


@dataclass(frozen=True)
class _Category:
    cate_id: str
    name: str
    full_name: str
    code: str  # goodsNo prefix
    products: tuple[str, ...]
    unit: str
    specs: tuple[tuple[str, ...], ...]  # spec dimensions (colour × size …); a SKU is one combination
    price: tuple[int, int]  # yuan
    weight: tuple[float, float]  # kg
    box: int = 0  # units per 箱 (a second unit), 0 = none
    batch: bool = False
    serial: bool = False


_COLOURS = ("白色", "黑色", "灰色", "藏青", "米色")
_CATEGORIES = (
    _Category("1001", "T恤", "服装>上装>T恤", "FZ", ("纯棉T恤", "短袖T恤", "POLO衫", "印花T恤"), "件",
              (_COLOURS, ("S", "M", "L", "XL", "XXL")), (39, 199), (0.15, 0.4)),
    _Category("1002", "卫衣", "服装>上装>卫衣", "WY", ("连帽卫衣", "圆领卫衣", "加绒卫衣"), "件",
              (_COLOURS, ("M", "L", "XL")), (89, 299), (0.4, 0.8)),
    _Category("1101", "运动鞋", "鞋靴>运动鞋", "XX", ("跑步鞋", "板鞋", "休闲运动鞋"), "双",
              (("黑色", "白色", "灰色"), tuple(str(s) for s in range(36, 45))), (159, 599), (0.6, 1.2)),
    _Category("2001", "饮用水", "食品饮料>饮料>饮用水", "YL", ("天然矿泉水", "纯净水", "苏打水"), "瓶",
              (("350ml", "550ml", "1.5L"),), (2, 8), (0.4, 1.6), box=24, batch=True),
    _Category("2002", "茶饮料", "食品饮料>饮料>茶饮料", "CY", ("乌龙茶", "冰红茶", "茉莉花茶"), "瓶",
              (("500ml", "1L"),), (3, 9), (0.5, 1.1), box=15, batch=True),
    _Category("2101", "坚果炒货", "食品饮料>休闲食品>坚果炒货", "JG", ("每日坚果", "碧根果", "夏威夷果", "巴旦木"),
              "千克", (("原味", "盐焗", "奶油"),), (39, 129), (1.0, 1.0), batch=True),
    _Category("2201", "大米", "食品饮料>粮油>大米", "DM", ("东北大米", "五常稻花香", "泰国香米"), "袋",
              (("5kg", "10kg"),), (29, 129), (5.0, 10.0), box=4, batch=True),
    _Category("3001", "电风扇", "家用电器>生活电器>电风扇", "DQ", ("落地扇", "台扇", "循环扇"), "台",
              (("白色", "灰色"), ("机械款", "遥控款")), (99, 499), (3.0, 8.0), serial=True),
    _Category("3101", "移动电源", "数码配件>移动电源", "SM", ("充电宝", "快充移动电源", "磁吸充电宝"), "个",
              (("10000mAh", "20000mAh"), ("白色", "黑色")), (59, 199), (0.2, 0.45), box=50, serial=True),
    _Category("4001", "抽纸", "日用百货>纸品>抽纸", "ZJ", ("抽纸", "卷纸", "湿巾"), "箱",
              (("3层", "4层"), ("24包", "36包")), (29, 69), (3.0, 6.0)),
    _Category("4101", "面霜", "美妆个护>护肤>面霜", "MZ", ("保湿面霜", "修护面霜", "美白精华霜"), "瓶",
              (("30g", "50g"),), (69, 399), (0.1, 0.2), box=48, batch=True),
    _Category("4201", "收纳整理", "家居日用>收纳整理", "SN", ("收纳盒", "收纳箱", "衣物收纳袋"), "个",
              (("小号", "中号", "大号"), ("白色", "灰色")), (9, 69), (0.2, 1.5)),
)
_BRANDS = ("依然", "青禾", "优品", "嘉和", "鸿运", "悦享", "云杉", "立德", "森木", "拾光")
_VENDORS = (("1388205871103001600", "青禾供应链有限公司"), ("1388205871103001601", "嘉和贸易有限公司"),
            ("1388205871103001602", "鸿运实业有限公司"), ("1388205871103001603", "云杉制造有限公司"))
_MEMOS = ("", "", "", "", "新品", "爆款", "清仓", "季节款")
_SKUS_PER_GOODS = (1, 1, 1, 1, 2, 2, 3, 3, 4, 5)  # 40 % one SKU, 20 % two, 20 % three, 10 % four, 10 % five
_COMBINATIONS = {c.code: [" ".join(spec) for spec in itertools.product(*c.specs)] for c in _CATEGORIES}
#: realistic rates of the generated catalogue
BLOCKED_GOODS, BLOCKED_SKU, DELETED_GOODS, PACKAGE_GOODS = 0.05, 0.04, 0.02, 0.03


def generate_catalogue(
    goods: int | None = None,
    *,
    skus: int | None = None,
    seed: int = 7,
    modified_from: datetime = DEFAULT_FROM,
    modified_to: datetime = DEFAULT_TO,
    first_number: int = 1,
) -> list[dict[str, Any]]:
    """Raw SKU records of a realistic catalogue, the same for the same arguments.

    Sized by ``goods`` (each with 1 to 5 SKUs, colour/size-style specs) or by ``skus`` (the last goods is cut to
    hit the number). Barcodes (EAN-13) and ``goodsNo`` are unique; units come from the category (个, 件, 瓶, 箱,
    千克, 台, 双, 袋); about 5 % of goods and 4 % of SKUs are blocked up, 2 % of goods deleted, 3 % package goods.
    ``goodsGmtModified`` and each ``skuGmtModified`` (whole seconds, epoch ms) are spread over
    ``[modified_from, modified_to)``; creation times lie before both, and ids grow with creation time.

    :param first_number: the first goods' serial (``goodsNo`` and barcodes), so later goods never collide.
    """
    if (goods is None) == (skus is None):
        raise ValueError("size the catalogue by goods or by skus (exactly one)")
    rng = random.Random(seed)
    make_id = IdMaker()
    start = int(modified_from.timestamp())
    span = int(modified_to.timestamp()) - start
    records: list[dict[str, Any]] = []
    for number in itertools.count(first_number):
        if (goods is not None and number - first_number >= goods) or (skus is not None and len(records) >= skus):
            break
        left = None if skus is None else skus - len(records)
        records.extend(_goods_records(rng, make_id, number, start, span, seed, left))
    return records


def _goods_records(rng: random.Random, make_id: IdMaker, number: int, start: int, span: int, seed: int,
                   most: int | None) -> list[dict[str, Any]]:
    draw = rng.random  # one float per choice: several times faster than randrange/choice for 100k records
    category = pick(draw, _CATEGORIES)
    combinations = _COMBINATIONS[category.code]
    count = min(pick(draw, _SKUS_PER_GOODS), len(combinations), most or 5)
    specs = ["默认规格"] if count == 1 else rng.sample(combinations, count)
    goods_modified = start + int(draw() * span)
    sku_modified = [start + int(draw() * span) for _ in specs]
    created = min(goods_modified, *sku_modified) - int(draw() * 2 * 365 * 86400)
    goods_no = f"{category.code}{number:06d}"
    brand, product = pick(draw, _BRANDS), pick(draw, category.products)
    vend_id, vend_name = pick(draw, _VENDORS)
    low_price, high_price = category.price
    price = between(draw, low_price, high_price) + pick(draw, (0.0, 0.9, 0.5))
    units = [{"unitName": category.unit, "countRate": 1, "isBaseUnit": 1}]
    if category.box:
        units.append({"unitName": "箱", "countRate": category.box, "isBaseUnit": 0})
    goods_fields = {
        "goodsId": str(make_id(created * 1000)), "goodsNo": goods_no, "goodsName": f"{brand}{product}",
        "cateId": category.cate_id, "cateName": category.name, "cateFullName": category.full_name,
        "brandName": brand, "goodsAttr": 1,
        "isBlockup": int(draw() < BLOCKED_GOODS), "isDelete": int(draw() < DELETED_GOODS),
        "isPackageGood": int(draw() < PACKAGE_GOODS), "isBatchMgmt": int(category.batch),
        "isSerialManagement": int(category.serial), "goodsMemo": pick(draw, _MEMOS),
        "defaultVendId": vend_id, "defaultVendName": vend_name,
        "gmtCreate": created * 1000, "goodsGmtModified": goods_modified * 1000,
    }
    low, high = category.weight
    records = []
    for index, (spec, modified) in enumerate(zip(specs, sku_modified, strict=True)):
        sku_created = created + int(draw() * (min(modified, goods_modified) - created + 1))
        barcode = ean13(f"69{seed % 1000:03d}{(number * 5 + index) % 10**7:07d}")
        records.append({
            **goods_fields,
            "skuId": str(make_id(sku_created * 1000)), "skuName": spec, "skuNo": f"{goods_no}-{index + 1:02d}",
            "skuBarcode": barcode, "mainBarcode": barcode, "skuCode": None,
            "unitName": category.unit, "goodsUnit": units,
            "skuIsBlockup": int(draw() < BLOCKED_SKU),
            "retailPrice": round(price + index * pick(draw, (0, 0, 5, 10)), 2),
            "skuWeight": round(low + draw() * (high - low), 3),
            "skuLength": between(draw, 5, 60), "skuWidth": between(draw, 5, 40), "skuHeight": between(draw, 2, 30),
            "memo": "", "skuGmtCreate": sku_created * 1000, "skuGmtModified": modified * 1000,
        })
    return records


class GoodsCatalogue:
    """The sandbox's goods: its records, their scripted edits and the method's handler.

    :param records: raw SKU records (:func:`generate_catalogue`).
    :param clock: the sandbox's clock (default time of edits).
    :param bounds: inclusive or exclusive window ends.
    :param cursor_with_window: honour ``maxSkuId`` together with a window (unknown; default yes).
    :param epoch_ms_windows: accept epoch ms as window values besides Beijing-time text.
    """

    def __init__(self, records: Iterable[dict[str, Any]], *, clock: SandboxClock, bounds: Bounds,
                 page_size_max: int = 200, cursor_with_window: bool = True, epoch_ms_windows: bool = True,
                 seed: int = 7) -> None:
        self.clock, self.bounds, self.page_size_max = clock, bounds, page_size_max
        self.cursor_with_window, self.epoch_ms_windows = cursor_with_window, epoch_ms_windows
        self.records: dict[int, dict[str, Any]] = {int(r["skuId"]): r for r in records}
        self._order = sorted(self.records)
        self._skus_of: dict[str, list[int]] = {}
        for sku_id in self._order:
            self._skus_of.setdefault(self.records[sku_id]["goodsNo"], []).append(sku_id)
        self._barcodes = {r["skuBarcode"] for r in self.records.values()}
        self._seed = seed
        self._next_number = len(self._skus_of) + 1_000_000  # added goods never collide with generated ones
        self._make_id = IdMaker(start=len(self.records))
        self._serials = itertools.count()  # barcodes of added SKUs (prefix 68: never a generated one)
        self._paging_modification: dict[str, Any] | None = None
        self._lock = threading.RLock()

    # -- reading ----------------------------------------------------------------------------------------------
    def sku(self, sku_id: str | int) -> dict[str, Any]:
        with self._lock:
            if int(sku_id) not in self.records:
                raise KeyError(f"no SKU {sku_id}")
            return self.records[int(sku_id)]

    def goods_skus(self, goods_no: str) -> list[dict[str, Any]]:
        """The records of one goods, by ``skuId``."""
        with self._lock:
            if goods_no not in self._skus_of:
                raise KeyError(f"no goods {goods_no!r}")
            return [self.records[s] for s in self._skus_of[goods_no]]

    @property
    def goods_nos(self) -> list[str]:
        with self._lock:
            return sorted(self._skus_of)

    # -- scripting --------------------------------------------------------------------------------------------
    def add_goods(self, *, skus: int | list[dict[str, Any]] = 1, modified_at: datetime | None = None,
                  **fields: Any) -> list[dict[str, Any]]:
        """Add one goods with ``skus`` SKUs (a count, or one dict of SKU-level fields per SKU); unspecified fields
        come from a generated goods. Its creation and modification times are ``modified_at`` (default now), its ids
        larger than every id made before that time. Returns its records."""
        sku_fields = [{}] * skus if isinstance(skus, int) else list(skus)
        if not sku_fields:
            raise ValueError("a goods has at least one SKU")
        self._check_fields(fields, GOODS_LEVEL_FIELDS, "goods")
        for extra in sku_fields:
            self._check_fields(extra, SKU_LEVEL_FIELDS, "SKU")
        ms = epoch_ms(modified_at or self.clock.now())
        with self._lock:
            number = self._next_number
            self._next_number += 1
            rng = random.Random(self._seed * 1_000_003 + number)
            template = _goods_records(rng, IdMaker(), number, 0, 1, self._seed, 1)[0]
            goods_no = fields.get("goodsNo", template["goodsNo"])
            if goods_no in self._skus_of:
                raise ValueError(f"goodsNo {goods_no!r} exists")
            goods_id = str(self._make_id(ms))
            added = []
            for index, extra in enumerate(sku_fields):
                barcode = ean13(f"68{self._seed % 1000:03d}{next(self._serials) % 10**7:07d}")
                record = {**template, **fields, "goodsId": goods_id, "skuId": str(self._make_id(ms)),
                          "skuName": "默认规格" if len(sku_fields) == 1 else f"规格{index + 1}",
                          "skuNo": f"{goods_no}-{index + 1:02d}", "skuBarcode": barcode, "mainBarcode": barcode,
                          **extra, "gmtCreate": ms, "skuGmtCreate": ms, "goodsGmtModified": ms, "skuGmtModified": ms}
                added.append(record)
            barcodes = [r["skuBarcode"] for r in added]
            if len(set(barcodes)) < len(barcodes) or self._barcodes.intersection(barcodes):
                raise ValueError(f"skuBarcode not unique: {barcodes}")
            for record in added:
                self._store(record)
            return added

    def edit_goods(self, goods_no: str, *, modified_at: datetime | None = None, **changes: Any) -> list[dict[str, Any]]:
        """A goods-level edit: every SKU record of the goods gets ``changes`` and ``goodsGmtModified`` =
        ``modified_at`` (default now); ``skuGmtModified`` stays. Returns the new records."""
        self._check_fields(changes, GOODS_LEVEL_FIELDS, "goods")
        ms = epoch_ms(modified_at or self.clock.now())
        with self._lock:
            sku_ids = list(self._skus_of.get(goods_no) or ())
            if not sku_ids:
                raise KeyError(f"no goods {goods_no!r}")
            new_no = changes.get("goodsNo", goods_no)
            if new_no != goods_no:
                if new_no in self._skus_of:
                    raise ValueError(f"goodsNo {new_no!r} exists")
                self._skus_of[new_no] = self._skus_of.pop(goods_no)
            for sku_id in sku_ids:
                self.records[sku_id] = {**self.records[sku_id], **changes, "goodsGmtModified": ms}
            return [self.records[s] for s in sku_ids]

    def edit_sku(self, sku_id: str | int, *, modified_at: datetime | None = None, **changes: Any) -> dict[str, Any]:
        """A SKU-level edit: the record gets ``changes`` and ``skuGmtModified`` = ``modified_at`` (default now);
        ``goodsGmtModified`` stays. A new ``unitName`` becomes the base unit of ``goodsUnit`` too."""
        self._check_fields(changes, SKU_LEVEL_FIELDS, "SKU")
        ms = epoch_ms(modified_at or self.clock.now())
        with self._lock:
            old = self.sku(sku_id)
            barcode = changes.get("skuBarcode", old["skuBarcode"])
            if barcode != old["skuBarcode"]:
                if barcode in self._barcodes:
                    raise ValueError(f"skuBarcode {barcode!r} exists")
                self._barcodes.discard(old["skuBarcode"])
                self._barcodes.add(barcode)
            if "unitName" in changes and "goodsUnit" not in changes:
                changes["goodsUnit"] = [{**u, "unitName": changes["unitName"]} if u.get("isBaseUnit") else u
                                        for u in old.get("goodsUnit") or ()]
            record = {**old, **changes, "skuGmtModified": ms}
            self.records[int(sku_id)] = record
            return record

    def block_goods(self, goods_no: str, *, blocked: bool = True, modified_at: datetime | None = None
                    ) -> list[dict[str, Any]]:
        """Block up (``isBlockup`` = 1) or unblock a goods: goods level."""
        return self.edit_goods(goods_no, modified_at=modified_at, isBlockup=int(blocked))

    def block_sku(self, sku_id: str | int, *, blocked: bool = True, modified_at: datetime | None = None
                  ) -> dict[str, Any]:
        """Block up (``skuIsBlockup`` = 1) or unblock one SKU: SKU level."""
        return self.edit_sku(sku_id, modified_at=modified_at, skuIsBlockup=int(blocked))

    def delete_goods(self, goods_no: str, *, modified_at: datetime | None = None) -> list[dict[str, Any]]:
        """Delete a goods (``isDelete`` = 1): only ``isQueryDelete: 1`` still returns its records."""
        return self.edit_goods(goods_no, modified_at=modified_at, isDelete=1)

    def bulk_edit_goods(self, *, modified_at: datetime, count: int | None = None, goods_nos: list[str] | None = None,
                        **changes: Any) -> list[str]:
        """One bulk action on goods: ``goods_nos`` (or the first ``count`` by ``goodsNo``) all get
        ``goodsGmtModified`` = ``modified_at`` and ``changes``. Returns the goods numbers edited."""
        with self._lock:
            chosen = list(goods_nos) if goods_nos is not None else self.goods_nos[:count]
            for goods_no in chosen:
                self.edit_goods(goods_no, modified_at=modified_at, **changes)
            return chosen

    def bulk_edit_skus(self, *, modified_at: datetime, count: int | None = None, sku_ids: list[str] | None = None,
                       **changes: Any) -> list[str]:
        """One bulk action on SKUs: ``sku_ids`` (or the first ``count`` by ``skuId``) all get ``skuGmtModified`` =
        ``modified_at`` and ``changes``. Returns the SKU ids edited."""
        with self._lock:
            chosen = [str(s) for s in sku_ids] if sku_ids is not None else [str(s) for s in self._order[:count]]
            for sku_id in chosen:
                self.edit_sku(sku_id, modified_at=modified_at, **changes)
            return chosen

    def modify_during_paging(self, *, after_page: int | None = None, after_calls: int | None = None,
                             level: str = "sku", count: int = 1, modified_at: datetime | None = None,
                             **changes: Any) -> None:
        """One-shot concurrent edit, as if someone edited goods between two page reads.

        :param after_page: right after serving a non-empty page with this ``pageIndex`` ...
        :param after_calls: ... or right after the ``after_calls``-th goods page served from now.
        :param level: ``sku`` edits the first ``count`` records of that page, ``goods`` the goods of the first
            ``count`` records (every SKU of each).
        :param modified_at: the new modification time; default the sandbox's now.
        """
        if (after_page is None) == (after_calls is None):
            raise ValueError("give exactly one of after_page and after_calls")
        if level not in ("sku", "goods"):
            raise ValueError(f"level is 'sku' or 'goods', not {level!r}")
        self._check_fields(changes, SKU_LEVEL_FIELDS if level == "sku" else GOODS_LEVEL_FIELDS, level)
        with self._lock:
            self._paging_modification = {"after_page": after_page, "after_calls": after_calls, "level": level,
                                         "count": count, "modified_at": modified_at, "changes": changes}

    # -- protocol ---------------------------------------------------------------------------------------------
    def handle(self, biz: dict[str, Any]) -> dict[str, Any]:
        """One page of ``erp.storage.goodslist``: ``{"goods": [...]}``."""
        try:
            page_index, page_size = int(biz.get("pageIndex", 0)), int(biz.get("pageSize", 50))
            windows = [(field, parse_bound(biz.get(start), epoch_ms_too=self.epoch_ms_windows),
                        parse_bound(biz.get(end), epoch_ms_too=self.epoch_ms_windows)) for field, start, end in WINDOWS]
            max_sku_id = None if biz.get("maxSkuId") in (None, "") else int(biz["maxSkuId"])
            checks = self._checks(biz, [w for w in windows if w[1] is not None or w[2] is not None])
        except (TypeError, ValueError):
            raise bad_parameter("参数格式错误 (pageIndex/pageSize/maxSkuId/时间/过滤条件)") from None
        if page_index < 0 or not 1 <= page_size <= self.page_size_max:
            raise bad_parameter(f"pageSize超出范围 1..{self.page_size_max}")
        if any(w[1] is not None or w[2] is not None for w in windows) and not self.cursor_with_window:
            max_sku_id = None
        with self._lock:
            order = self._order
            position = 0 if max_sku_id is None else bisect_right(order, max_sku_id)
            skip = page_index * page_size
            page: list[dict[str, Any]] = []
            while position < len(order) and len(page) < page_size:
                record = self.records[order[position]]
                position += 1
                if passes(record, checks):
                    if skip:
                        skip -= 1
                    else:
                        page.append(record)
            self._apply_due_modification(page_index, page)
        return {"goods": page}

    def _checks(self, biz: dict[str, Any], windows: list[tuple[str, int | None, int | None]]) -> list[Check]:
        checks = [] if str(biz.get("isQueryDelete", "")) == "1" else [flag_is("isDelete", 0)]
        checks += [flag_is(name, int(biz[name])) for name in _FLAGS if biz.get(name) not in (None, "")]
        checks += [field_in(one, set(parse_id_list(biz.get(one))) | set(parse_id_list(biz.get(f"{one}s"))))
                   for one in ("goodsNo", "skuBarcode") if biz.get(one) not in (None, "") or biz.get(f"{one}s")]
        checks += [text_in(name, str(biz[name])) for name in ("goodsName", "skuName", "cateName")
                   if biz.get(name) not in (None, "")]
        return checks + [field_between(field, *self.bounds.closed(start, end)) for field, start, end in windows]

    def _apply_due_modification(self, page_index: int, page: list[dict[str, Any]]) -> None:
        """The scripted concurrent edit, when this page is the one it waits for (then it is used up). The page
        already holds the records as they were; the client's next request sees the change."""
        plan = self._paging_modification
        if plan is None:
            return
        if plan["after_calls"] is not None:
            plan["after_calls"] -= 1
            due = plan["after_calls"] <= 0
        else:
            due = plan["after_page"] == page_index and bool(page)
        if not due:
            return
        self._paging_modification = None
        if plan["level"] == "sku":
            for record in page[: plan["count"]]:
                self.edit_sku(record["skuId"], modified_at=plan["modified_at"], **plan["changes"])
        else:
            for goods_no in dict.fromkeys(r["goodsNo"] for r in page[: plan["count"]]):
                self.edit_goods(goods_no, modified_at=plan["modified_at"], **plan["changes"])

    # -- internals --------------------------------------------------------------------------------------------
    def _store(self, record: dict[str, Any]) -> None:
        sku_id = int(record["skuId"])
        if sku_id in self.records:
            raise ValueError(f"skuId {sku_id} exists")
        self.records[sku_id] = record
        insort(self._order, sku_id)
        insort(self._skus_of.setdefault(record["goodsNo"], []), sku_id)
        self._barcodes.add(record["skuBarcode"])

    @staticmethod
    def _check_fields(fields: dict[str, Any], allowed: frozenset[str], level: str) -> None:
        wrong = sorted(set(fields) - (allowed - _MANAGED))
        if wrong:
            other = "SKU" if level == "goods" else "goods"
            raise ValueError(f"not {level}-level fields (managed by the sandbox, {other}-level or unknown): {wrong}")
