"""Failover drills: drive load through the failover DNS name, inject a fault, measure what clients saw.

The pieces, each in its own module: ``resolver`` (DNS with the TTL honoured), ``client`` (the load a good
client makes: idempotency keys, retries with backoff), ``faults`` (the WAN cut and node losses, as plain
nft/podman commands), ``cluster`` (Patroni and database facts read from the nodes), ``report`` (RTO, lost
and duplicate writes), ``preflight`` and ``scenarios`` (the drills), ``cli`` (``puente drill ...``).
"""
