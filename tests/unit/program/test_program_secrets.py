"""Where the SSH private key comes from: ssh-agent by default, a key file on the controller, or a
stack config key that must be a Pulumi secret (refused otherwise, before anything is registered).
Messages name keys and commands, never a key's value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.hostkeys import fake_host_key
from vlaninfra import program
from vlaninfra.engine import config_key
from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import load_config
from vlaninfra.providers import DockerHost, _host
from vlaninfra.transport import SshTarget

PEM = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)


def _hosts(ssh: dict[str, Any]) -> dict[tuple[str, str], DockerHost]:
    site = {
        "lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"},
        "hosts": [{"name": "h1", "lan_address": "192.0.2.11",
                   "ssh": {"address": "203.0.113.9", "host_key": fake_host_key("test"), **ssh}}],
    }
    return program.hosts_of(load_config({"sites": {"a": site}}))


def test_no_key_source_means_ssh_agent() -> None:
    h1 = _hosts({})[("a", "h1")]
    assert (h1.key_path, h1.key_config) == (None, None)
    target = _host.target_of({"connection": h1.connection()})
    assert isinstance(target, SshTarget) and target.private_key is None


def test_a_key_file_is_read_on_the_controller_with_tilde(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "id").write_text(PEM)
    h1 = _hosts({"private_key_file": "~/id"})[("a", "h1")]
    assert h1.connection()["key_path"] == "~/id"  # the path, never the key, in properties
    target = _host.target_of({"connection": h1.connection()})
    assert isinstance(target, SshTarget) and target.private_key == PEM


def test_a_key_file_that_is_not_text_is_refused_without_quoting_it(tmp_path: Any) -> None:
    (tmp_path / "id").write_bytes(b"0\x82\x04\xa4\xff\xfe secret-bytes")  # e.g. DER
    h1 = _hosts({"private_key_file": str(tmp_path / "id")})[("a", "h1")]
    with pytest.raises(VlanInfraError) as err:
        _host.target_of({"connection": h1.connection()})
    assert "is not text" in str(err.value) and "secret-bytes" not in str(err.value)


@pytest.mark.parametrize(("ssh", "message"), [
    ({"private_key_file": "id_ed25519"}, r"private_key_file: give an absolute path or ~/"),
    ({"private_key_file": "/k", "private_key_config": "sshPrivateKey"},
     r"give private_key_file or private_key_config, not both"),
])
def test_bad_key_sources_are_refused(ssh: dict[str, Any], message: str) -> None:
    with pytest.raises(VlanInfraError, match=r"sites\.a\.hosts\[0\]\.ssh.*" + message):
        _hosts(ssh)


@pytest.mark.parametrize(("ssh", "key", "message"), [
    ({"host_key": "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8"}, "host_key",
     "expected a host key"),
    ({"host_key": "h1.example ssh-ed25519 AAAAC3Nz"}, "host_key", "without the host name"),
    ({"host_key": "ssh-ed25519 AAAAC3NzaC1"}, "host_key", "expected a host key"),  # cut short
    ({"host_key": fake_host_key("h1")[:-4]}, "host_key",  # cut where base64 still decodes
     r"not a whole ssh-ed25519 key \(cut short\?\): copy the whole line again"),
    ({"host_key": "ssh-rsa " + fake_host_key("h1").split()[1]}, "host_key",
     "holds a key of type 'ssh-ed25519', not ssh-rsa"),
    ({"address": "root@203.0.113.9"}, "address", "not as user@"),
    ({"user": "admin@corp"}, "user", "expected a login name"),
])
def test_ssh_settings_that_cannot_be_right_are_refused_by_the_layout_with_their_key(
        ssh: dict[str, Any], key: str, message: str) -> None:
    """What `ssh-keyscan`, a fingerprint or `user@host` habits put there: refused when the
    layout is read (so `vlaninfra plan` says it too), never a traceback at connect time."""
    with pytest.raises(VlanInfraError, match=rf"sites\.a\.hosts\[0\]\.ssh\.{key}.*{message}"):
        _hosts(ssh)


def test_an_ssh_host_without_its_host_key_is_refused_by_the_program_with_the_key() -> None:
    site = {"lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"},
            "hosts": [{"name": "h1", "lan_address": "192.0.2.11",
                       "ssh": {"address": "203.0.113.9"}}]}
    layout = load_config({"sites": {"a": site}})  # a plan needs no host key
    hosts = program.hosts_of(layout)
    problems = program.check_targets(program.by_config_path(layout, hosts, {}))
    assert problems == [
        "sites.a.hosts[0].ssh.host_key: an SSH host needs its pinned host key, e.g. "
        "'ssh-ed25519 AAAA...': add it from `ssh-keyscan -t ed25519 203.0.113.9` (without the "
        "host name), checked out of band"]
    with pytest.raises(VlanInfraError, match="an SSH host needs its pinned host_key"):
        hosts[("a", "h1")].connection()  # a typed program that skips the check


def test_a_target_that_cannot_be_right_is_a_vlaninfra_error_not_a_bare_value_error() -> None:
    """Providers turn `VlanInfraError` into a message (check failure, step error); a plain
    ValueError would reach the user as a traceback."""
    from vlaninfra.transport import TargetError
    with pytest.raises(TargetError) as err:
        SshTarget("203.0.113.9", host_key="SHA256:abc")
    assert isinstance(err.value, VlanInfraError) and isinstance(err.value, ValueError)


def _check(config: dict[str, Any], secret: set[str], key_config: str | None) -> list[str]:
    h1 = DockerHost("h1", "203.0.113.9", host_key="k", key_config=key_config)
    return program.check_secrets(
        {"sites.a.hosts[0].ssh": h1}, "prod",
        get=config.get, is_secret=lambda k: k in secret, all_keys=lambda: config,
    )


def test_a_secret_config_key_is_accepted() -> None:
    cfg = {"vlaninfra:sshPrivateKey": PEM}
    assert _check(cfg, {"vlaninfra:sshPrivateKey"}, "sshPrivateKey") == []


def test_a_config_key_that_is_not_secret_is_refused_with_the_command() -> None:
    (problem,) = _check({"vlaninfra:sshPrivateKey": PEM}, set(), "sshPrivateKey")
    assert problem.startswith("sites.a.hosts[0].ssh.private_key_config: the config key "
                              "vlaninfra:sshPrivateKey is not a secret")
    assert "`pulumi config set --secret vlaninfra:sshPrivateKey --stack prod < KEYFILE`" in problem
    assert "BEGIN" not in problem and "b3Blbn" not in problem


def test_an_unset_config_key_is_refused() -> None:
    (problem,) = _check({}, set(), "ops:key")
    assert "the config key ops:key is not set" in problem


def test_a_stray_plaintext_key_in_config_is_refused_even_when_no_host_uses_it() -> None:
    (problem,) = _check({"vlaninfra:oldKey": PEM, "vlaninfra:note": "x"}, set(), None)
    assert problem.startswith("config key vlaninfra:oldKey holds a private key but is not a secret")
    assert "pulumi config rm vlaninfra:oldKey --stack prod" in problem and "b3Blbn" not in problem


def test_config_key_names() -> None:
    assert config_key("sshPrivateKey") == "vlaninfra:sshPrivateKey"
    assert config_key("ops:key") == "ops:key"
