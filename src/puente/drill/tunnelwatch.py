"""The VPN's tunnels during a drill: their state and which one carried the traffic, before, during and
after the fault.

``TunnelSampler`` reads strongSwan's SAs once a second inside a site's gateway (``swanctl --list-sas``
through ``podman exec``: it works while the WAN is cut). Each sample holds every tunnel's state (an IKE SA
ESTABLISHED with a CHILD_SA INSTALLED: ``puente.lab.tunnels.up``) and its CHILD_SAs' byte counters. The
counters are the SAs', not a device's: the TUN device ``ipsec0`` carries every tunnel and cannot tell
them apart.

A CHILD_SA's counters start at 0 when it is made (a rekey, a restart after dead peer detection), so the
bytes a tunnel carried between two samples are the growth of each CHILD_SA seen in both plus the whole
count of one seen for the first time. Bytes of a CHILD_SA made and deleted between two samples are not
seen. The figures (``carried``, ``summary``) and the checks (``verdict``) are pure, samples in, and
unit-tested; ``TunnelWatch`` is what a drill runs (``FaultWatch`` of ``puente.drill.scenarios``).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from puente.lab import tunnels

# swanctl --list-sas (5.9): a CHILD_SA line, then its counters, e.g.
#   tunnel1: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
#     in  fd4e5651,   1532 bytes,     9 packets,     2s ago
#     out b00f2f7e,   1180 bytes,     9 packets,     2s ago
_IKE = re.compile(r"^(?P<name>[\w.-]+): #\d+, ")
_CHILD = re.compile(r"^\s+(?P<name>[\w.-]+): #(?P<id>\d+), reqid \d+, ")
_BYTES = re.compile(r"^\s+(?P<dir>in|out)\s+\S+,\s+(?P<bytes>\d+) bytes")


@dataclass(frozen=True)
class Sample:
    t: float
    up: dict[str, bool]
    """tunnel -> an IKE SA established and a CHILD_SA installed."""
    children: dict[str, dict[str, tuple[int, int]]]
    """tunnel -> {CHILD_SA unique id: (bytes in, bytes out)}."""


def parse(text: str, t: float) -> Sample:
    states = tunnels.parse(text)
    children: dict[str, dict[str, tuple[int, int]]] = {name: {} for name in states}
    ike: str | None = None
    child: str | None = None
    for line in text.splitlines():
        if m := _IKE.match(line):
            ike, child = m["name"], None
        elif (m := _CHILD.match(line)) and ike is not None:
            child = m["id"]
            children.setdefault(ike, {})[child] = (0, 0)
        elif (m := _BYTES.match(line)) and ike is not None and child is not None:
            b_in, b_out = children[ike][child]
            n = int(m["bytes"])
            children[ike][child] = (n, b_out) if m["dir"] == "in" else (b_in, n)
    return Sample(t, {name: tunnels.up(s) for name, s in states.items()}, children)


def _growth(before: dict[str, tuple[int, int]], now: dict[str, tuple[int, int]]) -> tuple[int, int]:
    got_in = got_out = 0
    for cid, (b_in, b_out) in now.items():
        p_in, p_out = before.get(cid, (0, 0))
        # a counter that went down is a new SA under a reused id: all of it is new
        got_in += b_in - p_in if b_in >= p_in else b_in
        got_out += b_out - p_out if b_out >= p_out else b_out
    return got_in, got_out


def steps(samples: Sequence[Sample], name: str) -> list[tuple[float, float, int, int]]:
    """(t of the sample before, t, bytes in, bytes out) that ``name`` carried between two samples."""
    return [
        (a.t, b.t, *_growth(a.children.get(name, {}), b.children.get(name, {})))
        for a, b in itertools.pairwise(samples)
    ]


def carried(samples: Sequence[Sample], names: Sequence[str], start: float, end: float) -> dict[str, Any]:
    """Bytes each tunnel carried between samples taken within [start, end] (a step across ``start`` or
    ``end`` counts in neither window), and the carrier each way: ``carrier_out``, the tunnel the gateway
    sent by (its own policies choose), ``carrier_in``, the one the other end sent by (bytes that arrived:
    the path works). The carrier is the tunnel with the most bytes; None when there were none."""
    out: dict[str, Any] = {}
    for name in names:
        got = [(i, o) for t0, t, i, o in steps(samples, name) if start <= t0 and t <= end]
        out[name] = {"bytes_in": sum(i for i, _ in got), "bytes_out": sum(o for _, o in got)}
    for way in ("in", "out"):
        busiest = max(names, key=lambda n: out[n][f"bytes_{way}"], default=None)
        ok = busiest is not None and out[busiest][f"bytes_{way}"] > 0
        out[f"carrier_{way}"] = busiest if ok else None
    return out


def arrivals(samples: Sequence[Sample], name: str, start: float, end: float) -> list[list[float | int]]:
    """``[t before, t, bytes in]`` of each step within [start, end] in which ``name`` received bytes: when
    a cut tunnel was not silent, the report says when (a late count right after the cut, or a leak)."""
    return [
        [round(t0, 2), round(t, 2), i]
        for t0, t, i, _ in steps(samples, name)
        if start <= t0 and t <= end and i
    ]


def first(samples: Sequence[Sample], after: float, test: Callable[[Sample], bool]) -> float | None:
    """Time of the first sample at or after ``after`` that passes ``test``."""
    return next((s.t for s in samples if s.t >= after and test(s)), None)


def first_carrying(samples: Sequence[Sample], name: str, after: float, way: str = "in") -> float | None:
    """Time of the first sample after ``after`` by which ``name`` carried bytes ``way`` (in or out)."""
    index = 2 if way == "in" else 3
    return next((step[1] for step in steps(samples, name) if step[1] > after and step[index] > 0), None)


def _is_up(name: str) -> Callable[[Sample], bool]:
    return lambda s: s.up.get(name, False)


def _is_down(name: str) -> Callable[[Sample], bool]:
    return lambda s: not s.up.get(name, False)


def summary(
    samples: Sequence[Sample], names: Sequence[str], fault_at: float, restore_at: float, ended_at: float
) -> dict[str, Any]:
    """The report's ``tunnels`` section (drill seconds): bytes per window and tunnel, when each tunnel
    went down after the fault and was up again after the restore, and when each carried traffic (each
    way) after the fault and after the restore."""

    def since(t: float | None, ref: float) -> float | None:
        return None if t is None else round(t - ref, 2)

    def all_up(s: Sample) -> bool:
        return all(s.up.get(n, False) for n in names)

    def carrying(ref: float) -> dict[str, dict[str, float | None]]:
        return {
            n: {way: since(first_carrying(samples, n, ref, way), ref) for way in ("in", "out")} for n in names
        }

    return {
        "samples": len(samples),
        "up_before_fault": [n for n in names if any(s.up.get(n) for s in samples if s.t < fault_at)],
        "windows": {
            "before": carried(samples, names, float("-inf"), fault_at),
            "during": carried(samples, names, fault_at, restore_at),
            "after": carried(samples, names, restore_at, ended_at),
        },
        "down_after_fault": {n: since(first(samples, fault_at, _is_down(n)), fault_at) for n in names},
        "carrying_after_fault": carrying(fault_at),
        "up_after_restore": {n: since(first(samples, restore_at, _is_up(n)), restore_at) for n in names},
        "all_up_after_restore": since(first(samples, restore_at, all_up), restore_at),
        "carrying_after_restore": carrying(restore_at),
    }


def probe(node: str, t: float) -> Sample | None:
    """One sample from ``node`` (None when swanctl could not be asked)."""
    text = tunnels.list_sas(node, timeout=10)
    return None if text is None else parse(text, t)


class TunnelSampler:
    """Samples ``node``'s SAs about once a second in the background (monotonic clock, like the drill's)."""

    def __init__(self, node: str, interval: float = 1.0) -> None:
        self.node = node
        self.interval = interval
        self.samples: list[Sample] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-tunnel-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            sample = probe(self.node, time.monotonic())
            if sample is None:
                self.failed += 1
            else:
                self.samples.append(sample)
            self._stop.wait(self.interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


# Bytes counted in the first seconds after the fault may be the last ones from before it (a loaded
# gateway's user-space ESP was seen counting packets up to ~2 s late): the fault's effect is judged from
# samples taken this long after it.
SLACK_SECONDS = 2.0
# How long the spared tunnel must have carried traffic before a drill lifts the fault.
CARRY_SECONDS = 5.0


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"name": name, "ok": bool(ok), "detail": detail}


def _secs(v: float | None, what: str) -> str:
    return f"never ({what})" if v is None else f"{v:.1f} s"


def verdict(section: dict[str, Any], cut: Sequence[str], spared: Sequence[str]) -> list[dict[str, Any]]:
    """The checks of a tunnel fault, from its ``summary``: the ``cut`` tunnels carried nothing in during
    the fault; with nothing ``spared`` (a site cut) they were all up again after the restore; else the
    first spared one took the traffic both ways, and the first cut one (the preferred) took back what the
    gateway sends (its own policies; which tunnel the other end sends by is its choice, reported)."""
    names = [*cut, *spared]
    checks = [
        _check(
            "tunnels_up_before_the_fault",
            set(names) <= set(section["up_before_fault"]),
            f"up before the fault: {', '.join(section['up_before_fault']) or 'none'} "
            f"(expected {', '.join(names)})",
        )
    ]
    during = section["windows"]["during_settled"]
    silent = {n: during[n]["bytes_in"] for n in cut}
    when = {n: during[n].get("arrivals", []) for n in cut}
    checks.append(
        _check(
            "cut_tunnels_carried_nothing",
            not any(silent.values()),
            f"bytes in during the fault (from +{SLACK_SECONDS:g} s): "
            + ", ".join(f"{n} {b}" for n, b in silent.items())
            + "".join(
                f"; {n} received between t={a[0]:g} and {a[1]:g} s: {a[2]} B"
                for n in cut
                for a in when[n][:5]
            ),
        )
    )
    if not spared:
        back = section["all_up_after_restore"]
        checks.append(
            _check(
                "tunnels_back_after_the_restore",
                back is not None,
                f"all of {', '.join(names)} ESTABLISHED/INSTALLED {_secs(back, 'not within the wait')} "
                "after the restore",
            )
        )
        return checks
    preferred, spare = cut[0], spared[0]
    before = section["windows"]["before"]
    checks.append(
        _check(
            "cut_tunnel_carried_before",
            before["carrier_out"] == preferred,
            f"{preferred} was cut; before the fault the gateway sent by {before['carrier_out']}, "
            f"received by {before['carrier_in']}",
        )
    )
    moved = section["carrying_after_fault"][spare]
    switched = section["windows"]["after_switch"]
    checks.append(
        _check(
            "traffic_moved_to_the_other_tunnel",
            switched["carrier_out"] == spare and switched["carrier_in"] == spare,
            f"{spare} sent {_secs(moved['out'], 'nothing')} and received {_secs(moved['in'], 'nothing')} "
            f"after the fault; from then to the restore the gateway sent by {switched['carrier_out']}, "
            f"received by {switched['carrier_in']}",
        )
    )
    again = section["carrying_after_restore"][preferred]
    last = section["windows"]["after_back"]
    checks.append(
        _check(
            "cut_tunnel_back_and_carrying",
            again["out"] is not None and last["carrier_out"] == preferred,
            f"{preferred} up {_secs(section['up_after_restore'][preferred], 'not within the wait')} and "
            f"sending {_secs(again['out'], 'nothing')} after the restore; from then on the gateway sent by "
            f"{last['carrier_out']}, received by {last['carrier_in']}",
        )
    )
    return checks


def carrier(node: str, names: Sequence[str], seconds: float = 3.0) -> str | None:
    """The tunnel ``node`` sends the traffic by now (two samples ``seconds`` apart; the sites always talk:
    replication, etcd, scrapes), None when nothing was sent or swanctl did not answer."""
    first_sample = probe(node, time.monotonic())
    time.sleep(seconds)
    second = probe(node, time.monotonic())
    if first_sample is None or second is None:
        return None
    return carried([first_sample, second], names, float("-inf"), float("inf"))["carrier_out"]


class TunnelWatch:
    """What a drill watches when its fault takes tunnels down: the gateway's SAs, sampled throughout
    (``FaultWatch`` of ``puente.drill.scenarios``)."""

    def __init__(self, node: str, cut: Sequence[str], spared: Sequence[str] = ()) -> None:
        self.node = node
        self.cut = list(cut)
        self.spared = list(spared)
        self.sampler = TunnelSampler(node)

    @property
    def names(self) -> list[str]:
        return [*self.cut, *self.spared]

    def start(self) -> None:
        self.sampler.start()

    def stop(self) -> None:
        self.sampler.stop()

    def may_lift(self, fault_at: float) -> bool:
        """A fault that spares a tunnel lasts until that tunnel has carried the traffic a while."""
        if not self.spared:
            return True
        samples = list(self.sampler.samples)
        after = fault_at + SLACK_SECONDS
        moved = [first_carrying(samples, self.spared[0], after, way) for way in ("in", "out")]
        return all(t is not None and samples[-1].t - t >= CARRY_SECONDS for t in moved)

    def recovered(self, restore_at: float) -> bool:
        """Every tunnel up again, and the preferred one carrying the traffic (when one was spared)."""
        samples = [s for s in self.sampler.samples if s.t >= restore_at]
        if not samples or not all(samples[-1].up.get(n, False) for n in self.names):
            return False
        return not self.spared or first_carrying(samples, self.cut[0], restore_at, "out") is not None

    def findings(
        self, t0: float, fault_at: float, restore_at: float, ended_at: float
    ) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        samples = [Sample(s.t - t0, s.up, s.children) for s in self.sampler.samples]
        section = summary(samples, self.names, fault_at, restore_at, ended_at)
        section["windows"]["during_settled"] = carried(
            samples, self.names, fault_at + SLACK_SECONDS, restore_at
        )
        for name in self.cut:
            section["windows"]["during_settled"][name]["arrivals"] = arrivals(
                samples, name, fault_at + SLACK_SECONDS, restore_at
            )
        if self.spared:
            moved = section["carrying_after_fault"][self.spared[0]]
            switch_at = (
                fault_at + max(moved["in"], moved["out"]) if None not in moved.values() else restore_at
            )
            section["windows"]["after_switch"] = carried(samples, self.names, switch_at, restore_at)
        again = section["carrying_after_restore"][self.cut[0]]["out"]
        back_at = restore_at + again if again is not None else ended_at
        section["windows"]["after_back"] = carried(samples, self.names, back_at, ended_at)
        section.update(node=self.node, cut=self.cut, spared=self.spared, failed_probes=self.sampler.failed)
        section["states"] = [
            {"t": round(s.t, 2), "up": sorted(n for n, u in s.up.items() if u)} for s in samples
        ]
        return "tunnels", section, verdict(section, self.cut, self.spared)
