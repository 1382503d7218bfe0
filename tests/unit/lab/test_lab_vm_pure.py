"""VM lab hosts without root or QEMU: kernel command line, QEMU's argv, MACs, the cache key,
and that `stop_vm` never ends a process it did not start."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlaninfra.lab._qemu import VmFiles, qemu_argv
from vlaninfra.lab._vm import (
    QEMU,
    VmError,
    cache_key,
    kernel_cmdline,
    lan_mac,
    stop_vm,
)


def test_kernel_cmdline_carries_addresses_and_vlans_but_no_keys() -> None:
    line = kernel_cmdline(
        name="h1",
        lan_address="198.51.100.21/24",
        lan_gateway="198.51.100.1",
        mgmt_address="203.0.113.242/30",
        lan_address6="2001:db8:1::15/64",
        lan_gateway6="2001:db8:1::1",
        vlans=[(50, "198.18.50.2/24"), (60, None)],
    )
    assert "vl.lan=198.51.100.21/24" in line and "vl.gw=198.51.100.1" in line
    assert "vl.lan6=2001:db8:1::15/64" in line and "vl.gw6=2001:db8:1::1" in line
    assert "vl.mgmt=203.0.113.242/30" in line and "vl.vlans=50:198.18.50.2/24,60" in line
    assert "ssh-" not in line and "KEY" not in line.upper()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lan_address": "198.51.100.21"},  # no prefix
        {"lan_address": "198.51.100.21/24;reboot"},
        {"lan_gateway": "198.51.100.1 init=/bin/sh"},
        {"vlans": [(4095, "198.18.50.2/24")]},
        {"vlans": [(50, None), (50, None)]},
        {"lan_address6": "2001:db8:1::15"},  # no prefix
        {"lan_address6": "fd00::15/64"},  # outside the documentation prefix
        {"lan_address6": "198.51.100.21/24"},
        {"lan_address6": "2001:db8:1::15/64", "lan_gateway6": "2001:db8:2::1"},
        {"lan_gateway6": "2001:db8:1::1"},  # a gateway without an address
    ],
)
def test_kernel_cmdline_rejects_bad_values(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "name": "h1",
        "lan_address": "198.51.100.21/24",
        "lan_gateway": None,
        "mgmt_address": "203.0.113.242/30",
        "vlans": [],
    }
    args.update(kwargs)
    with pytest.raises(VmError):
        kernel_cmdline(**args)  # type: ignore[arg-type]


def test_macs_and_cache_key_are_stable() -> None:
    assert lan_mac(21) == "0a:76:6c:00:15:01"
    assert cache_key() == cache_key() and re.fullmatch(r"[0-9a-f]{16}", cache_key())
    assert cache_key(kernel_package="linux-image-other") != cache_key()


def test_stop_vm_never_ends_a_qemu_it_did_not_start(tmp_path: Path) -> None:
    # A process that looks like this module's QEMU (name, -pidfile) but started after the
    # pidfile was written (a reused pid) is not stopped; nothing stops a QEMU by name.
    import vlaninfra.lab._vm as vm_module

    assert not hasattr(vm_module, "stop_all")
    pidfile = tmp_path / "qemu.pid"
    pidfile.write_text("1\n")
    old = time.time() - 60
    os.utime(pidfile, (old, old))
    argv = [QEMU, "-c", "import time; time.sleep(30)", "-name", "vt-vmtx", "-pidfile", str(pidfile)]
    impostor = subprocess.Popen(argv, executable=sys.executable)
    try:
        pidfile.write_text(f"{impostor.pid}\n")
        os.utime(pidfile, (old, old))
        stop_vm(tmp_path)
        assert impostor.poll() is None, "stop_vm ended a process it did not start"
    finally:
        impostor.kill()
        impostor.wait()


def test_qemu_argv_names_taps_pidfile_macs_and_keys_as_fw_cfg_files() -> None:
    files = VmFiles.of(Path("/s/h1"))
    argv = qemu_argv(name="h1", kernel=Path("/i/vmlinuz"), initrd=Path("/i/initrd.gz"),
                     cmdline="console=ttyS0 vl.name=h1", files=files, memory_mb=1024,
                     mac_seed=21)  # fmt: skip
    assert argv[0] == QEMU
    pairs = dict(itertools.pairwise(argv))
    assert pairs["-name"] == "vt-h1" and pairs["-pidfile"] == "/s/h1/qemu.pid"
    assert pairs["-m"] == "1024" and pairs["-append"] == "console=ttyS0 vl.name=h1"
    assert "-daemonize" in argv and pairs["-serial"] == "file:/s/h1/console.log"
    netdevs = [w for w in argv if w.startswith("tap,")]
    assert [w.split(",")[2] for w in netdevs] == ["ifname=vt-h1-l", "ifname=vt-h1-m"]
    assert any(f"mac={lan_mac(21)}" in w for w in argv)
    assert "name=opt/vlaninfra/host_key,file=/s/h1/ssh_host_ed25519_key" in argv
    assert "name=opt/vlaninfra/authorized_keys,file=/s/h1/authorized_keys" in argv
    assert not any("ssh-ed25519" in w for w in argv)  # keys only as files
