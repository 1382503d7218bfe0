"""The layout model: sites, hosts, LANs, networks, tenants and containers as typed,
validated data, the address ledger and the derived plan. Pure Python, no I/O.

Example::

    layout = load_config({"sites": {...}})
    for site in plan(layout).sites: ...
"""

from __future__ import annotations

from ._ledger import derive_mac
from ._load import config_schema, load_config
from ._model import (
    AddressRange,
    Container,
    Host,
    IPAddress,
    IPNetwork,
    IpvlanFlag,
    IpvlanMode,
    IpvlanNetwork,
    Lan,
    Layout,
    MacvlanMode,
    MacvlanNetwork,
    Network,
    Probe,
    ProbeExpect,
    RestartPolicy,
    Router,
    Shim,
    ShimRoutes,
    Site,
    SshTarget,
    Subnet,
    Tenant,
    TenantSubnet,
)
from ._plan import (
    ContainerPlan,
    HostPlan,
    HostRoute,
    NetworkPlan,
    Plan,
    ShimPlan,
    SitePlan,
    SubnetPlan,
    UpstreamRoute,
    VlanParentPlan,
    plan,
    validate,
)
from ._probes import ProbePlan
from ._render import render_plan

__all__ = [
    "AddressRange",
    "Container",
    "ContainerPlan",
    "Host",
    "HostPlan",
    "HostRoute",
    "IPAddress",
    "IPNetwork",
    "IpvlanFlag",
    "IpvlanMode",
    "IpvlanNetwork",
    "Lan",
    "Layout",
    "MacvlanMode",
    "MacvlanNetwork",
    "Network",
    "NetworkPlan",
    "Plan",
    "Probe",
    "ProbeExpect",
    "ProbePlan",
    "RestartPolicy",
    "Router",
    "Shim",
    "ShimPlan",
    "ShimRoutes",
    "Site",
    "SitePlan",
    "SshTarget",
    "Subnet",
    "SubnetPlan",
    "Tenant",
    "TenantSubnet",
    "UpstreamRoute",
    "VlanParentPlan",
    "config_schema",
    "derive_mac",
    "load_config",
    "plan",
    "render_plan",
    "validate",
]
