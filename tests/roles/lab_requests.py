"""What the lab tests send through the gateways: where, with which CA, and a valid shipment."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CA = REPO / ".cache" / "lab" / "ca" / "ca.crt"
# The gateways' addresses (inventories/lab/hosts.yml): onprem-edge1, cloud-edge1.
EDGES = {"onprem": "10.89.1.10", "cloud": "10.89.2.10"}
SHIPMENT = {
    "sender": {"name": "Alice Sender", "street": "1 Main St", "city": "Lisbon", "postal_code": "1000-001",
               "country": "PT"},
    "recipient": {"name": "Bob Recipient", "street": "2 High St", "city": "Porto", "postal_code": "4000-001",
                  "country": "PT"},
    "parcels": [{"weight_grams": 1200, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
}  # fmt: skip
