-- Outgoing messages and their delivery state.

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    -- The caller's name for the message: the same key never stores a second one.
    idempotency_key text NOT NULL,
    template        text NOT NULL,
    recipient       text NOT NULL,
    subject         text NOT NULL,
    -- Rendered at enqueue; erased with the variables once the message is sent
    -- or has failed, because they can hold one-time links and license keys.
    text_body       text,
    html_body       text,
    variables       jsonb,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    -- Delivery attempts made so far.
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    -- When the next attempt is due; NULL once sent or failed.
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    CONSTRAINT messages_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT messages_pending_is_deliverable
        CHECK (state <> 'pending' OR (next_attempt_at IS NOT NULL AND text_body IS NOT NULL AND html_body IS NOT NULL)),
    CONSTRAINT messages_sent_has_time CHECK (state <> 'sent' OR sent_at IS NOT NULL)
);

-- The delivery worker's queue: only pending messages, oldest due first.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'pending';
