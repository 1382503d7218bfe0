"""Host key lines for tests that never connect."""

from __future__ import annotations

import base64
import hashlib

__all__ = ["fake_host_key", "key_line"]


def key_line(kind: str, *fields: bytes) -> str:
    """A public key line ``KIND BASE64`` whose blob is ``kind`` and ``fields``, each
    length-prefixed as OpenSSH writes them. Example: ``key_line("ssh-ed25519", bytes(32))``"""
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in (kind.encode(), *fields))
    return f"{kind} {base64.b64encode(blob).decode()}"


def fake_host_key(name: str) -> str:
    """A well-formed ``ssh-ed25519`` public key line whose 32 key bytes come from ``name`` (no
    private key exists for it). Example: ``fake_host_key("h1")`` → ``"ssh-ed25519 AAAAC3Nz…"``"""
    return key_line("ssh-ed25519", hashlib.sha256(name.encode()).digest())
