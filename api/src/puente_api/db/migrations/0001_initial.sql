-- Migration 0001: the schema of Puente's reference API as the releases before numbered migrations made
-- it. `puente-api migrate` runs each migration once, in order, in its own transaction under an advisory
-- lock (api/README.md, Migrations). Every statement here is idempotent (IF NOT EXISTS), so a database
-- made by those releases takes it as a no-op and is recorded at 0001.
-- Design model: brandur's rocket-rides-atomic (https://brandur.org/idempotency-keys).

-- Shipments: the business rows. `seq` orders the keyset pagination of GET /v1/shipments (an opaque
-- cursor wraps it); `id` is the public identifier. Shipments outlive the idempotency keys that created
-- them: the reaper deletes keys, never shipments.
CREATE TABLE IF NOT EXISTS shipments (
    id              UUID        PRIMARY KEY,
    seq             BIGINT      GENERATED ALWAYS AS IDENTITY UNIQUE,
    client_id       TEXT        NOT NULL CHECK (char_length(client_id) BETWEEN 1 AND 64),
    status          TEXT        NOT NULL DEFAULT 'created'
        CHECK (status IN ('created', 'picked_up', 'in_transit', 'out_for_delivery', 'delivered',
                          'failed_attempt', 'returned')),
    -- pending until the worker has generated the label (queue path: outbox -> broker -> worker)
    label_status    TEXT        NOT NULL DEFAULT 'pending' CHECK (label_status IN ('pending', 'ready')),
    service         TEXT        NOT NULL CHECK (service IN ('standard', 'express')),
    reference       TEXT        NULL CHECK (char_length(reference) <= 64),
    -- the request's validated addresses and parcels, as the API returns them
    sender          JSONB       NOT NULL,
    recipient       JSONB       NOT NULL,
    parcels         JSONB       NOT NULL,
    tracking_number TEXT        NULL UNIQUE CHECK (char_length(tracking_number) <= 32),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Tracking events appended by POST /v1/shipments/{id}/events.
CREATE TABLE IF NOT EXISTS shipment_events (
    id          UUID        PRIMARY KEY,
    shipment_id UUID        NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    type        TEXT        NOT NULL
        CHECK (type IN ('picked_up', 'in_transit', 'out_for_delivery', 'delivered', 'failed_attempt',
                        'returned')),
    location    TEXT        NULL CHECK (char_length(location) <= 200),
    note        TEXT        NULL CHECK (char_length(note) <= 500),
    occurred_at TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS shipment_events_shipment_id ON shipment_events (shipment_id, occurred_at);

-- Labels made by the worker. UNIQUE (shipment_id) is the last line of defence behind the inbox:
-- even a bug that processed one message twice could not make a second label.
CREATE TABLE IF NOT EXISTS labels (
    id          UUID        PRIMARY KEY,
    shipment_id UUID        NOT NULL UNIQUE REFERENCES shipments (id) ON DELETE CASCADE,
    format      TEXT        NOT NULL CHECK (format IN ('zpl')),
    content     TEXT        NOT NULL CHECK (char_length(content) <= 8192),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Idempotency keys (IETF httpapi draft "The Idempotency-Key HTTP Header Field"; Stripe's semantics).
-- A row is written in the SAME transaction as the business rows and the outbox row it produced, and
-- only then: a row therefore always holds a finished response (rocket-rides-atomic's recovery point
-- `finished`). The request runs as ONE atomic phase because its only effect outside the database, the
-- label, goes through the outbox. "In flight" is a transaction-scoped advisory lock on the key, which
-- PostgreSQL releases itself when the transaction ends, commits, aborts or its client dies (kill -9):
-- a key can never be left locked, so no lease/timeout is needed.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    id               BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id        TEXT        NOT NULL CHECK (char_length(client_id) BETWEEN 1 AND 64),
    idempotency_key  TEXT        NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    request_method   TEXT        NOT NULL CHECK (char_length(request_method) <= 10),
    request_path     TEXT        NOT NULL CHECK (char_length(request_path) <= 200),
    -- sha256 over method, path and the canonical JSON of the validated body: a retry whose JSON only
    -- differs in key order or spacing is the same request; any other difference is a 422.
    fingerprint      TEXT        NOT NULL CHECK (char_length(fingerprint) = 64),
    -- the stored response, replayed byte for byte (4xx included) with Idempotent-Replayed: true
    response_code    INT         NOT NULL CHECK (response_code BETWEEN 200 AND 499),
    response_headers JSONB       NOT NULL DEFAULT '{}',
    response_body    TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (client_id, idempotency_key)
);
-- the reaper deletes by age
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON idempotency_keys (created_at);

-- Transactional outbox: written with the shipment, published by `puente-api relay` (at least once).
CREATE TABLE IF NOT EXISTS outbox (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic        TEXT        NOT NULL CHECK (char_length(topic) <= 100),
    aggregate_id UUID        NOT NULL,
    payload      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ NULL
);
-- the relay only ever scans unpublished rows
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

-- Inbox of the worker: one row per message id (= outbox id) it has applied, written in the same
-- transaction as the effect, so a message delivered twice has one effect.
CREATE TABLE IF NOT EXISTS inbox (
    message_id  TEXT        PRIMARY KEY CHECK (char_length(message_id) <= 100),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS inbox_received_at ON inbox (received_at);

-- Tracking numbers handed out by the worker with each label (PU + 12 digits).
CREATE SEQUENCE IF NOT EXISTS tracking_number_seq;
