"""Airflow DAGs, one per scheme file in include/schemes (or $JIKEYUN_KINGDEE_SCHEMES): Jikeyun → Kingdee sync.

Broken scheme files show as an import error of this file naming the file and the field; the others still load.
(The words "airflow" and "dag" in this docstring also let Airflow's safe-mode file scan pick the file up.)
"""

from __future__ import annotations

from jikeyun_kingdee.dag_factory import build_dags
from jikeyun_kingdee.scheme import default_schemes_folder

globals().update(build_dags(default_schemes_folder(__file__), dags_file=__file__))
