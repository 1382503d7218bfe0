"""Persistence files, boot hook and restore (vlaninfra.host.persist) on a scratch root with the
fake IPRoute: what the agent keeps with each object, what a read reports as drift, what a boot
re-creates, and that nothing is left when the last object goes."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.typed_calls import wire
from tests.unit.host.test_host_ops_fake import FakeContext
from vlaninfra.host import agent, facts, marks, ops, persist
from vlaninfra.host.contract import LinkState, RouteState
from vlaninfra.host.errors import OpError
from vlaninfra.host.persist import Store
from vlaninfra.transport._zipapp import build_bundle

OWNER = "vlaninfra/prod"
SHIM = {"name": "shim0", "parent": "eth0.50", "kind": "macvlan", "mode": "bridge",
        "address": "192.0.2.250/32", "routes": ["192.0.2.128/26"], "owner": OWNER,
        "spec": "aaaaaaaaaaaa"}
VLAN = {"trunk": "eth0", "vlan_id": 50, "name": "eth0.50", "owner": OWNER, "spec": "bbbbbbbbbbbb"}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv(persist.ROOT_ENV, str(root))
    monkeypatch.setattr(persist._hook, "own_archive", lambda: b"PK fake agent archive")
    return Store(root)


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


def _handle(ctx: Any, op: str, args: dict[str, Any]) -> Any:
    """``agent.handle`` taking an ensure's arguments flat, as boot files keep them."""
    return agent.handle(ctx, op, wire(op, args))


def _up(ctx: Any) -> None:
    """What `up` does for a shim on a VLAN parent, through the agent's op table."""
    _handle(ctx, "vlan.ensure", {**VLAN, "persist_owner": OWNER})
    _handle(ctx, "shim.ensure", {**SHIM, "persist_owner": OWNER})


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_keeps_one_root_only_file_per_object_and_the_hook(store: Store, ctx: Any) -> None:
    _up(ctx)
    files = sorted(p.name for p in store.owner_dir(OWNER).iterdir())
    assert files == ["shim--shim0.json", "vlan--eth0.50.json"]
    assert store.owner_dir(OWNER).name == "vlaninfra--prod"
    for path in (store.persist_dir, store.owner_dir(OWNER)):
        assert _mode(path) == 0o700
    entry = json.loads(store.file("shim", OWNER, "shim0").read_text())
    assert _mode(store.file("shim", OWNER, "shim0")) == 0o600
    # marked like the live object: the owner and the spec of its alias
    assert (entry["owner"], entry["kind"], entry["name"], entry["spec"]) == (
        OWNER, "shim", "shim0", "aaaaaaaaaaaa")
    assert entry["args"] == {**SHIM, "flag": None, "extra_addresses": []}
    assert store.archive.read_bytes() == b"PK fake agent archive"
    assert _mode(store.archive) == 0o600 and _mode(store.hook) == 0o700
    hook = store.hook.read_text()
    assert f"export {persist.ROOT_ENV}='{store.root}'" in hook
    assert f"-I {store.archive} restore" in hook
    assert not store.unit.exists()  # no systemd on this root: the init runs the hook


def test_an_adopted_vlan_parent_is_not_kept(store: Store, ctx: Any) -> None:
    ctx.ipr.add_link("eth0.50", "vlan", parent=2, vlan_id=50, flags=1)
    out = _handle(ctx, "vlan.ensure", {**VLAN, "persist_owner": OWNER})
    assert out["created"] is False
    assert not store.persist_dir.exists() and not store.hook.exists()


def test_without_persist_owner_nothing_is_written(store: Store, ctx: Any) -> None:
    _handle(ctx, "vlan.ensure", VLAN)
    assert not (store.root / "etc").exists()


def test_read_reports_what_is_wrong_with_the_file(store: Store, ctx: Any) -> None:
    _up(ctx)
    args = {"name": "shim0", "persist_owner": OWNER}
    assert _handle(ctx, "shim.read", args)["persisted"] == "ok"
    assert _handle(ctx, "vlan.read", args | {"name": "eth0.50"})["persisted"] == "ok"
    assert "persisted" not in _handle(ctx, "shim.read", {"name": "shim0"})
    path = store.file("shim", OWNER, "shim0")
    entry = json.loads(path.read_text())
    entry["args"]["address"] = "192.0.2.251/32"  # edited by hand
    path.write_text(json.dumps(entry))
    said = _handle(ctx, "shim.read", args)["persisted"]
    assert said.startswith("differs from the live object in addresses"), said
    entry["owner"] = "vlaninfra/other"
    path.write_text(json.dumps(entry))
    assert _handle(ctx, "shim.read", args)["persisted"].startswith("altered")
    path.write_text("{not json")
    assert _handle(ctx, "shim.read", args)["persisted"].startswith("unreadable")
    path.unlink()
    assert _handle(ctx, "shim.read", args)["persisted"] == "missing"
    # the next `up` (an update: ensure again) writes it back
    _handle(ctx, "shim.ensure", {**SHIM, "persist_owner": OWNER})
    assert _handle(ctx, "shim.read", args)["persisted"] == "ok"


def test_a_dual_stack_shim_is_kept_and_restored_with_its_further_addresses(
        store: Store, ctx: Any) -> None:
    shim = {**SHIM, "extra_addresses": ["2001:db8:1::fffe/128"],
            "routes": ["192.0.2.128/26", "2001:db8:1::10/128"]}
    _handle(ctx, "vlan.ensure", {**VLAN, "persist_owner": OWNER})
    _handle(ctx, "shim.ensure", {**shim, "persist_owner": OWNER})
    args = {"name": "shim0", "persist_owner": OWNER}
    assert _handle(ctx, "shim.read", args)["persisted"] == "ok"
    fresh: Any = FakeContext()
    assert persist.restore(fresh, store, wait=0, say=lambda _: None) == 0
    restored = ops.shim_read(fresh, "shim0")
    assert restored is not None
    assert sorted(restored.addresses) == sorted(["192.0.2.250/32", "2001:db8:1::fffe/128"])


def test_live_drift_shows_in_the_file_check_too(store: Store, ctx: Any) -> None:
    _up(ctx)
    index = ctx.ipr._by_name("shim0")
    ctx.ipr.links[index]["alias"] = marks.alias("vlaninfra/other", "cccccccccccc")
    said = _handle(ctx, "shim.read", {"name": "shim0", "persist_owner": OWNER})
    assert said["persisted"].startswith("differs from the live object in alias"), said


def test_restore_recreates_parents_then_shims_with_their_marks(store: Store, ctx: Any) -> None:
    _up(ctx)
    before = ops.shim_read(ctx, "shim0")
    fresh: Any = FakeContext()  # a booted host: eth0 only
    lines: list[str] = []
    assert persist.restore(fresh, store, wait=0, say=lines.append) == 0
    assert lines == [
        f"vlaninfra restore: vlan eth0.50 (stack {OWNER}): ok",
        f"vlaninfra restore: shim shim0 (stack {OWNER}): ok",
    ]
    after = ops.shim_read(fresh, "shim0")
    assert after is not None and before is not None
    for key in ("kind", "parent", "mode", "addresses", "routes", "alias"):
        assert getattr(after, key) == getattr(before, key), key
    vlan = fresh.ipr.links[fresh.ipr._by_name("eth0.50")]
    assert vlan["alias"] == marks.alias(OWNER, "bbbbbbbbbbbb")


def test_restore_leaves_a_foreign_link_alone_and_says_so(store: Store, ctx: Any) -> None:
    _up(ctx)
    fresh: Any = FakeContext()
    fresh.ipr.add_link("eth0.50", "vlan", parent=2, vlan_id=50, flags=1)
    fresh.ipr.add_link("shim0", "macvlan", parent=2, mode="bridge")  # someone else's
    lines: list[str] = []
    assert persist.restore(fresh, store, wait=0, say=lines.append) == 1
    assert "shim shim0 (stack vlaninfra/prod): FAILED: link 'shim0' exists and is not owned" \
        in lines[1]


def test_delete_removes_the_file_and_the_last_one_the_hook(store: Store, ctx: Any) -> None:
    _up(ctx)
    other = {**SHIM, "name": "shim1", "parent": "eth0", "owner": "vlaninfra/dev"}
    _handle(ctx, "shim.ensure", {**other, "persist_owner": "vlaninfra/dev"})
    _handle(ctx, "shim.delete", {"name": "shim0", "owner": OWNER, "persist_owner": OWNER})
    _handle(ctx, "vlan.delete", {"name": "eth0.50", "owner": OWNER, "persist_owner": OWNER})
    assert not store.owner_dir(OWNER).exists()
    assert store.hook.exists()  # the other stack's shim still needs it
    _handle(ctx, "shim.delete", {"name": "shim1", "owner": "vlaninfra/dev",
                                      "persist_owner": "vlaninfra/dev"})
    assert sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*")) == [
        "etc", "usr", "usr/local", "usr/local/lib", "usr/local/sbin"]


def test_routes_are_kept_by_destination(store: Store, ctx: Any) -> None:
    _handle(ctx, "route.ensure", {"dst": "198.18.1.0/24", "via": "192.0.2.21",
                                       "persist_owner": OWNER})
    path = store.file("route", OWNER, "198.18.1.0/24")
    assert path.name == "route--198.18.1.0_24.json"
    assert json.loads(path.read_text())["args"] == {
        "dst": "198.18.1.0/24", "via": "192.0.2.21", "dev": None}
    read = _handle(ctx, "route.read", {"dst": "198.18.1.0/24", "persist_owner": OWNER})
    assert read["persisted"] == "ok"
    _handle(ctx, "route.delete", {"dst": "198.18.1.0/24", "via": "192.0.2.21",
                                       "persist_owner": OWNER})
    assert not store.persist_dir.exists()


def test_systemd_hosts_get_an_enabled_unit_before_docker(store: Store, ctx: Any) -> None:
    (store.root / "run/systemd/system").mkdir(parents=True)
    _up(ctx)
    unit = store.unit.read_text()
    for line in ("Before=docker.service", "After=network-online.target",
                 f"ExecStart={store.hook}", "Type=oneshot", "WantedBy=multi-user.target"):
        assert line in unit.splitlines(), line
    assert os.readlink(store.unit_link) == "../vlaninfra-restore.service"
    if shutil.which("systemd-analyze"):
        proc = subprocess.run(["systemd-analyze", "verify", str(store.unit)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "vlaninfra-restore" not in proc.stderr, proc.stderr
    for name in ("shim0", "eth0.50"):
        _handle(ctx, "shim.delete" if name == "shim0" else "vlan.delete",
                     {"name": name, "owner": OWNER, "persist_owner": OWNER})
    assert not store.unit.exists() and not store.unit_link.is_symlink()


def test_an_unwritable_store_names_the_file_and_what_to_do(store: Store, ctx: Any) -> None:
    (store.root / "etc").write_text("not a directory")
    with pytest.raises(OpError) as info:
        _handle(ctx, "shim.ensure", {**SHIM, "parent": "eth0", "persist_owner": OWNER})
    assert "shim--shim0.json" in info.value.message
    assert "the live change was made" in info.value.message


def test_owner_and_names_become_safe_file_names() -> None:
    store = Store(Path("/"))
    assert store.owner_dir("../x/y").name == "%2e.--x--y"
    assert store.file("route", "p/s", "2001:db8::/64").name == "route--2001%3adb8%3a%3a_64.json"


def test_the_archive_restores_from_its_zipapp(tmp_path: Path) -> None:
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(build_bundle().data)
    env = {**os.environ, persist.ROOT_ENV: str(tmp_path / "root")}
    proc = subprocess.run([sys.executable, "-I", str(pyz), "restore"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, ""), proc.stderr


def test_deleting_an_object_without_a_file_touches_nothing(store: Store, ctx: Any) -> None:
    _handle(ctx, "vlan.ensure", VLAN)  # made without persistence (an older stack)
    _handle(ctx, "vlan.delete", {"name": "eth0.50", "owner": OWNER,
                                      "persist_owner": OWNER})
    assert not (store.root / "etc").exists()


def test_deleting_the_last_object_whose_file_went_still_removes_the_hook(
        store: Store, ctx: Any) -> None:
    _up(ctx)
    for path in store.persist_dir.glob("*/*.json"):
        path.unlink()  # removed by hand
    _handle(ctx, "shim.delete", {"name": "shim0", "owner": OWNER, "persist_owner": OWNER})
    assert not (store.root / "usr/local/sbin/vlaninfra-restore").exists()
    assert not (store.root / "usr/local/lib/vlaninfra/agent.pyz").exists()


def test_a_guard_puts_the_boot_files_back_with_the_plumbing(store: Store, ctx: Any) -> None:
    _up(ctx)
    kept = persist.files_of(store, OWNER)
    assert sorted(kept) == ["shim--shim0.json", "vlan--eth0.50.json"]
    _handle(ctx, "shim.delete", {"name": "shim0", "owner": OWNER, "persist_owner": OWNER})
    _handle(ctx, "route.ensure", {"dst": "198.18.1.0/24", "via": "192.0.2.21",
                                       "persist_owner": OWNER})  # the change in the window
    other = store.file("shim", "vlaninfra/other", "shim9")
    other.parent.mkdir(mode=0o700)
    other.write_text("{}")  # another stack's: never touched
    persist.put_back(store, OWNER, kept)
    assert persist.files_of(store, OWNER) == kept
    assert other.read_text() == "{}"
    persist.put_back(store, OWNER, {})
    assert not store.owner_dir(OWNER).exists() and other.exists()
    assert (store.root / "usr/local/sbin/vlaninfra-restore").exists()  # other still keeps one


FORMAT_1 = Path(__file__).parent / "fixtures/persist-format1"
"""Boot files as the agent of protocol 1 wrote them (every kind; an ipvlan shim, a
dual-stack shim, a route with and without dev): hosts keep such files across an upgrade."""


def test_files_written_before_specs_still_restore_and_check_ok(store: Store) -> None:
    shutil.copytree(FORMAT_1, store.persist_dir)
    fresh: Any = FakeContext()
    lines: list[str] = []
    assert persist.restore(fresh, store, wait=0, say=lines.append) == 0
    assert [line.split(": ")[1] for line in lines] == [
        f"vlan eth0.50 (stack {OWNER})", f"shim shim0 (stack {OWNER})",
        f"shim shim1 (stack {OWNER})", f"route 198.18.1.0/24 (stack {OWNER})",
        f"route 198.18.2.0/24 (stack {OWNER})"], lines
    shim1 = ops.shim_read(fresh, "shim1")
    assert shim1 is not None and (shim1.kind, shim1.mode, shim1.flag, shim1.alias) == (
        "ipvlan", "l3", "bridge", marks.alias(OWNER, "cccccccccccc"))
    for path in sorted(store.persist_dir.glob("*/*.json")):
        raw, owner, kept = persist._files.load(path)
        # the same object written again is the same bytes: no churn on hosts that upgrade
        assert raw == persist.entry_of(owner, kept), path.name
        state: LinkState | RouteState | None
        if kept.kind == "route":
            route = facts.route_get(fresh, kept.name)
            state = None if route is None else RouteState.of_route(route)
        elif kept.kind == "shim":
            state = ops.shim_read(fresh, kept.name)
        else:
            link = facts.link_get(fresh, kept.name)
            state = None if link is None else LinkState.of_link(link)
        assert state is not None, path.name
        assert persist.check(store, kept.kind, owner, state) == "ok", path.name


def test_a_file_naming_an_impossible_link_is_skipped_and_the_rest_restored(store: Store) -> None:
    shutil.copytree(FORMAT_1, store.persist_dir)
    bad = store.persist_dir / "vlaninfra--prod" / "vlan--eth0.12345678901234.json"
    doc = json.loads((store.persist_dir / "vlaninfra--prod" / "vlan--eth0.50.json").read_text())
    doc["name"] = doc["args"]["name"] = "eth0.12345678901234"  # over IFNAMSIZ
    bad.write_text(json.dumps(doc))
    fresh: Any = FakeContext()
    lines: list[str] = []
    assert persist.restore(fresh, store, wait=0, say=lines.append) == 0
    assert any(line.startswith(f"vlaninfra restore: {bad}: skipped, unreadable") for line in lines)
    assert sum(line.endswith(": ok") for line in lines) == 5, lines
