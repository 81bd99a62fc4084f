-- Finding accounts by email for support staff, and the record of what
-- support staff read.

-- The accounts whose email starts with a given text, in email order, as a
-- range of one index. `users_email_key` orders by the database's collation,
-- in which a prefix is not a range; in byte order ("C") it is.
CREATE INDEX users_by_email_bytes ON users (email COLLATE "C");

-- Every read of an account's personal data by an admin: the account found
-- by email ('account') or its lifecycle events ('timeline'). Erasure of the
-- account deletes its rows.
CREATE TABLE admin_reads (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The admin who read.
    actor_id uuid NOT NULL,
    -- Whose data was read. Not a foreign key, as in `account_events`:
    -- erasure deletes these rows itself, in its own transaction.
    user_id  uuid NOT NULL,
    what     text NOT NULL CHECK (what IN ('account', 'timeline')),
    -- W3C trace id of the request that read.
    trace_id text,
    read_at  timestamptz NOT NULL
);

CREATE INDEX admin_reads_by_user ON admin_reads (user_id, read_at);
