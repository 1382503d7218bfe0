"""The VM lab hosts' base image: built once per machine, cached, shared by every clone.

Build (`build_base_image`): ``vm_image/build-base.sh`` unpacks a bookworm
``linux-image-*-cloud-amd64`` package, debootstraps a minbase rootfs (openssh-server, python3,
iproute2, iputils-ping, kmod, curl, docker.io) into a 2G ext4 image and builds a tiny boot
initramfs. ``vm_image/lab-init`` is the guest's PID 1. The cache key hashes those scripts, the
kernel package and the suite (`cache_key`); `vm_unavailable_reason` says why VM hosts cannot be
built or run here.

Example::

    image = build_base_image(vm_cache_dir())
    image.rootfs  # → ~/.cache/vlaninfra/vm/base-<key>/base.ext4
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vlaninfra.lab._daemons import unmount
from vlaninfra.lab._errors import LabError, VmError
from vlaninfra.lab._qemu import QEMU

__all__ = [
    "DEFAULT_KERNEL_PACKAGE",
    "DEFAULT_SUITE",
    "VmImage",
    "apt_mirror",
    "build_base_image",
    "cache_key",
    "vm_cache_dir",
    "vm_unavailable_reason",
]

DEFAULT_KERNEL_PACKAGE = "linux-image-6.1.0-56-cloud-amd64"
DEFAULT_SUITE = "bookworm"

# Bump when the Python side of the build changes the artifacts (the scripts are hashed anyway).
_BUILD_FORMAT = "vlaninfra-vm-base/1"
_TOOLS_DIR = Path(__file__).resolve().parent / "vm_image"
_BUILD_INPUTS = ("build-base.sh", "lab-init", "initramfs-init")
_ARTIFACTS = ("vmlinuz", "initrd.gz", "base.ext4", "kernel-release")
_BUILD_TOOLS = (
    "debootstrap", "dpkg-deb", "apt-get", "depmod", "cpio", "gzip", "mkfs.ext4", "e2fsck",
)  # fmt: skip
_RUN_TOOLS = (QEMU, "qemu-img", "ssh", "ssh-keygen", "ip")


@dataclass(frozen=True)
class VmImage:
    """A complete, cached base image: boot kernel + initramfs + raw ext4 root (read-only base).

    Example: ``VmImage(directory=Path(".cache/vm/base-3f2a…"), key="3f2a…", ...)``
    """

    directory: Path
    key: str
    kernel: Path
    initrd: Path
    rootfs: Path
    kernel_release: str
    built: bool  # True when this call built it, False on a cache hit
    build_seconds: float  # of the build that produced it (from the manifest on a cache hit)


def vm_unavailable_reason(*, build: bool = False) -> str | None:
    """Why VM hosts cannot run here (None when they can): not root, missing tools, no TCG.

    With ``build=True`` also checks the tools the base image build needs.
    Example: ``vm_unavailable_reason()`` → ``"qemu-system-x86_64 not found (apt-get install …)"``
    """
    if os.geteuid() != 0:
        return "VM lab hosts need root (taps, namespaces, debootstrap)"
    tools = _RUN_TOOLS + (_BUILD_TOOLS if build else ())
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return (
            f"missing {', '.join(missing)} (apt-get install qemu-system-x86 qemu-utils "
            "openssh-client iproute2 debootstrap cpio kmod busybox-static)"
        )
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (no tap devices)"
    try:
        proc = subprocess.run(
            [QEMU, "-accel", "help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{QEMU} cannot run: {exc}"
    if proc.returncode != 0 or "tcg" not in proc.stdout:
        return f"{QEMU} cannot run with TCG: {(proc.stderr or proc.stdout).strip()[:300]}"
    return None


def apt_mirror(suite: str = DEFAULT_SUITE) -> str:
    """The Debian mirror apt is configured with for ``suite`` (deb822 or one-line sources).

    Example: ``apt_mirror()`` → ``"http://deb.debian.org/debian"``
    """
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for stanza in re.split(r"\n\s*\n", deb822.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                k, _, v = line.partition(":")
                fields[k.strip().lower()] = v.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
                and fields.get("uris")
                and fields.get("enabled", "yes").lower() != "no"
            ):
                return fields["uris"].split()[0].rstrip("/")
    one_line = [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
    ]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1].rstrip("/")
    return "http://deb.debian.org/debian"


def cache_key(kernel_package: str = DEFAULT_KERNEL_PACKAGE, suite: str = DEFAULT_SUITE) -> str:
    """Hash of everything the base image is built from: the scripts in vm_image, the kernel
    package and the suite (not the mirror: any mirror yields the same image).

    Example: ``cache_key()`` → ``"9c1e0b6f2d4a7e31"``
    """
    h = hashlib.sha256()
    h.update(f"{_BUILD_FORMAT}\0{kernel_package}\0{suite}\0".encode())
    for name in _BUILD_INPUTS:
        path = _TOOLS_DIR / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VmError(f"build input {path} is missing: {exc}") from exc
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _load_image(directory: Path, key: str, *, built: bool) -> VmImage | None:
    manifest = directory / "manifest.json"
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("key") != key:
        return None
    sizes = meta.get("sizes", {})
    for name in _ARTIFACTS:
        p = directory / name
        if not p.is_file() or p.stat().st_size != sizes.get(name):
            return None
    return VmImage(
        directory=directory,
        key=key,
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.gz",
        rootfs=directory / "base.ext4",
        kernel_release=(directory / "kernel-release").read_text().strip(),
        built=built,
        build_seconds=float(meta.get("build_seconds", 0.0)),
    )


def _remove_tree(path: Path) -> None:
    """Delete ``path``, first unmounting anything a killed build left mounted below it (best
    effort, as a build's clean-up: a mount that will not go is left to `lab down`)."""
    if path.exists():
        with contextlib.suppress(LabError):
            unmount([str(path.resolve())])
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def vm_cache_dir() -> Path:
    """The machine-wide base image cache, shared by every clone on this machine:
    ``$VLANINFRA_VM_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/vlaninfra/vm``.

    Example: ``vm_cache_dir()`` → ``/root/.cache/vlaninfra/vm``
    """
    env = os.environ.get("VLANINFRA_VM_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "vlaninfra" / "vm").resolve()


def _adopt(final: Path, key: str, sources: Sequence[Path]) -> VmImage | None:
    """Hard-link (or copy) a complete image of ``key`` from another cache dir into ``final``.
    The caller holds the cache lock."""
    for src_dir in sources:
        src = src_dir.resolve() / final.name
        if src == final or _load_image(src, key, built=False) is None:
            continue
        staging = final.parent / f".adopt-{key}-{os.getpid()}"
        _remove_tree(staging)
        staging.mkdir(parents=True)
        try:
            for name in (*_ARTIFACTS, "manifest.json"):
                try:
                    os.link(src / name, staging / name)
                except OSError:
                    shutil.copy2(src / name, staging / name)
            staging.rename(final)
        except OSError:
            _remove_tree(staging)
            continue
        return _load_image(final, key, built=False)
    return None


def build_base_image(
    cache_dir: Path,
    *,
    kernel_package: str = DEFAULT_KERNEL_PACKAGE,
    suite: str = DEFAULT_SUITE,
    mirror: str | None = None,
    timeout: float = 1800.0,
    adopt_from: Sequence[Path] = (),
) -> VmImage:
    """Build the VM base image once into ``cache_dir/base-<key>/``; a complete cache is reused.

    A successful build removes the ``base-*`` images of other keys.
    Complete means ``manifest.json`` (written last) names the same key and every artifact has
    the recorded size. ``adopt_from``: other cache dirs whose complete image of the same key is
    hard-linked (or copied) in instead of building. Concurrent callers serialize on
    ``cache_dir/.lock``. Needs root, network
    access to the mirror and the build tools (see `vm_unavailable_reason`).
    Example: ``build_base_image(Path(".cache/vm")).rootfs`` → ``.cache/vm/base-…/base.ext4``
    """
    key = cache_key(kernel_package, suite)
    cache_dir = cache_dir.resolve()
    final = cache_dir / f"base-{key}"
    image = _load_image(final, key, built=False)
    if image is not None:
        return image
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        image = _load_image(final, key, built=False)  # another process may have finished it
        if image is None and adopt_from:
            _remove_tree(final)
            image = _adopt(final, key, adopt_from)
        if image is not None:
            return image
        reason = vm_unavailable_reason(build=True)
        if reason is not None:
            raise VmError(f"cannot build the VM base image: {reason}")
        work = cache_dir / f".build-{key}-{os.getpid()}"
        for stale in cache_dir.glob(f".build-{key}-*"):
            _remove_tree(stale)  # we hold the lock: nobody else is building this key
        _remove_tree(final)
        t0 = time.monotonic()
        try:
            proc = subprocess.run(
                [
                    "bash",
                    str(_TOOLS_DIR / "build-base.sh"),
                    str(work),
                    kernel_package,
                    mirror or apt_mirror(suite),
                    suite,
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            (cache_dir / "last-build.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise VmError(
                    f"VM base image build failed (exit {proc.returncode}); "
                    f"log {cache_dir / 'last-build.log'}:\n{(proc.stdout + proc.stderr)[-3000:]}"
                )
            seconds = time.monotonic() - t0
            staging = cache_dir / f".staging-{key}"
            _remove_tree(staging)
            staging.mkdir()
            sizes = {}
            for name in _ARTIFACTS:
                (work / name).rename(staging / name)
                sizes[name] = (staging / name).stat().st_size
            (staging / "base.ext4").chmod(0o444)  # the read-only backing file of every overlay
            meta = {
                "key": key,
                "kernel_package": kernel_package,
                "suite": suite,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(seconds, 1),
                "sizes": sizes,
            }
            tmp = staging / "manifest.json.tmp"
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
            tmp.rename(staging / "manifest.json")
            staging.rename(final)
            for old in cache_dir.glob("base-*"):
                # Superseded images (other keys). A running VM keeps its backing file open,
                # so removing it under a running VM is safe.
                if old != final:
                    _remove_tree(old)
        except subprocess.TimeoutExpired as exc:
            raise VmError(f"VM base image build timed out after {timeout:.0f} s") from exc
        finally:
            _remove_tree(work)
    image = _load_image(final, key, built=True)
    if image is None:
        raise VmError(f"VM base image in {final} is incomplete right after the build")
    return image
