"""The neighbour solicitation `ndp-unique` sends: addressed to the target's solicited-node
group, with a valid ICMPv6 checksum, from the link-local address or from `::` (DAD)."""

from __future__ import annotations

import ipaddress

from vlaninfra.host.probe import _checksum, _neighbour_solicitation

MAC = bytes.fromhex("020000000001")
TARGET = ipaddress.IPv6Address("2001:db8:1::1f0").packed
LINK_LOCAL = ipaddress.IPv6Address("fe80::1").packed


def _check(frame: bytes, source: bytes) -> None:
    assert frame[:6] == bytes.fromhex("3333ff0001f0") and frame[6:12] == MAC
    assert frame[12:14] == b"\x86\xdd" and frame[20] == 58 and frame[21] == 255
    assert frame[22:38] == source
    assert frame[38:54] == ipaddress.IPv6Address("ff02::1:ff00:1f0").packed
    body = frame[54:]
    assert body[0] == 135 and body[8:24] == TARGET
    pseudo = frame[22:54] + len(body).to_bytes(4, "big") + b"\0\0\0\x3a"
    assert _checksum(pseudo + body) == 0


def test_address_resolution_from_the_link_local_address_carries_the_mac() -> None:
    frame = _neighbour_solicitation(MAC, LINK_LOCAL, TARGET)
    _check(frame, LINK_LOCAL)
    assert frame[54 + 24:] == b"\x01\x01" + MAC


def test_without_a_link_local_address_it_is_a_dad_probe_from_the_unspecified_address() -> None:
    frame = _neighbour_solicitation(MAC, None, TARGET)
    _check(frame, bytes(16))
    assert len(frame) == 54 + 24
