"""The pytest side of the loopback jail (tests/jail/tunegate_jail.py).

At configure time it jails this process, exports the jail to every Python process the tests
start (this folder first on PYTHONPATH, a fresh refusal log in TUNEGATE_JAIL_LOG), and then
reads that log after each phase of each test: a refusal that appeared during a test, from this
process or any child, fails that test with the addresses named. The run ends with the list of
every refusal seen.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.jail import tunegate_jail

HERE = Path(__file__).resolve().parent


class _Log:
    """The refusal log and how far it has been read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.seen: list[tuple[str, str]] = []

    def new_lines(self) -> list[str]:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [line for line in complete.decode("utf-8", "replace").splitlines() if line]


_LOG_KEY = pytest.StashKey[_Log]()


# the suite runs offline: libraries that would ask a hub or send telemetry are told so up front
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, value in OFFLINE.items():
        os.environ.setdefault(name, value)
    # a pip the tests run (SkyPilot building its wheel, a bare venv) installs from the
    # wheelhouse `make test` filled, never from an index
    os.environ.setdefault("PIP_NO_INDEX", "1")
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    wheelhouse = HERE.parents[1] / ".venv" / "wheelhouse"
    if wheelhouse.is_dir():
        os.environ.setdefault("PIP_FIND_LINKS", str(wheelhouse))
    log = Path(tempfile.mkdtemp(prefix="tunegate-jail-")) / "refusals.log"
    log.touch()
    os.environ[tunegate_jail.LOG_VAR] = str(log)
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    tunegate_jail.install()
    config.stash[_LOG_KEY] = _Log(log)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    log = item.config.stash.get(_LOG_KEY, None)
    if log is None:
        return
    lines = log.new_lines()
    if not lines:
        return
    log.seen += [(item.nodeid, line) for line in lines]
    shown = "\n".join(_describe(line) for line in lines)
    text = f"the loopback jail refused {len(lines)} connection(s) during {report.when}:\n{shown}"
    report.sections.append(("loopback jail", text))
    if report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = text


def _describe(line: str) -> str:
    parts = line.split("\t")
    if len(parts) < 5:
        return f"  {line}"
    _, pid, kind, target, argv = parts[:5]
    return f"  {kind} {target} ({pid}: {argv})"


def pytest_unconfigure(config: pytest.Config) -> None:
    """The refusal log goes with the run (its lines were reported in the summary)."""
    log = config.stash.get(_LOG_KEY, None)
    if log is not None:
        import shutil

        shutil.rmtree(log.path.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    log = config.stash.get(_LOG_KEY, None)
    if log is None:
        return
    if not log.seen:
        terminalreporter.write_line("loopback jail: no connection left loopback")
        return
    terminalreporter.section("loopback jail: refused connections")
    for nodeid, line in log.seen:
        terminalreporter.write_line(f"{nodeid}: {_describe(line).strip()}")
