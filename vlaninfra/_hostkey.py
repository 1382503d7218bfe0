"""Whether a pinned SSH host key is a whole OpenSSH public key line: what the layout and
`SshTarget` both ask (standard library only: the layout imports it)."""

from __future__ import annotations

import base64

__all__ = ["host_key_problem"]

_AGAIN = ": copy the whole line again from `ssh-keyscan HOST`, without the host name in front"


def host_key_problem(line: str) -> str | None:
    """Why ``line`` is not a public key line ``TYPE BASE64 [comment]`` whose base64 holds a
    whole key of that type, or None. The key's fields are length-prefixed, so a key cut short
    (even at a 4-character boundary, which still decodes) or pasted under another type's name
    is told apart from a whole one.

    Example: ``host_key_problem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")`` →
    ``"its base64 is not a whole ssh-ed25519 key (cut short?): copy the whole line again …"``
    """
    parts = line.split()
    if len(parts) < 2:
        return "expected its type and base64, e.g. 'ssh-ed25519 AAAA...'" + _AGAIN
    kind, text = parts[0], parts[1]
    try:
        blob = base64.b64decode(text, validate=True)
    except ValueError:
        return "its base64 does not decode (cut short or mistyped?)" + _AGAIN
    cert = kind.endswith("-cert-v01@openssh.com")  # later fields not all length-prefixed
    fields: list[bytes] = []
    at = 0
    while at < len(blob) and not (cert and fields):
        size = int.from_bytes(blob[at:at + 4], "big")
        if at + 4 + size > len(blob):
            break
        fields.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    if fields and fields[0] != kind.encode():
        named = fields[0].decode(errors="replace")
        return f"its base64 holds a key of type {named!r}, not {kind}" + _AGAIN
    if not fields or (not cert and (at != len(blob) or len(fields) < 2)):
        return f"its base64 is not a whole {kind} key (cut short?)" + _AGAIN
    return None
