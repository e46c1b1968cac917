"""Request and response bodies of the shipments API (pydantic; they are the OpenAPI schema)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

EventType = Literal["picked_up", "in_transit", "out_for_delivery", "delivered", "failed_attempt", "returned"]
ShipmentStatus = Literal["created", *EventType.__args__]  # type: ignore[valid-type]
# Once a shipment reached one of these, no tracking event may follow.
TERMINAL_STATUSES = frozenset({"delivered", "returned"})
# Events must fall inside this window; it also keeps every timestamp inside PostgreSQL's and
# Python's ranges whatever offset the client sends.
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _clean_text(value: str) -> str:
    """Refuse what PostgreSQL or a label printer cannot take: control characters (NUL included),
    lone surrogates, unassigned and private-use code points; store NFC so equal text compares equal."""
    if not (value.isascii() and value.isprintable()):  # printable ASCII: nothing to refuse or normalise
        for ch in value:
            if unicodedata.category(ch) in ("Cc", "Cs", "Cn", "Co") and ch not in "\t":
                raise ValueError(f"contains a forbidden character U+{ord(ch):04X}")
        value = unicodedata.normalize("NFC", value)
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _cleaned(max_length: int) -> Callable[[str], str]:
    """_clean_text, then the length limit again: NFC can lengthen text (U+FB2C, one character, is three
    after NFC), and the database checks the stored, normalised length. Field(max_length) still refuses an
    oversized input before any normalisation work."""

    def clean(value: str) -> str:
        value = _clean_text(value)
        if len(value) > max_length:
            raise ValueError(
                f"must be at most {max_length} characters after Unicode normalisation (NFC), got {len(value)}"
            )
        return value

    return clean


Text64 = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_cleaned(64))]
Text100 = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_cleaned(100))]
Text200 = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_cleaned(200))]
Text500 = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_cleaned(500))]


class _Strict(BaseModel):
    # unknown fields are an error, not silently dropped: a typo must not create a shipment
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Address(_Strict):
    name: Text100
    street: Text200
    city: Text100
    postal_code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{0,14}$")]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
    phone: Annotated[str | None, Field(pattern=r"^\+?[0-9 ()-]{4,24}$")] = None


class Parcel(_Strict):
    weight_grams: Annotated[int, Field(strict=True, ge=1, le=70_000)]
    length_cm: Annotated[int, Field(strict=True, ge=1, le=300)]
    width_cm: Annotated[int, Field(strict=True, ge=1, le=300)]
    height_cm: Annotated[int, Field(strict=True, ge=1, le=300)]


class ShipmentCreate(_Strict):
    sender: Address
    recipient: Address
    parcels: Annotated[list[Parcel], Field(min_length=1, max_length=20)]
    service: Literal["standard", "express"] = "standard"
    reference: Text64 | None = None


def _in_window(value: datetime) -> datetime:
    if not _EARLIEST <= value <= _LATEST:
        raise ValueError("must be between 2000-01-01 and 2100-01-01")
    return value


class EventCreate(_Strict):
    type: EventType
    occurred_at: Annotated[AwareDatetime, AfterValidator(_in_window)]
    location: Text200 | None = None
    note: Text500 | None = None


class Event(BaseModel):
    id: UUID
    shipment_id: UUID
    type: EventType
    occurred_at: datetime
    location: str | None
    note: str | None
    created_at: datetime


class Label(BaseModel):
    format: Literal["zpl"]
    content: str


class Shipment(BaseModel):
    id: UUID
    status: ShipmentStatus  # type: ignore[valid-type]
    label_status: Literal["pending", "ready", "failed"] = Field(
        description="pending until the worker made the label; failed when its message was dead-lettered "
        "(label_failure_reason says why; `puente-api labels redrive` tries again)"
    )
    label_failure_reason: str | None
    tracking_number: str | None
    service: Literal["standard", "express"]
    reference: str | None
    sender: Address
    recipient: Address
    parcels: list[Parcel]
    created_at: datetime
    updated_at: datetime


class ShipmentDetail(Shipment):
    events: list[Event]
    label: Label | None


class ShipmentPage(BaseModel):
    items: list[Shipment]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null at the end.")


class ProblemDocument(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, object]] | None = None
    site: str | None = None
    role: str | None = None
    reasons: list[str] | None = None
