"""The vocabulary of the objects vlaninfra makes, spelled once: drivers, modes, flags, restart
policies, with their defaults and checks. The layout, the providers and the agent all use
these (stdlib only: it runs in the agent)."""

from __future__ import annotations

from enum import Enum

from ._codec import ContractError

__all__ = [
    "DEFAULT_MODE",
    "ROUTED",
    "Choice",
    "Driver",
    "IpvlanFlag",
    "IpvlanMode",
    "LinkMode",
    "MacvlanMode",
    "RestartPolicy",
    "check_link",
    "driver_of",
    "flag_of",
    "mode_of",
]


class Choice(str, Enum):
    """A string from a fixed set; prints as its value (``str(MacvlanMode.VEPA) == "vepa"``)."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def spelled(cls) -> str:
        """The choices as a sentence: ``"bridge, private, vepa, passthru"``."""
        return ", ".join(m.value for m in cls)


class Driver(Choice):
    """The Docker network driver (and the kind of a shim link)."""

    MACVLAN = "macvlan"
    IPVLAN = "ipvlan"


class MacvlanMode(Choice):
    """macvlan mode (README, "macvlan modes")."""

    BRIDGE = "bridge"
    PRIVATE = "private"
    VEPA = "vepa"
    PASSTHRU = "passthru"


class IpvlanMode(Choice):
    """ipvlan mode; l3 and l3s route (no ARP on the LAN)."""

    L2 = "l2"
    L3 = "l3"
    L3S = "l3s"


class IpvlanFlag(Choice):
    """ipvlan flag."""

    BRIDGE = "bridge"
    PRIVATE = "private"
    VEPA = "vepa"


class RestartPolicy(Choice):
    """A container's restart policy (Docker's names; ``on-failure`` may carry ``:N``)."""

    NO = "no"
    ALWAYS = "always"
    UNLESS_STOPPED = "unless-stopped"
    ON_FAILURE = "on-failure"


LinkMode = MacvlanMode | IpvlanMode
"""The mode of a macvlan or ipvlan link or network."""

ROUTED: frozenset[LinkMode] = frozenset({IpvlanMode.L3, IpvlanMode.L3S})
"""The modes that route (no ARP on the LAN for the containers' addresses)."""

DEFAULT_MODE: dict[Driver, LinkMode] = {Driver.MACVLAN: MacvlanMode.BRIDGE,
                                        Driver.IPVLAN: IpvlanMode.L2}


def _said(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def driver_of(value: object) -> Driver:
    """``value`` as a driver; ``ContractError`` (field ``driver``) otherwise."""
    try:
        return Driver(value)
    except ValueError:
        said = f"driver: {_said(value)!r} is not macvlan or ipvlan"
        raise ContractError(said, "driver") from None


def mode_of(driver: Driver, value: object) -> LinkMode:
    """``value`` as ``driver``'s mode, its default when empty; ``ContractError`` (field
    ``mode``) when it is not one of that driver's modes.

    Example: ``mode_of(Driver.IPVLAN, None)`` → ``IpvlanMode.L2``
    """
    if not value:
        return DEFAULT_MODE[driver]
    modes: type[Choice] = MacvlanMode if driver is Driver.MACVLAN else IpvlanMode
    try:
        mode = modes(value)
    except ValueError:
        said = f"mode: {_said(value)!r} is not one of {modes.spelled()}"
        raise ContractError(said, "mode") from None
    assert isinstance(mode, MacvlanMode | IpvlanMode)
    return mode


def flag_of(driver: Driver, value: object) -> IpvlanFlag | None:
    """``value`` as an ipvlan flag (None when empty: the kernel's default, bridge);
    ``ContractError`` (field ``flag``) when it is not one, or the driver is not ipvlan."""
    if not value:
        return None
    if driver is Driver.IPVLAN and value in IpvlanFlag._value2member_map_:
        return IpvlanFlag(value)
    raise ContractError(f"flag: {_said(value)!r} needs driver ipvlan and one of "
                        f"{IpvlanFlag.spelled()}", "flag")


def check_link(driver: object, mode: object, flag: object) -> None:
    """Check a macvlan/ipvlan link's or network's driver, mode and flag together (the mode
    and flag must be the driver's); ``ContractError`` naming the field otherwise."""
    kind = driver_of(driver)
    mode_of(kind, mode)
    flag_of(kind, flag)
