-- The outbox table as platform::outbox expects it: the one source of its
-- schema (platform::outbox::SCHEMA). identity-svc, license-svc and
-- billing-svc carry older copies in their own applied migrations, which
-- stay as history; a service created since takes it from here.

CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    topic           text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    -- Cleared once delivered: it may hold a one-time link.
    payload         jsonb,
    -- W3C trace context of the request that caused the entry.
    traceparent     text,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);

CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
