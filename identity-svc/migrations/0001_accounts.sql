-- Accounts and their audit trail.

CREATE TABLE users (
    id                       uuid PRIMARY KEY,
    -- Lower-cased and trimmed by the service: one mailbox, one account.
    email                    text NOT NULL,
    -- argon2id PHC string.
    password_hash            text NOT NULL,
    role                     text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    is_active                boolean NOT NULL DEFAULT true,
    deactivated_at           timestamptz,
    deactivation_reason      text CHECK (deactivation_reason IN ('self', 'admin', 'nonpayment', 'fraud')),
    reactivated_at           timestamptz,
    reactivation_count       integer NOT NULL DEFAULT 0,
    last_cancellation_reason text,
    -- Bumped on every change of state; tokens issued for an older version are void.
    state_version            bigint NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_inactive_has_reason
        CHECK (is_active OR (deactivated_at IS NOT NULL AND deactivation_reason IS NOT NULL))
);

CREATE TABLE account_events (
    id          uuid PRIMARY KEY,
    -- Not a foreign key: the trail of an erased account outlives its row.
    user_id     uuid NOT NULL,
    event_type  text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Who did it: the user themselves, an admin, or NULL for the system.
    actor_id    uuid,
    -- W3C trace id of the request that caused the event.
    trace_id    text,
    occurred_at timestamptz NOT NULL
);

CREATE INDEX account_events_by_user ON account_events (user_id, occurred_at, id);
