"""Which tunnel carried the traffic: strongSwan's SAs parsed as the drill samples them, and the figures
and checks of a tunnel fault computed from synthetic samples (no lab)."""

from __future__ import annotations

from typing import Any

from puente.drill import tunnelwatch
from puente.drill.tunnelwatch import Sample

# What swanctl 5.9.8 printed on the lab's onprem-vpn1 (2026-12-05, WAN 10.89.250.0/24): tunnel1 twice (both
# ends initiated at once, before AWS's end stopped initiating: roles/vpn/README.md), its first CHILD_SA
# sending, tunnel2 receiving.
LIST_SAS = """\
tunnel2: #4, ESTABLISHED, IKEv2, 34f7f4f510c547c5_i 15080d35fc5e5983_r*
  local  '10.89.250.10' @ 10.89.250.10[4500]
  remote '10.89.250.251' @ 10.89.250.251[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384
  established 285s ago, rekeying in 27718s
  tunnel2: #3, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 285s ago, rekeying in 2678s, expires in 3315s
    in  7165bd55, 211260533 bytes, 163743 packets,     0s ago
    out 2d660788,      0 bytes,     0 packets
    local  10.89.1.0/24
    remote 10.89.2.0/24
tunnel1: #3, ESTABLISHED, IKEv2, bdf3a290a4430bca_i e91ed019b808d757_r*
  local  '10.89.250.10' @ 10.89.250.10[4500]
  remote '10.89.250.250' @ 10.89.250.250[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384
  established 285s ago, rekeying in 27504s
  tunnel1: #2, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 285s ago, rekeying in 2272s, expires in 3315s
    in  0993440c,      0 bytes,     0 packets
    out 0250397c,      0 bytes,     0 packets
    local  10.89.1.0/24
    remote 10.89.2.0/24
tunnel1: #1, ESTABLISHED, IKEv2, 9b543fce82f28ff5_i* e80bac518b696fc2_r
  local  '10.89.250.10' @ 10.89.250.10[4500]
  remote '10.89.250.250' @ 10.89.250.250[4500]
  AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_384
  established 285s ago, rekeying in 27458s
  tunnel1: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-256
    installed 285s ago, rekeying in 2392s, expires in 3315s
    in  311f5770,      0 bytes,     0 packets
    out 6722414a, 6387156 bytes, 54589 packets,     0s ago
    local  10.89.1.0/24
    remote 10.89.2.0/24
"""


def test_parse_reads_each_child_sa_counters_under_its_tunnel():
    s = tunnelwatch.parse(LIST_SAS, 7.0)
    assert s.t == 7.0
    assert s.up == {"tunnel1": True, "tunnel2": True}
    assert s.children == {
        "tunnel2": {"3": (211260533, 0)},
        "tunnel1": {"2": (0, 0), "1": (0, 6387156)},
    }


def test_parse_of_a_tunnel_still_connecting():
    text = (
        "tunnel1: #5, CONNECTING, IKEv2, 3d5ab5340d28979c_i*\n  local  '10.89.250.10' @ 10.89.250.10[500]\n"
    )
    s = tunnelwatch.parse(text + LIST_SAS.split("tunnel1: #3")[0], 1.0)
    assert s.up == {"tunnel1": False, "tunnel2": True}
    assert s.children["tunnel1"] == {}
    assert tunnelwatch.parse("", 0).up == {}


def sample(t: float, t1: tuple[int, int] | None, t2: tuple[int, int] | None, child1: str = "1") -> Sample:
    """tunnel1's CHILD_SA ``child1`` and tunnel2's "9" with (bytes in, bytes out); None: no SA."""
    up = {"tunnel1": t1 is not None, "tunnel2": t2 is not None}
    children: dict[str, dict[str, tuple[int, int]]] = {"tunnel1": {}, "tunnel2": {}}
    if t1 is not None:
        children["tunnel1"][child1] = t1
    if t2 is not None:
        children["tunnel2"]["9"] = t2
    return Sample(t, up, children)


NAMES = ["tunnel1", "tunnel2"]


def failover_run() -> list[Sample]:
    """Fault at 10, restore at 30: tunnel1 carries both ways, goes silent, is declared dead at 16 (its
    SA gone); tunnel2 carries from 17; tunnel1's new CHILD_SA ("2", counters from 0) is up at 33 and
    carries again from 34."""
    s: list[Sample] = []
    b = 0
    for t in range(0, 11):  # tunnel1 busy
        b = t * 1000
        s.append(sample(t, (b, b), (0, 0)))
    for t in range(11, 16):  # cut: the gateway still sends into it, nothing comes back
        s.append(sample(t, (b, b + (t - 10) * 500), (0, 0)))
    s.append(sample(16, None, (0, 0)))
    for t in range(17, 33):
        s.append(sample(t, None, ((t - 16) * 800, (t - 16) * 800)))
    t2 = (16 * 800, 16 * 800)
    s.append(sample(33, (0, 0), t2, child1="2"))
    for t in range(34, 41):
        s.append(sample(t, ((t - 33) * 900, (t - 33) * 900), t2, child1="2"))
    return s


def test_bytes_per_window_follow_the_traffic_across_new_child_sas():
    s = failover_run()
    before = tunnelwatch.carried(s, NAMES, float("-inf"), 10)
    assert before["tunnel1"] == {"bytes_in": 10000, "bytes_out": 10000}
    assert before["tunnel2"] == {"bytes_in": 0, "bytes_out": 0}
    assert (before["carrier_in"], before["carrier_out"]) == ("tunnel1", "tunnel1")
    # during: the gateway sent 2,500 bytes into the dead tunnel, received nothing through it
    during = tunnelwatch.carried(s, NAMES, 10, 30)
    assert during["tunnel1"] == {"bytes_in": 0, "bytes_out": 2500}
    assert during["tunnel2"]["bytes_in"] == 14 * 800
    assert during["carrier_in"] == "tunnel2"
    # after: tunnel1's new CHILD_SA counts from 0, all of it is new
    after = tunnelwatch.carried(s, NAMES, 30, 40)
    assert after["tunnel1"] == {"bytes_in": 7 * 900, "bytes_out": 7 * 900}
    assert after["tunnel2"] == {"bytes_in": 2 * 800, "bytes_out": 2 * 800}
    assert tunnelwatch.carried(s, NAMES, 100, 200)["carrier_out"] is None
    # a window's edge between two samples: the step across it counts in neither window
    assert tunnelwatch.carried(s, NAMES, 9.5, 10)["tunnel1"] == {"bytes_in": 0, "bytes_out": 0}
    assert tunnelwatch.carried(s, NAMES, 10, 11.5)["tunnel1"]["bytes_out"] == 500


def test_summary_times_the_switch_and_the_return():
    section = tunnelwatch.summary(failover_run(), NAMES, 10, 30, 40)
    assert section["up_before_fault"] == NAMES
    assert section["down_after_fault"] == {"tunnel1": 6.0, "tunnel2": None}
    assert section["carrying_after_fault"]["tunnel2"] == {"in": 7.0, "out": 7.0}
    assert section["up_after_restore"] == {"tunnel1": 3.0, "tunnel2": 0.0}
    assert section["all_up_after_restore"] == 3.0
    assert section["carrying_after_restore"]["tunnel1"] == {"in": 4.0, "out": 4.0}


class Watch(tunnelwatch.TunnelWatch):
    """The drill's watch over samples given by the test (no sampler thread, no podman)."""

    def __init__(self, samples: list[Sample], cut: list[str], spared: list[str]) -> None:
        super().__init__("onprem-vpn1", cut, spared)
        self.sampler.samples = samples


def checks_of(
    watch: tunnelwatch.TunnelWatch, fault_at: float, restore_at: float, end: float
) -> dict[str, Any]:
    key, section, checks = watch.findings(0.0, fault_at, restore_at, end)
    assert key == "tunnels"
    return {c["name"]: c for c in checks} | {"section": section}


def test_a_tunnel_failover_that_moved_and_came_back_passes():
    got = checks_of(Watch(failover_run(), ["tunnel1"], ["tunnel2"]), 10, 30, 40)
    section = got.pop("section")
    assert all(c["ok"] for c in got.values()), got
    assert set(got) == {
        "tunnels_up_before_the_fault",
        "cut_tunnels_carried_nothing",
        "cut_tunnel_carried_before",
        "traffic_moved_to_the_other_tunnel",
        "cut_tunnel_back_and_carrying",
    }
    assert section["windows"]["after_switch"]["carrier_out"] == "tunnel2"
    assert section["windows"]["after_back"]["carrier_out"] == "tunnel1"
    assert (
        "sent 7.0 s and received 7.0 s after the fault" in got["traffic_moved_to_the_other_tunnel"]["detail"]
    )


def test_a_preferred_tunnel_that_never_came_back_fails():
    run = [s for s in failover_run() if s.t <= 32]
    run += [sample(t, None, (t * 800, t * 800)) for t in range(33, 41)]
    got = checks_of(Watch(run, ["tunnel1"], ["tunnel2"]), 10, 30, 40)
    assert not got["cut_tunnel_back_and_carrying"]["ok"]
    assert "never (nothing)" in got["cut_tunnel_back_and_carrying"]["detail"]


def test_traffic_that_never_moved_and_a_cut_that_let_bytes_through_fail():
    # tunnel1 keeps receiving during the "cut" (the fault did not act) and tunnel2 never carries
    run = [sample(t, (t * 1000, t * 1000), (0, 0)) for t in range(0, 41)]
    got = checks_of(Watch(run, ["tunnel1"], ["tunnel2"]), 10, 30, 40)
    assert not got["cut_tunnels_carried_nothing"]["ok"]
    # the report says when the bytes came: each step of the settled window (from +2 s), first five named
    arrived = got["section"]["windows"]["during_settled"]["tunnel1"]["arrivals"]
    assert arrived[0] == [12, 13, 1000] and len(arrived) == 18
    assert "tunnel1 received between t=12 and 13 s: 1000 B" in got["cut_tunnels_carried_nothing"]["detail"]
    assert not got["traffic_moved_to_the_other_tunnel"]["ok"]
    assert got["cut_tunnel_carried_before"]["ok"]


def test_a_site_cut_checks_both_tunnels_silent_and_back():
    run = [sample(t, (t * 10, t * 10), (t * 10, 0)) for t in range(0, 11)]
    run += [sample(t, (100, 100 + t), (100, 0)) for t in range(11, 31)]  # silent, SAs still up
    run += [sample(t, (100 + t, 200 + t), (100, 0)) for t in range(31, 41)]
    got = checks_of(Watch(run, ["tunnel1", "tunnel2"], []), 10, 30, 40)
    got.pop("section")
    assert set(got) == {
        "tunnels_up_before_the_fault",
        "cut_tunnels_carried_nothing",
        "tunnels_back_after_the_restore",
    }
    assert all(c["ok"] for c in got.values()), got
    never = [sample(t, (0, 0), (0, 0)) for t in range(0, 30)] + [sample(t, None, None) for t in range(30, 41)]
    assert not checks_of(Watch(never, ["tunnel1", "tunnel2"], []), 10, 30, 40)[
        "tunnels_back_after_the_restore"
    ]["ok"]


def test_the_hold_lasts_until_the_spare_carried_both_ways_and_the_load_until_the_preferred_is_back():
    run = failover_run()
    watch = Watch([s for s in run if s.t <= 20], ["tunnel1"], ["tunnel2"])
    assert not watch.may_lift(10.0), "tunnel2 carried for 3 s only"
    watch.sampler.samples = [s for s in run if s.t <= 25]
    assert watch.may_lift(10.0)
    watch.sampler.samples = [s for s in run if s.t <= 33]
    assert not watch.recovered(30.0), "tunnel1 up but sending nothing yet"
    watch.sampler.samples = run
    assert watch.recovered(30.0)
    site = Watch([s for s in run if s.t <= 32], ["tunnel1", "tunnel2"], [])
    assert site.may_lift(10.0)
    assert not site.recovered(30.0)


def test_a_counter_that_went_down_counts_as_a_new_sa():
    a = sample(0, (5000, 5000), None)
    b = sample(1, (300, 0), None)
    assert tunnelwatch.steps([a, b], "tunnel1") == [(0, 1, 300, 0)]
    assert tunnelwatch.first_carrying([a, b], "tunnel1", 0, "in") == 1
    assert tunnelwatch.first_carrying([a, b], "tunnel1", 0, "out") is None
    assert tunnelwatch.steps([a, b], "tunnel2") == [(0, 1, 0, 0)]
