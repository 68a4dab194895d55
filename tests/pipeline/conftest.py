"""Every test in tests/pipeline/ runs real parts (training, conversion, engines, servers), so
every one is `slow`: `pytest -m "not slow"` never trains, whatever a file remembers to mark."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/pipeline/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
