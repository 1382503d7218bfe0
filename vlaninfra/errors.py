"""The one root of every vlaninfra exception."""


class VlanInfraError(Exception):
    """Base class of every error vlaninfra raises."""
