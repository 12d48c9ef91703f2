"""Faithful loopback sandboxes of the Jikeyun open API and the Kingdee K3Cloud WebAPI, for tests and demos.

``python -m jikeyun_kingdee.sandbox serve jikeyun --port 8801`` starts one from the command line;
``python -m jikeyun_kingdee.sandbox control http://127.0.0.1:8801 faults '{"status": [500]}'`` scripts it.
"""

from __future__ import annotations

from jikeyun_kingdee.sandbox._http import Faults, Reply, Request, SandboxServer

__all__ = ["Faults", "Reply", "Request", "SandboxServer"]
