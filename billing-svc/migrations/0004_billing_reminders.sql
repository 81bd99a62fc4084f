-- The reminder emails billing sends, each once: "your cancelled subscription
-- ends soon" before a cancelled subscription's paid period ends, and the
-- win-back offer some days after a customer's subscription ended. A row is
-- written in the transaction that owes the email; its primary key lets only
-- one replica's pass owe it. They go with the subscription (and so with an
-- erased customer's tenant).

CREATE TABLE billing_reminders (
    subscription_id uuid NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- ending_soon (days before the end) or win_back (days after it).
    kind            text NOT NULL CHECK (kind IN ('ending_soon', 'win_back')),
    days            integer NOT NULL,
    -- The end the reminder was about: a later paid period, cancelled again,
    -- is reminded of again.
    ends_at         timestamptz NOT NULL,
    sent_at         timestamptz NOT NULL,
    PRIMARY KEY (subscription_id, kind, days, ends_at)
);

-- When a subscription ended (it became expired): the win-back emails count
-- their days from it. Older expired rows ended at the end of their paid
-- period, or when they were last changed if that came first.
ALTER TABLE subscriptions ADD COLUMN ended_at timestamptz;
UPDATE subscriptions SET ended_at = LEAST(next_billing_date, updated_at) WHERE status = 'expired';
CREATE INDEX subscriptions_ended ON subscriptions (ended_at) WHERE status = 'expired';
