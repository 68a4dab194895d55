"""Jails every Python process the test suite starts (tests/jail/tunegate_jail.py says why).

The suite puts this folder first on PYTHONPATH, so Python imports this file at start-up in
every interpreter a test starts: workers, `tunegate serve`, engines, moto, SkyPilot's API server
and its controllers. A `sitecustomize` that this one shadows is still run after it.
"""

from __future__ import annotations

import importlib.util
import os
import sys

if os.environ.get("TUNEGATE_JAIL_LOG"):
    import tunegate_jail

    tunegate_jail.install()


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or ".") == here:
            continue
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_run_shadowed()
