"""Jikeyun (Jackyun ERP) → Kingdee Cloud Galaxy (K3Cloud) master-data sync for Apache Airflow."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata read by Airflow's ProvidersManager (connection types for the UI)."""
    from jikeyun_kingdee.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
