"""Every test in tests/pipeline/ runs real parts (training, conversion, engines, servers), so
every one is `slow`: `pytest -m "not slow"` never trains, whatever a file remembers to mark."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/pipeline/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def sky_server(tmp_path_factory):
    """One local SkyPilot API server (with moto) for every rented test of the session."""
    pytest.importorskip("moto")
    pytest.importorskip("boto3")
    from tests.support.sky_server import api_server, skip_without_skypilot

    skip_without_skypilot()
    with api_server(tmp_path_factory.mktemp("sky-server-home")) as env:
        yield env
