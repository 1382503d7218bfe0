"""`host_key_problem`: what the layout and `SshTarget` refuse as a pinned host key."""

from __future__ import annotations

import pytest

from tests.hostkeys import fake_host_key, key_line
from vlaninfra._hostkey import host_key_problem
from vlaninfra.transport import SshTarget, TargetError


@pytest.mark.parametrize("line", [
    fake_host_key("h1"),
    f"  {fake_host_key('h1')}  root@h1\n",  # whitespace and a comment, as ssh-keygen writes
    key_line("ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xc3" * 256),
    key_line("ecdsa-sha2-nistp256", b"nistp256", b"\x04" + b"\x11" * 64),
    key_line("sk-ssh-ed25519@openssh.com", b"\x22" * 32, b"ssh:"),
    key_line("ssh-ed25519-cert-v01@openssh.com", b"nonce") + "AAAAAAAAAAAB",  # fields not all sized
])
def test_whole_public_key_lines_pass(line: str) -> None:
    assert host_key_problem(line) is None


@pytest.mark.parametrize(("line", "problem"), [
    ("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8", "expected its type and base64"),
    ("ssh-ed25519 AAAAC", "its base64 does not decode"),
    (fake_host_key("h1")[:-4], "is not a whole ssh-ed25519 key (cut short?)"),
    (fake_host_key("h1")[:-8], "is not a whole ssh-ed25519 key (cut short?)"),
    (key_line("ssh-ed25519"), "is not a whole ssh-ed25519 key"),  # the type and no key
    (fake_host_key("h1") + "AAAA", "is not a whole ssh-ed25519 key"),  # bytes after the key
    ("ssh-rsa " + fake_host_key("h1").split()[1], "holds a key of type 'ssh-ed25519', not ssh-rsa"),
])
def test_what_cannot_be_a_whole_key_is_refused_with_the_way_to_get_one(
        line: str, problem: str) -> None:
    found = host_key_problem(line)
    assert found is not None and problem in found
    assert found.endswith("copy the whole line again from `ssh-keyscan HOST`, without the host "
                          "name in front")


def test_ssh_target_refuses_a_cut_key_naming_its_config_key() -> None:
    with pytest.raises(TargetError, match=r"^sites\.a\.hosts\[0\]\.ssh\.host_key: its base64 "
                                          r"is not a whole ssh-ed25519 key"):
        SshTarget("203.0.113.9", host_key=fake_host_key("h1")[:-4],
                  config_key="sites.a.hosts[0].ssh.host_key")
