-- The last access change applied to each customer's keys (billing makes
-- access follow money). Changes arrive through retried deliveries, possibly
-- out of order; one older than the last applied is ignored.

CREATE TABLE customer_access (
    -- `user:<uuid>` or `email:<address>`
    customer   text PRIMARY KEY,
    access     text NOT NULL CHECK (access IN ('active', 'suspended')),
    -- The sender's time of the change, in microseconds since the epoch.
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
