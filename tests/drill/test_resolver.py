"""The drill's resolver against a real PowerDNS on loopback: answers are cached for their TTL, no
longer, and failures are DnsError (the client records them as kind "dns")."""

from __future__ import annotations

import pytest

from puente.drill.resolver import DnsError, TtlResolver


class FakeClock:
    """Time moves only when the test says so: no sleeping, no timing in the assertions."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_answer_is_reused_until_its_ttl_expires(pdns):
    pdns.set_a("ttl.drill.test", "127.0.0.2", 30)
    clock = FakeClock()
    r = TtlResolver("127.0.0.1", pdns.port, clock=clock)
    first = r.resolve("ttl.drill.test")
    assert (first.addresses, first.ttl, r.queries) == (("127.0.0.2",), 30, 1)

    pdns.set_a("ttl.drill.test", "127.0.0.3", 30)  # the failover DNS flips
    clock.now += 29.9
    assert r.resolve("ttl.drill.test").addresses == ("127.0.0.2",)
    assert r.queries == 1, "asked again before the TTL expired"

    clock.now += 0.2
    assert r.resolve("ttl.drill.test").addresses == ("127.0.0.3",)
    assert r.queries == 2


def test_the_ttl_the_server_gives_is_the_one_used(pdns):
    pdns.set_a("short.drill.test", "127.0.0.4", 1)
    clock = FakeClock()
    r = TtlResolver("127.0.0.1", pdns.port, clock=clock)
    assert r.resolve("short.drill.test").ttl == 1
    clock.now += 1.0
    r.resolve("short.drill.test")
    assert r.queries == 2


def test_ttl_zero_is_never_cached(pdns):
    pdns.set_a("zero.drill.test", "127.0.0.5", 0)
    r = TtlResolver("127.0.0.1", pdns.port, clock=FakeClock())
    r.resolve("zero.drill.test")
    r.resolve("zero.drill.test")
    assert r.queries == 2


def test_unknown_name_is_a_dns_error(pdns):
    r = TtlResolver("127.0.0.1", pdns.port)
    with pytest.raises(DnsError, match="NXDOMAIN"):
        r.resolve("missing.drill.test")


def test_server_down_is_a_dns_error(closed_port):
    r = TtlResolver("127.0.0.1", closed_port, timeout=0.3)
    with pytest.raises(DnsError, match="no answer"):
        r.resolve("api.drill.test")
