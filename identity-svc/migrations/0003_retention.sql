-- Retention: deactivated accounts are erased after RETENTION_DAYS, with
-- reminder emails before. One row per reminder sent for one absence (an
-- account deactivated again later gets its reminders again); its primary
-- key makes each reminder go out once, whatever the number of replicas.

CREATE TABLE retention_reminders (
    user_id        uuid NOT NULL,
    deactivated_at timestamptz NOT NULL,
    days_before    integer NOT NULL,
    sent_at        timestamptz NOT NULL,
    PRIMARY KEY (user_id, deactivated_at, days_before)
);

CREATE INDEX users_awaiting_purge ON users (deactivated_at) WHERE NOT is_active;
