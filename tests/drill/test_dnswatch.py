"""The drill's DNS lane samples the failover DNS itself, against a real PowerDNS on loopback: every
sample is a fresh query (a long TTL does not hide a change), and a server that does not answer is a
sample with an error, not a gap."""

from __future__ import annotations

import time

from puente.drill.dnswatch import DnsSampler


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_sample_asks_again_whatever_the_ttl(pdns):
    pdns.set_a("watch.drill.test", "127.0.0.7", 3600)
    clock = FakeClock()
    watch = DnsSampler("127.0.0.1", pdns.port, "watch.drill.test", clock=clock)
    first = watch.ask()
    pdns.set_a("watch.drill.test", "127.0.0.8", 3600)  # the failover DNS flips
    clock.now += 1.0
    second = watch.ask()
    assert (first.t, first.addresses, first.error) == (100.0, ("127.0.0.7",), None)
    assert (second.t, second.addresses) == (101.0, ("127.0.0.8",))


def test_no_answer_is_a_sample_with_the_error(closed_port):
    sample = DnsSampler("127.0.0.1", closed_port, "watch.drill.test", timeout=0.2).ask()
    assert sample.addresses == () and sample.error and "no answer" in sample.error


def test_the_thread_samples_until_stopped(pdns):
    pdns.set_a("loop.drill.test", "127.0.0.9", 60)
    watch = DnsSampler("127.0.0.1", pdns.port, "loop.drill.test", interval=0.05)
    watch.start()
    time.sleep(0.4)
    samples = watch.stop()
    assert len(samples) >= 3, samples
    assert all(s.addresses == ("127.0.0.9",) for s in samples)
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    time.sleep(0.15)
    assert len(watch.samples) == len(samples), "still sampling after stop()"
