"""Containers with fixed addresses on a macvlan/ipvlan network: one container on one host."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Sequence
from typing import Literal

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult
from typing_extensions import TypedDict

from vlaninfra.errors import VlanInfraError
from vlaninfra.host.contract import (
    CONTAINER_CREATE,
    CONTAINER_INSPECT,
    CONTAINER_REMOVE,
    CONTAINER_START,
    CONTAINER_UPDATE,
    MAC,
    NETWORK_CONNECT,
    NETWORK_DISCONNECT,
    ContainerCreate,
    ContainerRef,
    ContainerSpec,
    ContainerState,
    ContainerUpdate,
    Named,
    NetworkConnect,
    NetworkDisconnect,
    RestartPolicy,
    run,
)
from vlaninfra.transport import Agent, checking
from vlaninfra.transport._runmemo import recall, remember

from ._args import AddressKey
from ._base import HostProvider, docker_clash
from ._host import (
    CONFIG_PATH,
    CONNECTION,
    UNKNOWN,
    Props,
    ProviderError,
    has_unknowns,
    host_label,
)

__all__ = [
    "ContainerInputs",
    "ContainerProvider",
    "Probe",
    "ProbeAnswer",
    "address_probe",
    "probe_addresses",
    "probe_ahead",
    "settle",
]

LAN_DEVICE = "lan_device"
"""Property: the host interface preview probes a new address from (ARP); None: no probe."""
ARP_BOUND = 3.0
"""Seconds the preview's ARP probe of one new address may take (it listens about 1 s)."""
ANSWER_AGE = 30.0
"""Seconds a probe answer serves the checks of this provider process (one engine phase checks
a network and then its containers within it). An answer found older is asked again together
with every other address of its network's probe that no check has taken yet: the engine
checks one resource at a time, so one probe per container would put a second of ARP/NDP
listening per container on the run's critical path."""

class Probe(TypedDict):
    """One ``probe.run`` check: nobody else on the LAN answers for ``address``."""

    kind: Literal["arp-unique", "ndp-unique"]
    device: str
    address: str | None
    own: list[str | None]


class ProbeAnswer(TypedDict, total=False):
    """The agent's answer to one `Probe`: ``ok``, or the MAC that ``answered_by``."""

    ok: bool
    answered_by: str | None


class ContainerInputs(TypedDict):
    """A container's inputs as `ContainerProvider.normalize` reads them from Pulumi's
    properties."""

    name: str | None
    image: str | None
    command: list[str] | None
    hostname: str | None
    labels: dict[str, str]
    network: str | None
    network_id: str | None
    ipv4: str | None
    ipv6: str | None
    mac: str | None
    restart_policy: str
    running: bool


_Key = tuple[str, str]
_answers: dict[_Key, tuple[float, ProbeAnswer]] = {}
_inflight: dict[_Key, threading.Event] = {}
"""Questions a :func:`probe_ahead` is asking now: set when its answers are in."""
_batches: dict[_Key, dict[_Key, Probe]] = {}
"""A question :func:`probe_ahead` asked → every question of that probe no check took yet."""
_answers_lock = threading.Lock()


def address_probe(key: str, device: str, address: object, mac: object) -> Probe:
    """The ``probe.run`` check that an address (``key`` ipv4 or ipv6) about to be given to a
    container with MAC ``mac`` is answered by no other LAN device on ``device``."""
    return {"kind": "arp-unique" if key == "ipv4" else "ndp-unique", "device": device,
            "address": _addr(address), "own": [_mac(mac)] if mac else []}


def _cache_key(props: Props, probe: Probe) -> _Key:
    return (json.dumps(props[CONNECTION], sort_keys=True), json.dumps(probe, sort_keys=True))


def probe_ahead(agent: Agent, props: Props, probes: Sequence[Probe]) -> None:
    """Starts :func:`probe_addresses` in the background and returns: the engine checks one
    resource at a time, so the next host's network check (its connect, its own probe) runs
    while this host listens for its second of ARP/NDP. A check needing one of these answers
    waits for it (:func:`probe_addresses`); a failure leaves each container to probe itself."""
    keys = [_cache_key(props, p) for p in probes]
    done = threading.Event()
    batch = dict(zip(keys, probes, strict=True))
    with _answers_lock:
        for k in keys:
            _inflight[k] = done
            _batches[k] = batch

    def run() -> None:
        try:
            with checking():
                _probe(agent, props, probes, keys)
        except VlanInfraError:
            pass  # the containers' checks probe on their own and say what failed
        finally:
            with _answers_lock:
                for k in keys:
                    if _inflight.get(k) is done:
                        del _inflight[k]
            done.set()

    threading.Thread(target=run, name="probe-ahead", daemon=True).start()


def settle(timeout: float = ARP_BOUND + 2) -> None:
    """Wait for the probes :func:`probe_ahead` started (tests)."""
    with _answers_lock:
        pending = set(_inflight.values())
    for done in pending:
        done.wait(timeout)


def probe_addresses(agent: Agent, props: Props, probes: Sequence[Probe]) -> list[ProbeAnswer]:
    """Answers ``probes`` on the host of ``props``: fresh answers (under ``ANSWER_AGE``) from
    this process's cache (after waiting for a probe of the same question under way), the
    others in ONE ``probe.run`` (the agent runs its checks in parallel: about 1 s whatever
    their number), kept for the checks that follow."""
    keys = [_cache_key(props, p) for p in probes]
    with _answers_lock:
        pending = {_inflight[k] for k in keys if k in _inflight}
    for done in pending:
        done.wait(ARP_BOUND + 2)
    answers = _probe(agent, props, probes, keys, widen=True)
    with _answers_lock:
        for k in keys:
            batch = _batches.pop(k, None)
            if batch is not None:
                batch.pop(k, None)
    return answers


def _probe(agent: Agent, props: Props, probes: Sequence[Probe], keys: list[_Key],
           widen: bool = False) -> list[ProbeAnswer]:
    """Answers for ``keys``: fresh ones from the cache or this run's memo, the others asked
    in one ``probe.run``, with (``widen``) the not yet taken questions of their batches."""
    now = time.monotonic()

    def fresh(k: _Key) -> bool:  # under _answers_lock
        return k in _answers and now - _answers[k][0] < ANSWER_AGE

    with _answers_lock:
        known = {k: _answers[k][1] for k in keys if fresh(k)}
    ask = [i for i, k in enumerate(keys) if k not in known]
    if ask:  # probed by the preview of this same `pulumi up` (never by another run)?
        known.update(recall("probe", [keys[i] for i in ask], ANSWER_AGE))
        ask = [i for i in ask if keys[i] not in known]
    if ask:
        questions = {keys[i]: probes[i] for i in ask}
        if widen:
            with _answers_lock:
                for k, p in [kp for key in list(questions) for kp in
                             _batches.get(key, {}).items()]:
                    if k not in known and not fresh(k):
                        questions.setdefault(k, p)
        answers: list[ProbeAnswer] = agent.call("probe.run", checks=list(questions.values()),
                                                timeout=ARP_BOUND)
        done = time.monotonic()
        judged: dict[tuple[str, ...], ProbeAnswer] = {}
        with _answers_lock:
            for k, answer in zip(questions, answers, strict=True):
                known[k] = answer
                if answer.get("ok") is True or answer.get("answered_by"):  # judged
                    _answers[k] = (done, answer)
                    judged[k] = answer
        remember("probe", judged)  # never an answer that judged nothing
    return [known[k] for k in keys]


def _addr(value: object) -> str | None:
    if value == UNKNOWN:  # known only once applied: compared as it is
        return UNKNOWN
    return str(ipaddress.ip_address(str(value).split("/")[0])) if value else None


def _mac(value: object) -> str | None:
    return str(value).lower() if value else None


def _is_address(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


class ContainerProvider(HostProvider):
    """Creates, reads, updates and removes one container attached to one network.

    What Docker can change on a live container is updated in place: the restart policy, the
    running state, and the network it is attached to (disconnect + connect, keeping the
    container). A new address or MAC on the same network, or a new image, command or hostname,
    replaces the container; so does the re-creation of its network (`network_id`).
    """

    KIND = "container"
    REPLACE_KEYS = frozenset(
        {"name", "image", "command", "hostname", "labels", "ipv4", "ipv6", "mac", "network_id"}
    )
    INPUT_KEYS = REPLACE_KEYS | {"network", "restart_policy", "running"}
    OUTPUT_KEYS = frozenset({"container_id", "ipv4_address", "mac_address"})
    # The network's id is not known at preview and is the same for a retried create: the
    # container is defined by what the user wrote, its network's name included (a leftover
    # on another network is not adopted).
    SPEC_KEYS = (REPLACE_KEYS - {"network_id"}) | {"network"}

    def normalize(self, props: Props) -> ContainerInputs:
        command = props.get("command")
        return ContainerInputs(
            name=props.get("name"),
            image=props.get("image"),
            command=list(command) if command else None,
            hostname=props.get("hostname") or None,
            labels=dict(sorted((props.get("labels") or {}).items())),
            network=props.get("network"),
            network_id=props.get("network_id"),
            ipv4=_addr(props.get("ipv4")),
            ipv6=_addr(props.get("ipv6")),
            mac=_mac(props.get("mac")),
            restart_policy=props.get("restart_policy") or RestartPolicy.UNLESS_STOPPED.value,
            running=props.get("running", True) is not False,
        )

    def _changed_keys(self, olds: Props, news: Props) -> list[str]:
        changed = super()._changed_keys(olds, news)
        if "network" in changed:
            # Moving to another network is a disconnect + connect: the new network's id and the
            # container's new address on it come with the move and are no reason to replace.
            changed = [k for k in changed if k not in ("network_id", "ipv4", "ipv6", "mac")] + [
                "move"
            ]
        return changed

    def validate(self, news: Props) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "container"
        failures = [
            CheckFailure(key, f"{where}.{key}: {value!r} is not an {kind} address")
            for key, kind, version in (("ipv4", "IPv4", 4), ("ipv6", "IPv6", 6))
            if isinstance(value := news.get(key), str) and value != UNKNOWN
            and not _is_address(value.split("/")[0], version)
        ]
        mac = news.get("mac")
        if isinstance(mac, str) and mac not in ("", UNKNOWN) and not MAC.fullmatch(mac):
            failures.append(CheckFailure("mac", f"{where}.mac: {mac!r} is not a MAC address "
                                                "(six hex pairs: 02:42:c0:00:02:82)"))
        policy = news.get("restart_policy") or RestartPolicy.UNLESS_STOPPED.value
        if policy not in RestartPolicy._value2member_map_:
            failures.append(CheckFailure("restart_policy", f"{where}.restart_policy: {policy!r} "
                                                           f"is not one of "
                                                           f"{RestartPolicy.spelled()}"))
        return failures

    def validate_on_host(self, agent: Agent, news: Props) -> list[CheckFailure]:
        if agent.call("docker.image.exists", name=news["image"]):
            return []
        where = news.get(CONFIG_PATH) or "container"
        return [
            CheckFailure(
                "image",
                f"{where}.image: image {news['image']!r} is not on host {news.get('host')}; "
                "vlaninfra never pulls: load it onto the host first, or name one that is there",
            )
        ]

    def check(self, olds: Props, news: Props) -> CheckResult:
        result = super().check(olds, news)
        if not result.failures:
            result.failures = self._address_taken(olds, news)
        return result

    def _address_taken(self, olds: Props, news: Props) -> list[CheckFailure]:
        """An address about to be assigned (new container, or a new address) that another
        LAN device already answers for, by one ARP (IPv4) or NDP (IPv6) probe from the host
        (the verification's ``arp-unique``/``ndp-unique``, bounded by ``ARP_BOUND``)."""
        device = news.get(LAN_DEVICE)
        if not device or has_unknowns(news.get(CONNECTION)):
            return []
        keys: tuple[AddressKey, ...] = ("ipv4", "ipv6")
        probes = {key: address_probe(key, device, news[key], news.get("mac"))
                  for key in keys
                  if news.get(key) and not has_unknowns(news[key])
                  and not (olds and _addr(olds.get(key)) == _addr(news[key]))}
        if not probes:
            return []
        try:
            # Usually answered from the probe its network's check made for all its new
            # addresses at once (NetworkProvider.check); else probed here.
            answers = probe_addresses(self.agent(news), news, list(probes.values()))
        except VlanInfraError as err:
            return [CheckFailure(next(iter(probes)), f"host {host_label(news)}: {err}")]
        where = news.get(CONFIG_PATH) or "container"
        return [CheckFailure(key, (
            f"{where}.{key}: container {news.get('name')!r} would get {probe['address']} on "
            f"host {host_label(news)}, but that address already answers on the LAN from MAC "
            f"{answer['answered_by']} ({'ARP' if key == 'ipv4' else 'NDP'} probe on {device}): "
            "another device holds it; free it there, or give the container another address"))
            for (key, probe), answer in zip(probes.items(), answers, strict=True)
            # Free, or not judged (a VLAN parent made later): verification checks.
            if answer.get("answered_by")]

    def clash(self, agent: Agent, news: Props) -> str | None:
        found = run(agent, CONTAINER_INSPECT, Named(news["name"]))
        return docker_clash(self.KIND, found.labels if found else None, news,
                            self.owner(news))

    def _outs(self, props: Props, found: ContainerState) -> Props:
        attached = found.networks.get(props["network"])
        return {
            **props,
            "container_id": found.id,
            "ipv4_address": attached.ipv4 if attached else None,
            "mac_address": attached.mac if attached else None,
        }

    def create(self, props: Props) -> CreateResult:
        n = self.normalize(props)
        with self.failing(props, "create"):
            found = run(self.agent(props), CONTAINER_CREATE, ContainerCreate(ContainerSpec(
                name=str(n["name"]), image=str(n["image"]),
                command=tuple(n["command"]) if n["command"] is not None else None,
                network=n["network"], ipv4=n["ipv4"], ipv6=n["ipv6"], mac=n["mac"],
                restart_policy=n["restart_policy"], labels=n["labels"],
                hostname=n["hostname"]), self.mark(props)))
        return CreateResult(id_=found.id, outs=self._outs(props, found))

    def read(self, id_: str, props: Props) -> ReadResult:
        found = self.read_op(props, CONTAINER_INSPECT, Named(props["name"]))
        if found is None:
            return ReadResult(id_="", outs={})
        networks = found.networks
        network = props["network"] if props["network"] in networks else next(iter(networks), None)
        attached = networks.get(network) if network is not None else None
        wanted_labels = props.get("labels") or {}
        actual = self.as_found(props, {
            "name": found.name,
            "image": found.image,
            # Without a command of our own the image's default runs: not drift.
            "command": found.command if props.get("command") else None,
            "hostname": found.hostname if props.get("hostname") else None,
            # Images add labels of their own: only the ones vlaninfra set are compared.
            "labels": {k: v for k, v in found.labels.items() if k in wanted_labels},
            "network": network,
            "network_id": props.get("network_id") if network == props["network"] else None,
            "ipv4": attached.ipv4 if attached else None,
            "ipv6": attached.ipv6 if attached else None,
            "mac": attached.mac if attached else None,
            "restart_policy": found.restart_policy,
            "running": found.running,
        })
        return self.read_result(found.id, props, self._outs(actual, found))

    def update(self, _id: str, olds: Props, news: Props) -> UpdateResult:
        old, new = self.normalize(olds), self.normalize(news)
        agent = self.agent(news)
        name = str(new["name"])
        owner, id_ = self.owner(news), olds.get("container_id")
        with self.failing(news, "update"):
            if old["network"] != new["network"]:
                if old["network"]:
                    run(agent, NETWORK_DISCONNECT, NetworkDisconnect(
                        old["network"], name, owner=owner, id=id_))
                run(agent, NETWORK_CONNECT, NetworkConnect(
                    str(new["network"]), name, new["ipv4"], new["ipv6"], new["mac"], owner, id_))
            if old["restart_policy"] != new["restart_policy"]:
                run(agent, CONTAINER_UPDATE, ContainerUpdate(
                    name, new["restart_policy"], owner, id_))
            if new["running"] and not old["running"]:
                run(agent, CONTAINER_START, ContainerRef(name, owner, id_))
            found = run(agent, CONTAINER_INSPECT, Named(name))
        if found is None:
            raise self.fail(news, "update", ProviderError(f"container {name!r} vanished"))
        return UpdateResult(outs=self._outs(news, found))

    def delete(self, _id: str, props: Props) -> None:
        self.remove(props, CONTAINER_REMOVE, ContainerRef(
            props["name"], self.owner(props), props.get("container_id")))
