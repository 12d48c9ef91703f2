"""The test suite of the package, one sub-package per area; shared helpers live in :mod:`tests.support`."""

from __future__ import annotations

import pytest

# Helper modules are imported by conftests and tests alike; rewrite their asserts as pytest does for test modules.
pytest.register_assert_rewrite("tests.support")
