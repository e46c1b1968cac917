"""Shipping labels: a small ZPL II document (what thermal label printers take) per shipment."""

from __future__ import annotations

from typing import Any


def _field(text: str) -> str:
    # ZPL treats ^ and ~ as command prefixes; keep printable text only
    return "".join(ch for ch in text if ch not in "^~" and ch.isprintable())[:60]


def render_zpl(
    tracking: str, sender: dict[str, Any], recipient: dict[str, Any], parcels: list[Any], service: str
) -> str:
    grams = sum(int(p["weight_grams"]) for p in parcels)
    lines = [
        "^XA",
        f"^FO30,30^A0N,28,28^FD{_field(sender['name'])}, {_field(sender['city'])} {sender['country']}^FS",
        f"^FO30,90^A0N,40,40^FD{_field(recipient['name'])}^FS",
        f"^FO30,140^A0N,32,32^FD{_field(recipient['street'])}^FS",
        f"^FO30,180^A0N,32,32^FD{recipient['postal_code']} {_field(recipient['city'])} "
        f"{recipient['country']}^FS",
        f"^FO30,240^A0N,28,28^FD{service.upper()} {len(parcels)} parcel(s) {grams} g^FS",
        f"^FO30,300^BCN,120,Y,N,N^FD{tracking}^FS",
        "^XZ",
    ]
    return "\n".join(lines)
