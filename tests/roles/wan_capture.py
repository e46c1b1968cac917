"""Frames on the lab's bridges, captured from the host with AF_PACKET sockets (no tcpdump).

A bridge's own device sees the frames it forwards between its ports only in promiscuous mode; each socket
asks for it (a packet-socket membership, dropped with the socket) for the time of the capture.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
TCP, UDP = 6, 17
PROTOCOLS = {1: "icmp", TCP: "tcp", UDP: "udp", 50: "esp", 58: "icmpv6"}


@dataclass(frozen=True)
class Frame:
    src_mac: str
    dst_mac: str
    ethertype: int
    proto: int | None = None
    """The IP protocol (IPv4's protocol, IPv6's first next header); None for anything but IP."""
    src: str = ""
    dst: str = ""
    sport: int | None = None
    dport: int | None = None

    def describe(self) -> str:
        if self.proto is None:
            return f"{self.src_mac} > {self.dst_mac} ethertype 0x{self.ethertype:04x}"
        name = PROTOCOLS.get(self.proto, str(self.proto))
        ports = f" {self.sport} > {self.dport}" if self.sport is not None else ""
        return f"{self.src_mac} > {self.dst_mac} {name} {self.src} > {self.dst}{ports}"

    def in_networks(self, field: str, networks: list[ipaddress.IPv4Network]) -> bool:
        address = getattr(self, field)
        return bool(address) and any(ipaddress.ip_address(address) in n for n in networks)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse(frame: bytes) -> Frame:
    """An Ethernet frame's addresses, IP protocol and TCP/UDP ports (what the capture test asserts on)."""
    dst_mac, src_mac = _mac(frame[0:6]), _mac(frame[6:12])
    (ethertype,) = struct.unpack("!H", frame[12:14])
    payload = frame[14:]
    base = {"src_mac": src_mac, "dst_mac": dst_mac, "ethertype": ethertype}
    if ethertype == ETH_P_IP and len(payload) >= 20:
        header = (payload[0] & 0x0F) * 4
        proto = payload[9]
        first_fragment = struct.unpack("!H", payload[6:8])[0] & 0x1FFF == 0
        src, dst = str(ipaddress.IPv4Address(payload[12:16])), str(ipaddress.IPv4Address(payload[16:20]))
        l4 = payload[header:] if first_fragment else b""
    elif ethertype == ETH_P_IPV6 and len(payload) >= 40:
        proto = payload[6]
        src, dst = str(ipaddress.IPv6Address(payload[8:24])), str(ipaddress.IPv6Address(payload[24:40]))
        l4 = payload[40:]
    else:
        return Frame(**base)
    if proto in (TCP, UDP) and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[0:4])
        return Frame(**base, proto=proto, src=src, dst=dst, sport=sport, dport=dport)
    return Frame(**base, proto=proto, src=src, dst=dst)


def capture(interfaces: Mapping[str, str], seconds: float) -> dict[str, list[Frame]]:
    """{label: frames} seen on each interface ({label: interface name}) for ``seconds``, both ways."""
    sockets: dict[socket.socket, str] = {}
    found: dict[str, list[Frame]] = {label: [] for label in interfaces}
    # A packet socket receives every interface's frames from its creation until bind() takes effect: each
    # frame is kept only if it came from the socket's own interface (CI once found the cloud bridge's
    # TCP 5432 among the WAN's frames, queued before the bind).
    try:
        for label, name in interfaces.items():
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            sockets[sock] = label
            sock.bind((name, ETH_P_ALL))
            membership = struct.pack("iHH8s", socket.if_nametoindex(name), PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(sockets), [], [], left)
            for sock in ready:
                while time.monotonic() < deadline:
                    try:
                        data, address = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    label = sockets[sock]
                    if len(data) >= 14 and address[0] == interfaces[label]:
                        found[label].append(parse(data))
    finally:
        for sock in sockets:
            sock.close()
    return found
