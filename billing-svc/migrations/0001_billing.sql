-- Tenants (one per customer user), their subscriptions, the Stripe events
-- applied (exactly once) and those that failed, and the billing events
-- the win-back metrics are counted from.

CREATE TABLE tenants (
    id                       uuid PRIMARY KEY,
    owner_user_id            uuid NOT NULL UNIQUE,
    stripe_customer_id       text UNIQUE,
    -- When the customer last cancelled; cleared when they undo it or come back.
    left_at                  timestamptz,
    reactivated_at           timestamptz,
    reactivation_count       integer NOT NULL DEFAULT 0,
    last_cancellation_reason text,
    -- The welcome-back offer is given once per customer.
    welcome_back_used_at     timestamptz,
    created_at               timestamptz NOT NULL
);

CREATE TABLE subscriptions (
    id                     uuid PRIMARY KEY,
    tenant_id              uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    stripe_subscription_id text UNIQUE,
    plan                   text NOT NULL CHECK (plan IN ('grower', 'builder', 'maven')),
    billing_period         text NOT NULL CHECK (billing_period IN ('monthly', 'annual')),
    status                 text NOT NULL CHECK (status IN ('trial', 'active', 'cancelled', 'expired')),
    -- End of the paid period.
    next_billing_date      timestamptz NOT NULL,
    cancelled_at           timestamptz,
    payment_failed_at      timestamptz,
    revision               integer NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL
);

CREATE INDEX subscriptions_by_tenant ON subscriptions (tenant_id, created_at DESC);
CREATE INDEX subscriptions_due_to_expire ON subscriptions (next_billing_date) WHERE status = 'cancelled';

-- One row per Stripe event applied; its primary key makes applying twice impossible.
CREATE TABLE stripe_events (
    event_id   text PRIMARY KEY,
    event_type text NOT NULL,
    applied_at timestamptz NOT NULL
);

CREATE TABLE failed_webhooks (
    event_id        text PRIMARY KEY,
    event_type      text NOT NULL,
    -- The verified body, to apply again.
    payload         jsonb NOT NULL,
    error           text NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL,
    last_failed_at  timestamptz NOT NULL,
    resolved_at     timestamptz
);

CREATE TABLE billing_events (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- subscribed, returned, offer_used, cancelled, reactivated, expired,
    -- payment_failed, payment_recovered
    event       text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    trace_id    text,
    occurred_at timestamptz NOT NULL
);

CREATE INDEX billing_events_by_tenant ON billing_events (tenant_id, id);
CREATE INDEX billing_events_by_kind ON billing_events (event);
