"""A PostgreSQL store given to `serve()`/`running()` is the process's default while the
gateway runs (what it starts opens the journal by default), and only then."""

from __future__ import annotations

import os

from gateway.journal.db import resolve
from gateway.serve import _store_default

URL = "postgresql://tunegate@127.0.0.1:1/tunegate"


def test_a_store_url_is_the_default_while_the_gateway_runs_and_then_no_longer():
    assert "TUNEGATE_STORE" not in os.environ  # the suite's isolated home has none
    with _store_default(URL):
        assert resolve(None) == URL  # a bare Journal() inside the gateway lands there
    assert "TUNEGATE_STORE" not in os.environ and resolve(None) != URL


def test_a_file_or_nothing_leaves_the_default_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEGATE_STORE", URL)
    with _store_default(tmp_path / "journal.db"), _store_default(None):
        assert os.environ["TUNEGATE_STORE"] == URL
    with _store_default("postgresql://other@127.0.0.1:2/x"):
        assert os.environ["TUNEGATE_STORE"].endswith("/x")
    assert os.environ["TUNEGATE_STORE"] == URL  # put back as it was
