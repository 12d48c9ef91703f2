"""Kingdee test data and clients: the organisation of the warehouse scheme, its BD_STOCK target, BatchSave rows as
the scheme mappings build them (warehouses, materials, sales outbound documents), the official SDK and a raw WebAPI
session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

from jikeyun_kingdee.scheme import TargetSpec

if TYPE_CHECKING:
    from k3cloud_webapi_sdk.main import K3CloudApiSdk

    from jikeyun_kingdee.sandbox.kingdee import KingdeeSandbox

ORG = "I0134"
STUB = "Kingdee.BOS.WebApi.ServicesStub."
#: the warehouse scheme's field mapping (include/schemes/warehouse_I0134.yaml)
WAREHOUSE_FIELDS = {"FName": "{warehouseName}", "FNumber": "{warehouseCode}", "FStockProperty": "1",
                    "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True}


def stock_target(**settings: Any) -> TargetSpec:
    """The BD_STOCK target of organisation I0134 (explicit approval unless ``settings`` say otherwise)."""
    return TargetSpec.model_validate({"form_id": "BD_STOCK", "organisation": ORG, "pk_field": "FStockId",
                                      "fields": WAREHOUSE_FIELDS, **settings})


def warehouse(number: str, name: str | None = None, **fields: object) -> dict:
    """A row exactly as the scheme mapping builds it."""
    return {"FName": f"仓库{number}" if name is None else name, "FNumber": number, "FStockProperty": "1",
            "FCreateOrgId": {"FNumber": ORG}, "FUseOrgId": {"FNumber": ORG}, "FAllowMinusQty": True, **fields}


def material(number: str, name: str | None = None, *, unit: str = "Pcs", category: str = "CHLB01_SYS",
             org: str = ORG, **fields: object) -> dict:
    """A BD_MATERIAL package in the shape of the reference's minimal goods mapping (header, then sub-entities)."""
    return {"FCreateOrgId": {"FNumber": org}, "FUseOrgId": {"FNumber": org}, "FNumber": number,
            "FName": f"商品{number}" if name is None else name, "FSpecification": f"规格{number}",
            "SubHeadEntity": {"FErpClsID": "1", "FCategoryID": {"FNumber": category},
                              "FBaseUnitId": {"FNumber": unit}, "FTaxRateId": {"FNUMBER": "SL02_SYS"}},
            "SubHeadEntity1": {"FStoreUnitID": {"FNumber": unit}, "FIsBatchManage": False}, **fields}


def line(material_number: str, qty: float = 1, price: float = 10.0, *, stock: str = "WH1", unit: str = "Pcs",
         **fields: object) -> dict:
    """One ``FEntity`` row of a sales outbound document."""
    return {"FMaterialID": {"FNumber": material_number}, "FUnitID": {"FNumber": unit}, "FRealQty": qty,
            "FTaxPrice": price, "FIsFree": price == 0, "FStockID": {"FNumber": stock},
            "FStockStatusID": {"FNumber": "KCZT01_SYS"}, "FEntrynote": "", **fields}


def outstock(bill_no: str, lines: list[dict], *, customer: str = "SHOP001", org: str = ORG,
             bill_type: str = "XSCKD01_SYS", **fields: object) -> dict:
    """A SAL_OUTSTOCK package in the shape of the reference's trade mapping (sale and stock organisation ``org``)."""
    return {"FID": 0, "FBillTypeID": {"FNUMBER": bill_type}, "FBillNo": bill_no, "FDate": "2024-06-05 10:00:00",
            "FSaleOrgId": {"FNumber": org}, "FCustomerID": {"FNumber": customer}, "FStockOrgId": {"FNumber": org},
            "SubHeadEntity": {"FSettleCurrID": {"FNumber": "PRE001"}, "FSettleOrgID": {"FNumber": org}},
            "FEntity": lines, **fields}


def sdk_client(sandbox: KingdeeSandbox, app_secret: str | None = None) -> K3CloudApiSdk:
    """Kingdee's official Python SDK, signing its requests for the sandbox's app."""
    from k3cloud_webapi_sdk.main import K3CloudApiSdk

    url = f"{sandbox.url}/k3cloud/"
    sdk = K3CloudApiSdk(url)
    sdk.InitConfig(sandbox.acct_id, sandbox.username, sandbox.app_id, app_secret or sandbox.app_secret, url)
    return sdk


class WebApi:
    """Raw WebAPI calls on one logged-in cookie session (ValidateUser), for tests of the protocol itself."""

    def __init__(self, sandbox: KingdeeSandbox) -> None:
        self.url = f"{sandbox.url}/k3cloud/"
        self.http = requests.Session()
        login = self.post("AuthService.ValidateUser", {"acctID": sandbox.acct_id, "username": sandbox.username,
                                                        "password": sandbox.password, "lcid": 2052})
        assert login["LoginResultType"] == 1

    def post(self, service: str, body: dict) -> Any:
        reply = self.http.post(f"{self.url}{STUB}{service}.common.kdsvc", json=body, timeout=5)
        reply.raise_for_status()
        return reply.json()

    def call(self, operation: str, form: str, data: dict, **extra: Any) -> Any:
        """A DynamicFormService operation in the SDK's named body shape."""
        return self.post(f"DynamicFormService.{operation}", {"formid": form, **extra, "data": data})

    def status(self, operation: str, form: str, data: dict, **extra: Any) -> dict:
        """The ``ResponseStatus`` of a write."""
        status: dict = self.call(operation, form, data, **extra)["Result"]["ResponseStatus"]
        return status

    def query(self, form: str, keys: str, filter_string: str = "", **options: Any) -> Any:
        return self.post("DynamicFormService.ExecuteBillQuery", {"data": {
            "FormId": form, "FieldKeys": keys, "FilterString": filter_string, **options}})
