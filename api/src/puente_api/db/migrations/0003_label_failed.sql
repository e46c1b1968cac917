-- Migration 0003: a label that cannot be made is visible (issue 12, item 5). Expand only: the previous
-- release never writes 'failed' nor the new column, and reads its shipments as before.

-- 'failed': the label message was dead-lettered (the worker gave up on it, or the broker did after
-- MAX_DELIVERIES); label_failure_reason says why. `puente-api labels redrive` sets it back to 'pending'.
-- The check is replaced, not altered (PostgreSQL has no ALTER CONSTRAINT for a CHECK): 0001 named it
-- implicitly shipments_label_status_check.
ALTER TABLE shipments DROP CONSTRAINT shipments_label_status_check;
ALTER TABLE shipments ADD CONSTRAINT shipments_label_status_check
    CHECK (label_status IN ('pending', 'ready', 'failed'));
ALTER TABLE shipments ADD COLUMN label_failure_reason TEXT NULL
    CHECK (char_length(label_failure_reason) <= 500);

-- The scrape-time gauges of GET /metrics (labels pending and failed, the oldest pending one's age) read
-- this small index of the shipments whose label is not made yet, never the whole table.
CREATE INDEX shipments_label_unfinished ON shipments (label_status, created_at) WHERE label_status <> 'ready';
