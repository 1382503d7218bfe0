"""A real S3-compatible server for team-state tests: versitygw (an S3 gateway a team runs in
front of a POSIX file system), built by `tools/build-team-tools.sh`, serving one bucket from a
scratch directory inside a network namespace the fixture creates, reached from the root
namespace over a management veth in 203.0.113.128/25 (as the lab reaches its sshds).

Credentials are fresh random ones per server, handed over only through the environment (never
on a command line, so never in `ps` or a log line).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.lab._agent_fixtures import mgmt_link, netns, stop
from vlaninfra.engine import project_root

PORT = 7070
BUCKET = "vlaninfra-state"
ACCESS_KEY = "vlaninfra-test"


@dataclass(frozen=True)
class S3Server:
    """A running versitygw with one bucket; `env` is what pulumi needs to use it as its backend."""

    url: str
    """The backend URL, e.g. ``s3://vlaninfra-state?endpoint=http://203.0.113.250:7070&…``"""
    data: Path
    """versitygw's POSIX root: `data/BUCKET/...` are the bucket's objects."""
    secret_key: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "PULUMI_BACKEND_URL": self.url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            # Nothing else of this machine's AWS set-up is read, and no metadata service asked.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def locks(self, stack: str) -> list[Path]:
        """The lock objects on `stack` in the bucket, read from the server's own files."""
        return sorted((self.data / BUCKET / ".pulumi" / "locks").rglob(f"{stack}/*.json"))


def _wait_listening(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"versitygw exited: {log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((address, PORT), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"versitygw did not listen on {address}:{PORT} within 20 s")


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """versitygw in its own namespace; stopped, and its data removed, also on failure."""
    subprocess.run([str(project_root() / "tools" / "build-team-tools.sh")], check=True,
                   capture_output=True)
    gateway = project_root() / ".engine" / "bin" / "versitygw"
    data = Path(tempfile.mkdtemp(prefix="vxs3-data-"))
    secret = secrets.token_urlsafe(24)
    proc: subprocess.Popen[bytes] | None = None
    try:
        (data / "gw").mkdir()
        (data / "gw" / BUCKET).mkdir()  # a POSIX directory under the root is a bucket
        log = data / "versitygw.log"
        with netns("s3") as ns, mgmt_link(ns) as address, open(log, "wb") as out:
            env = {"PATH": os.environ["PATH"], "ROOT_ACCESS_KEY_ID": ACCESS_KEY,
                   "ROOT_SECRET_ACCESS_KEY": secret}
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{ns}", "--", str(gateway),
                 "--port", f"{address}:{PORT}", "--quiet", "posix", str(data / "gw")],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
            try:
                _wait_listening(address, proc, log)
                url = (f"s3://{BUCKET}?endpoint=http://{address}:{PORT}"
                       "&s3ForcePathStyle=true&region=us-east-1")
                yield S3Server(url, data / "gw", secret)
            finally:
                stop(proc, 10)
    finally:
        shutil.rmtree(data, ignore_errors=True)
