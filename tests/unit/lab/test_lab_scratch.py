"""Which scratch-host leftovers `lab down` sweeps: only those of test runs that no longer run."""

from __future__ import annotations

from pathlib import Path

from vlaninfra.lab._scratch import dead_scratch


def test_only_leftovers_of_dead_runs_of_scratch_shape_are_chosen() -> None:
    live = {100, 200}
    chosen = dead_scratch(
        ["vxa-dk-100", "vxa-ssh-7", "vxa-my-label-8", "vl-a-h1", "vlt1-a-h1", "vxa-x"],
        ["vxa100m", "vxa7m", "vxa7", "eth0", "vt-vl-a-v1-l"],
        [
            Path("/run/vxa-7"),
            Path("/run/vxa-200"),
            Path("/tmp/vxa-sshd-7-ab_c9x"),
            Path("/tmp/vxa-sshd-100-qq"),
            Path("/var/tmp/vxa-docker-9-zz01"),
            Path("/var/tmp/vxa-docker-9-zz01.log"),
            Path("/tmp/vxa-sshd-83920571"),  # old naming: no pid, never judged
            Path("/tmp/vxa-sshd-7"),
            Path("/run/vlaninfra-lab"),
        ],
        lambda pid: pid in live,
    )
    assert [(s.kind, s.name, s.pid) for s in chosen] == [
        ("link", "vxa7m", 7),
        ("netns", "vxa-my-label-8", 8),
        ("netns", "vxa-ssh-7", 7),
        ("path", "/run/vxa-7", 7),
        ("path", "/tmp/vxa-sshd-7-ab_c9x", 7),
        ("path", "/var/tmp/vxa-docker-9-zz01", 9),
        ("path", "/var/tmp/vxa-docker-9-zz01.log", 9),
    ]
    assert str(chosen[1]) == "namespace vxa-my-label-8"


def test_pid_0_and_1_are_never_an_owner() -> None:
    never = dead_scratch(["vxa-a-0", "vxa-a-1"], ["vxa1m"], [Path("/run/vxa-1")], lambda _: False)
    assert never == []


def test_nothing_is_chosen_while_every_run_lives() -> None:
    assert dead_scratch(["vxa-dk-5"], ["vxa5m"], [Path("/run/vxa-5")], lambda _: True) == []
