-- License keys, their history, and the outbox of emails they owe.

CREATE TABLE license_keys (
    key           text PRIMARY KEY
                  CHECK (key ~ '^SK-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$'),
    -- Lower-cased and trimmed by the service; the customer the key belongs to.
    email         text NOT NULL,
    -- The customer's account, when known.
    owner_user_id uuid,
    key_type      text NOT NULL CHECK (key_type IN ('trial', 'production', 'development')),
    -- NULL: no expiry.
    expires_at    timestamptz,
    -- Set while disabled. Stored on its own (not as "expires today") so a key
    -- disabled today is still disabled, not expired, tomorrow.
    disabled_at   timestamptz,
    features      jsonb NOT NULL DEFAULT '{}'::jsonb,
    customer      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Listing: a stable order, alone or by customer.
CREATE INDEX license_keys_in_order ON license_keys (created_at, key);
CREATE INDEX license_keys_by_email ON license_keys (email, created_at, key);
CREATE INDEX license_keys_by_owner ON license_keys (owner_user_id) WHERE owner_user_id IS NOT NULL;

CREATE TABLE key_history (
    id           uuid PRIMARY KEY,
    key          text NOT NULL REFERENCES license_keys (key),
    action       text NOT NULL,
    performed_at timestamptz NOT NULL,
    -- The admin's user id, or "service" for another service of the mesh.
    performed_by text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- This action gave the customer a fresh trial period; they are capped.
    fresh_trial  boolean NOT NULL DEFAULT false,
    -- W3C trace id of the request that caused the action.
    trace_id     text
);

CREATE INDEX key_history_by_key ON key_history (key, performed_at, id);

-- Effects owed to other services (emails), written in the same transaction
-- as the change that owes them and delivered by platform::outbox::Relay.
CREATE TABLE outbox (
    id              uuid PRIMARY KEY,
    topic           text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    -- Cleared once delivered.
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
