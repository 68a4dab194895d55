"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest

from tests.support import usage


@pytest.fixture
def together_job(tmp_path):
    """A Together LoRA job on Llama-3.1-8B, deployed serverless (per token), guessing 2M/day."""
    return usage.together_job(tmp_path)
