"""The capture helper of the WAN test (tests/roles/wan_capture.py): frames parsed from their bytes, and a real
capture on the loopback device while this test sends to itself."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

from puente_test_support import load_module

wan_capture = load_module(
    Path(__file__).resolve().parents[1] / "roles" / "wan_capture.py", "wan_capture", register=True
)

SRC_MAC, DST_MAC = bytes.fromhex("02000a59010a"), bytes.fromhex("02000a5902fa")


def ipv4(
    proto: int, payload: bytes, src: str = "10.89.1.21", dst: str = "10.89.2.31", frag: int = 0
) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return DST_MAC + SRC_MAC + struct.pack("!H", 0x0800) + header + payload


def test_a_tcp_frame_gives_its_addresses_and_ports() -> None:
    frame = wan_capture.parse(ipv4(6, struct.pack("!HH", 41000, 5432) + bytes(16)))
    assert (frame.src_mac, frame.dst_mac) == ("02:00:0a:59:01:0a", "02:00:0a:59:02:fa")
    assert (frame.proto, frame.src, frame.dst, frame.sport, frame.dport) == (
        6, "10.89.1.21", "10.89.2.31", 41000, 5432,
    )  # fmt: skip
    described = "02:00:0a:59:01:0a > 02:00:0a:59:02:fa tcp 10.89.1.21 > 10.89.2.31 41000 > 5432"
    assert frame.describe() == described


def test_esp_in_udp_arp_ipv6_and_a_later_fragment() -> None:
    esp = wan_capture.parse(ipv4(17, struct.pack("!HHHH", 4500, 4500, 8, 0), "10.89.250.10", "10.89.250.250"))
    assert (esp.proto, esp.sport, esp.dport) == (17, 4500, 4500)
    arp = wan_capture.parse(DST_MAC + SRC_MAC + struct.pack("!H", 0x0806) + bytes(28))
    assert (arp.ethertype, arp.proto, arp.sport) == (0x0806, None, None)
    # a later fragment carries no ports: its first bytes are the payload's middle, not a header
    later = wan_capture.parse(ipv4(6, struct.pack("!HH", 1, 5432) + bytes(16), frag=185))
    assert (later.proto, later.sport, later.dport) == (6, None, None)
    v6 = DST_MAC + SRC_MAC + struct.pack("!H", 0x86DD)
    v6 += struct.pack("!IHBB", 0x60000000, 8, 17, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x02"
    v6 += struct.pack("!HHHH", 500, 500, 8, 0)
    frame = wan_capture.parse(v6)
    assert (frame.src, frame.dst, frame.proto, frame.dport) == ("::1", "::2", 17, 500)


def test_a_capture_on_loopback_sees_the_datagrams_sent_meanwhile() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]

    def send() -> None:
        time.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(3):
                sender.sendto(b"puente", ("127.0.0.1", port))

    thread = threading.Thread(target=send)
    thread.start()
    try:
        frames = wan_capture.capture({"lo": "lo"}, 0.6)["lo"]
    finally:
        thread.join()
        receiver.close()
    ours = [f for f in frames if f.proto == 17 and f.dport == port and f.dst == "127.0.0.1"]
    assert len(ours) >= 3, [f.describe() for f in frames][:20]
