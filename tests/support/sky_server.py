"""A real local SkyPilot API server (0.14, .venv-sky) for the rented tests, with moto's server
standing in for AWS (S3 for job folders and adapters, STS for the credential check, EC2 for
availability zones) and the fixture catalogs pricing the GPUs.

Its controllers run in-process (`consolidation_mode` for managed jobs and for SkyServe), so a
launched job or a service's replicas wait PENDING/PROVISIONING and then fail to provision:
nothing is ever rented. Provider APIs (Vast's, RunPod's) are refused at once by a loopback
proxy (HTTPS_PROXY); the loopback jail (tests/jail) makes SkyPilot's "internet" probe a no-op.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.polling import until

ROOT = Path(__file__).resolve().parents[2]
SKY = ROOT / ".venv-sky" / "bin"
BUCKET = "tg-rented"


def skip_without_skypilot() -> None:
    if not (SKY / "sky").exists():
        pytest.skip(
            "SkyPilot's environment is missing (make test builds .venv-sky)",
            allow_module_level=True,
        )
    if not shutil.which("rsync"):
        pytest.skip(
            "SkyPilot needs the rsync binary (.ci/run installs it)", allow_module_level=True
        )


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _home(home: Path) -> None:
    catalogs = home / ".sky" / "catalogs"
    catalogs.mkdir(parents=True)
    shutil.copytree(ROOT / "tests" / "fixtures" / "sky_catalogs" / "v8", catalogs / "v8")
    consolidated = {"controller": {"consolidation_mode": True}}
    (home / ".sky" / "config.yaml").write_text(
        yaml.safe_dump({"jobs": consolidated, "serve": consolidated})
    )
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = test\naws_secret_access_key = test\n"
    )
    (home / ".aws" / "config").write_text("[default]\nregion = us-east-1\n")
    # Vast and RunPod: clouds SkyPilot rents from but cannot mount a bucket on (their checks
    # read a key file)
    (home / ".config" / "vastai").mkdir(parents=True)
    (home / ".config" / "vastai" / "vast_api_key").write_text("not-a-real-key\n")
    (home / ".runpod").mkdir()
    (home / ".runpod" / "config.toml").write_text('[default]\napi_key = "not-a-real-key"\n')


@contextlib.contextmanager
def api_server(home: Path) -> Iterator[dict[str, str]]:
    """moto's server, then SkyPilot's API server in `home`; yields the environment that
    reaches them, and stops both after."""
    _home(home)
    moto_port, sky_port, no_proxy = _port(), _port(), _port()
    env = {
        "HOME": str(home),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SKYPILOT_DISABLE_USAGE_COLLECTION": "1",
        "SKYPILOT_API_SERVER_ENDPOINT": f"http://127.0.0.1:{sky_port}",
        "SKYPILOT_API_SERVER_LOCAL_PORT": str(sky_port),
        # a provider's HTTPS API (Vast's, when a job starts provisioning) is refused here, on
        # loopback, at once: nothing is rented and nothing leaves the machine
        "HTTPS_PROXY": f"http://127.0.0.1:{no_proxy}",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    full = {**os.environ, **env}
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(moto_port)],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import boto3

        def bucket() -> bool:
            try:
                s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
                s3.create_bucket(Bucket=BUCKET)
                return True
            except Exception:
                return False

        assert until(bucket, 30, 0.3), "moto's server did not start"
        started = subprocess.run(
            [str(SKY / "sky"), "api", "start", "--port", str(sky_port)],
            env=full,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        yield env
    finally:
        # `sky api stop` refuses a server on any port but its default (46580): "not the
        # default SkyPilot API server started locally". So every process started under this
        # home (the server, its workers, the controllers of jobs and services) is ended here
        _end_processes_of(home)
        moto.terminate()
        moto.wait(30)


def _end_processes_of(home: Path) -> None:
    """SIGKILL every process started with HOME=`home` and every descendant of one (Linux
    /proc). Descendants count because SkyPilot's workers rename themselves
    ("SkyPilot:executor:…"), which blanks what /proc shows of their environment."""
    import signal

    mark, parents, roots = f"HOME={home}".encode(), {}, set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if mark in (proc / "environ").read_bytes().split(b"\0"):
                roots.add(int(proc.name))
        except (OSError, IndexError, ValueError):  # gone, or not ours
            continue
    doomed, grew = set(roots), True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in doomed} - doomed
        doomed |= more
        grew = bool(more)
    for pid in doomed:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
