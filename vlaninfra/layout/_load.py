"""Stack config (the mapping under ``config:``, namespace removed) into the typed layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vlaninfra._hostkey import host_key_problem
from vlaninfra.errors import LayoutError, Problem
from vlaninfra.host.contract import IpvlanFlag, IpvlanMode, MacvlanMode, RestartPolicy

from ._model import (
    Container,
    Host,
    IpvlanNetwork,
    Lan,
    Layout,
    MacvlanNetwork,
    Router,
    Shim,
    Site,
    SshTarget,
    Subnet,
    Switch,
    Tenant,
    TenantSubnet,
)
from ._probes import PROBE
from ._spec import (
    MISSING,
    Address,
    Bool,
    Dict,
    Enum,
    F,
    Int,
    Json,
    List,
    Named,
    Obj,
    OneOf,
    Prefix,
    Range,
    Str,
    collect_defs,
)

__all__ = ["config_schema", "load_config"]


_SITE = Str(r"[A-Za-z0-9][A-Za-z0-9_-]*", "a site name: letters, digits, _ -")
_TEXT = Str()

_SSH = Obj("ssh", "How vlaninfra reaches the host over SSH.", (
    F("address", Str(r"[^\s@/]+", "a host name or IP address (the login user goes in user, "
                     "not as user@)"), "Host name or IP address to connect to.", required=True),
    F("port", Int(1, 65535), "SSH port (22)."),
    F("user", Str(r"[^\s@:]+", "a login name (no @ or :)"), "Login user (root)."),
    # Type, then base64: whole 4-character groups, the last one maybe padded; a comment may
    # follow (the schema's part). `host_key_problem` then wants a whole key of that type.
    F("host_key", Str(r"\s*[a-z][a-z0-9@.-]*\s+(?:[A-Za-z0-9+/]{4})*"
                      r"(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)(\s.*)?\s*",
                      "a host key: its type and base64, e.g. 'ssh-ed25519 AAAA...' (from "
                      "`ssh-keyscan -t ed25519 HOST`, without the host name in front)",
                      check=host_key_problem),
      "Expected host key, e.g. 'ssh-ed25519 AAAA...'."),
    F("private_key_file", _TEXT,
      "Private key file on the machine running Pulumi (absolute or ~/...); default: ssh-agent."),
    F("private_key_config", _TEXT,
      "Name of a secret Pulumi config key holding the private key, e.g. sshPrivateKey "
      "(stored encrypted in Pulumi state); default: ssh-agent."),
    F("sudo", Bool(), "Run the agent through sudo (false)."),
    F("docker_socket", _TEXT, "Docker socket path on the host (/var/run/docker.sock)."),
    F("python", _TEXT, "Python interpreter on the host (python3)."),
), SshTarget)

_SWITCH = Obj("switch", "What the switch port behind a parent allows (port security).", (
    F("mac_limit_per_port", Int(1, 1_000_000),
      "Most MACs the port accepts, e.g. 16 (switchport port-security maximum)."),
    F("promiscuous", Enum(("allowed", "denied")),
      "Whether the port accepts frames from several MACs (macvlan needs it)."),
), Switch)

_HOST = Obj("host", "A Docker host.", (
    F("name", _TEXT, "Host name, unique in the site.", required=True),
    F("ssh", _SSH, "SSH target; optional when the site says inventory: lab."),
    F("lan_address", Address(4), "The host's IPv4 address on the site LAN."),
    F("lan_address6", Address(6), "The host's IPv6 address on the site LAN."),
    F("parents", List(_TEXT, 1), "Parent NICs networks may use, e.g. [eth0]."),
    F("docker_version", _TEXT,
      "Docker daemon version, quoted, e.g. '20.10'; strict 20.10 rules when absent."),
    F("switch_per_parent", Dict(_TEXT, _SWITCH),
      "The switch port behind a parent, when it differs from the site's switch."),
), Host)

_LAN = Obj("lan", "The site LAN.", (
    F("subnet", Prefix(4), "IPv4 subnet of the LAN, e.g. 192.0.2.0/24.", required=True),
    F("gateway", Address(4), "The LAN's default gateway."),
    F("dhcp_pool", Range(), "Addresses a DHCP server hands out, first-last: never used."),
    F("subnet6", Prefix(6), "IPv6 prefix of the LAN."),
), Lan)

_ROUTER = Obj("router", "An upstream router of the site.", (
    F("name", _TEXT, "Router name.", required=True),
    F("address", Address(), "Router address on the LAN.", required=True),
    F("managed", Bool(), "Whether vlaninfra applies the upstream routes to it (false)."),
    F("ssh", _SSH, "SSH target of a managed router; optional when the site says inventory: lab."),
), Router)

_SUBNET = Obj("subnet", "One IPAM pool of a network.", (
    F("subnet", Prefix(), "Subnet in CIDR form.", required=True),
    F("gateway", Address(), "Gateway; Docker's default is the first address."),
    F("ip_range", Prefix(), "Range containers are allocated from, inside the subnet."),
    F("aux_addresses", Dict(_TEXT, Address()), "Addresses Docker must never hand out."),
), Subnet)

_SHIM = Obj("shim", "Host-side interface so each host reaches its own containers.", (
    F("address_per_host", Dict(_TEXT, Address(4)), "The shim's address on each host.",
      required=True),
    F("address6_per_host", Dict(_TEXT, Address(6)),
      "The shim's IPv6 address on each host (in an IPv6 subnet of the network)."),
    F("routes", Enum(("per-container", "ip-range")),
      "per-container: one /32 (/128) per container of the host; ip-range: the ip_ranges."),
    F("name", _TEXT, "Interface name (shim-<network>), at most 15 bytes."),
), Shim)

_NET_COMMON = (
    F("name", _TEXT, "Network name, unique in the site.", required=True),
    F("parent", _TEXT, "Parent interface, e.g. eth0 or eth0.50 (802.1Q).", required=True),
    F("hosts", List(_TEXT, 1), "Hosts the network exists on.", required=True),
    F("subnets", List(_SUBNET), "IPAM pools (IPv4 and/or IPv6)."),
    F("shim", _SHIM, "Host shim."),
    F("internal", Bool(), "No external connectivity (false)."),
    F("parent_per_host", Dict(_TEXT, _TEXT), "Hosts whose parent NIC has another name."),
)

_MACVLAN = Obj("macvlan_network", "A Docker macvlan network.", (
    F("driver", Enum(("macvlan",)), "macvlan.", required=True, attr="-"),
    *_NET_COMMON,
    F("mode", Enum.choice(MacvlanMode), "macvlan_mode (bridge)."),
), MacvlanNetwork)

_IPVLAN = Obj("ipvlan_network", "A Docker ipvlan network.", (
    F("driver", Enum(("ipvlan",)), "ipvlan.", required=True, attr="-"),
    *_NET_COMMON,
    F("mode", Enum.choice(IpvlanMode), "ipvlan_mode (l2)."),
    F("flag", Enum.choice(IpvlanFlag), "ipvlan_flag (bridge)."),
), IpvlanNetwork)

_TENANT_SUBNET = Obj("tenant_subnet", "A routed subnet of a tenant.", (
    F("subnet", Prefix(), "The routed prefix.", required=True),
    F("network", _TEXT, "The ipvlan l3/l3s network serving it (or a macvlan bridge network "
      "whose shim is its gateway).", required=True),
    F("host", _TEXT, "The host the router sends it to (needed if the network spans hosts)."),
), TenantSubnet)

_TENANT = Obj("tenant", "A tenant with routed L3 subnets.", (
    F("name", _TEXT, "Tenant name.", required=True),
    F("subnets", List(_TENANT_SUBNET, 1), "Its subnets.", required=True),
), Tenant)

_CONTAINER = Obj("container", "A container attached to one network.", (
    F("name", _TEXT, "Container name, unique on its host.", required=True),
    F("host", _TEXT, "Host it runs on.", required=True),
    F("network", _TEXT, "Network it attaches to.", required=True),
    F("image", _TEXT, "Image reference.", required=True),
    F("command", List(_TEXT), "Command and arguments, each a string."),
    F("ipv4", Address(4), "Fixed IPv4 address; allocated from the pool when absent."),
    F("ipv6", Address(6), "Fixed IPv6 address; allocated when the network has IPv6."),
    F("mac", _TEXT, "MAC address; derived (locally administered) when absent on macvlan."),
    F("tenant", _TEXT, "Tenant whose subnet to allocate from."),
    F("hostname", _TEXT, "Container hostname."),
    F("restart_policy", Enum.choice(RestartPolicy),
      "Restart policy (unless-stopped); quote 'no'."),
), Container)

_SITE_OBJ = Obj("site", "A site: LAN, routers, hosts, networks, tenants, containers.", (
    F("inventory", Enum(("lab",)), "lab: SSH targets come from the local lab at run time."),
    F("lan", _LAN, "The site LAN.", required=True),
    F("routers", List(_ROUTER), "Upstream routers."),
    F("hosts", List(_HOST, 1), "Docker hosts.", required=True),
    F("networks", List(OneOf("driver", {"macvlan": _MACVLAN, "ipvlan": _IPVLAN})),
      "macvlan and ipvlan networks."),
    F("tenants", List(_TENANT), "Tenants and their routed subnets."),
    F("containers", List(_CONTAINER), "Containers."),
    F("probes", List(PROBE), "Reachability checks verification runs besides its own."),
    F("switch", _SWITCH, "What the site's switch ports allow (port security)."),
), Site)

_SITES = Named(_SITE, _SITE_OBJ)


def load_config(data: Mapping[str, object], *, source: str = "<config>") -> Layout:
    """Reads a stack config (keys without the ``vlaninfra:`` prefix) into a Layout.

    Raises LayoutError listing every structural problem; other keys (secrets included) are
    left untouched. Example: ``load_config({"sites": {"paris": {...}}})``
    """
    out: list[Problem] = []
    if not isinstance(data, Mapping):
        out.append(Problem(source, data, "expected a mapping of config keys"))
        raise LayoutError(tuple(out))
    if "sites" not in data:
        out.append(Problem("sites", None, "required: vlaninfra:sites, a mapping of site names"))
        raise LayoutError(tuple(out))
    sites: Any = _SITES.parse(data["sites"], "sites", out)
    if out or sites is MISSING:
        raise LayoutError(tuple(out))
    return Layout(sites=sites)


def config_schema() -> Json:
    """The JSON Schema of a stack file, e.g. ``json.dumps(config_schema())``."""
    defs: dict[str, Json] = {}
    collect_defs(_SITE_OBJ, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://vlaninfra.invalid/schema/config.schema.json",
        "title": "vlaninfra stack config (stacks/Pulumi.<stack>.yaml)",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": {"vlaninfra:sites": {
                    **_SITES.schema(), "description": "Sites by name."}},
                "required": ["vlaninfra:sites"],
            },
        },
        "$defs": dict(sorted(defs.items())),
    }
