"""The lab image: a busybox-static rootfs, `docker import`ed on every host; no registry."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from vlaninfra.lab._errors import LabError
from vlaninfra.lab._netns import run

__all__ = ["IMAGE", "build_rootfs", "ensure_image"]

IMAGE = "vlaninfra/busybox:lab"
BUSYBOX = Path("/bin/busybox")
_LABEL = "org.vlaninfra.lab.rootfs"
_APPLETS = (
    "sh",
    "ash",
    "httpd",
    "ping",
    "ip",
    "wget",
    "cat",
    "sleep",
    "hostname",
    "ifconfig",
    "awk",
    "echo",
    "ls",
    "mkdir",
    "nc",
    "ps",
    "route",
    "arp",
    "grep",
    "env",
    "true",
    "false",
    "kill",
    "id",
    "uname",
    "date",
    "traceroute",
    "nslookup",
    "mount",
    "tail",
    "head",
    "printf",
    "test",
)
# Default command: serve "<hostname> <addresses>" on port 80 (override with -e PORT=8080).
_SERVE = """#!/bin/sh
{ hostname; ip -4 -o addr show scope global | awk '{print $4}'; } > /www/index.html
exec httpd -f -p "${PORT:-80}" -h /www
"""
_RECIPE_VERSION = "1"


def _add(
    tar: tarfile.TarFile,
    name: str,
    *,
    data: bytes | None = None,
    mode: int = 0o644,
    link: str | None = None,
    is_dir: bool = False,
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = mode
    if is_dir:
        info.type, info.mode = tarfile.DIRTYPE, 0o755 if name != "tmp" else 0o1777
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(info)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def build_rootfs(cache: Path) -> tuple[Path, str]:
    """Build (once; cached by content) the rootfs tarball; return its path and digest."""
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} is missing: install the busybox-static package")
    busybox = BUSYBOX.read_bytes()
    digest = hashlib.sha256(busybox + _SERVE.encode() + _RECIPE_VERSION.encode()).hexdigest()
    path = cache / f"busybox-rootfs-{digest[:16]}.tar"
    if path.exists():
        return path, digest
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for d in ("bin", "etc", "www", "tmp", "proc", "sys", "dev", "root", "var"):
            _add(tar, d, is_dir=True)
        _add(tar, "bin/busybox", data=busybox, mode=0o755)
        for applet in _APPLETS:
            _add(tar, f"bin/{applet}", link="busybox")
        _add(tar, "bin/lab-serve", data=_SERVE.encode(), mode=0o755)
        _add(tar, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", data=b"root:x:0:\n")
        _add(tar, "www/index.html", data=b"vlaninfra lab\n")
    tmp.replace(path)
    return path, digest


def ensure_image(docker_socket: str, tarball: Path, digest: str) -> bool:
    """Import the image on one host unless it is there already; True if imported."""
    docker = ["docker", "-H", f"unix://{docker_socket}"]
    out = run(
        [*docker, "image", "inspect", "--format", "{{json .Config.Labels}}", IMAGE], check=False
    )
    labels = json.loads(out) if out.strip() else None
    if isinstance(labels, dict) and labels.get(_LABEL) == digest:
        return False
    run(
        [
            *docker,
            "import",
            "--change",
            'CMD ["/bin/lab-serve"]',
            "--change",
            "EXPOSE 80",
            "--change",
            f"LABEL {_LABEL}={digest}",
            str(tarball),
            IMAGE,
        ]
    )
    return True
