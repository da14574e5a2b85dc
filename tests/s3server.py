"""A real S3 HTTP endpoint on loopback: ``moto_server`` in a subprocess (STYLE.md section 10).

``MotoServer`` starts it on a free port, waits until it answers, and kills it; a test that wants the endpoint
to die mid-operation starts its own and calls ``stop()``. ``aws_env`` is the environment that points boto3
(ours or a child process's) at it, isolated from the developer's ~/.aws.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto accepts any key unless auth is switched on (INITIAL_NO_AUTH_ACTION_COUNT)
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def aws_env(endpoint: str, home: Path) -> dict[str, str]:
    """AWS_* variables for a client of ``endpoint``; empty config files in ``home`` hide ~/.aws."""
    config = home / "aws-config"
    config.touch()
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(config),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


AWS_ENV_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_PROFILE")


class MotoServer:
    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env or {}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> MotoServer:
        exe = shutil.which("moto_server")
        argv = [exe] if exe else [sys.executable, "-m", "moto.server"]
        env = {**os.environ, **self._env}
        self._proc = subprocess.Popen(
            [*argv, "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode} before answering")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout:g}s")

    def stop(self) -> None:
        """Kill the server at once (no graceful shutdown: tests use this to make the endpoint vanish)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def reset(self) -> None:
        """Forget every bucket, key and upload (moto's reset API)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
