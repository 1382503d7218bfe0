"""`vlaninfra._env`: the one parser of seconds settings."""

from __future__ import annotations

import pytest

from vlaninfra._env import SettingError, env_seconds
from vlaninfra.errors import VlanInfraError


def test_env_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_SECS", raising=False)
    assert env_seconds("X_SECS", 30.0) == 30.0
    monkeypatch.setenv("X_SECS", "")
    assert env_seconds("X_SECS", 30.0) == 30.0
    monkeypatch.setenv("X_SECS", "7.5")
    assert env_seconds("X_SECS", 30.0) == 7.5
    monkeypatch.setenv("X_SECS", "0")
    assert env_seconds("X_SECS", 30.0, zero=True) == 0
    for bad, kw in (("0", {}), ("never", {}), ("-1", {"zero": True}), ("4000", {}),
                    ("nan", {})):
        monkeypatch.setenv("X_SECS", bad)
        with pytest.raises(SettingError, match="X_SECS=") as err:
            env_seconds("X_SECS", 30.0, **kw)
        assert isinstance(err.value, VlanInfraError) and isinstance(err.value, ValueError)
    monkeypatch.setenv("X_SECS", "86400")
    assert env_seconds("X_SECS", 600.0, most=86400, zero=True) == 86400
