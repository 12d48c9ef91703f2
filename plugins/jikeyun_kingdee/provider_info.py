"""Provider metadata: the ``jikeyun`` and ``kingdee`` connection types as Airflow's UI shows them."""

from __future__ import annotations

PROVIDER_INFO: dict = {
    "package-name": "airflow-jikeyun-kingdee",
    "name": "Jikeyun → Kingdee",
    "description": "Jikeyun (Jackyun ERP) and Kingdee Cloud Galaxy (K3Cloud) hooks and master-data sync DAGs.",
    "versions": ["0.1.0"],
    "connection-types": [
        {"connection-type": "jikeyun", "hook-class-name": "jikeyun_kingdee.hooks.jikeyun.JikeyunHook"},
        {"connection-type": "kingdee", "hook-class-name": "jikeyun_kingdee.hooks.kingdee.KingdeeHook"},
    ],
}
