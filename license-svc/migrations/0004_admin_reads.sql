-- Every read of a key's details by an admin: the key ('key') or its history
-- ('key_history'), who read it, when, and in which request. Erasure of the
-- customer deletes the rows of their keys.

CREATE TABLE admin_reads (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The admin who read.
    actor_id      uuid NOT NULL,
    -- Not a foreign key: erasure deletes these rows itself, with the keys.
    key           text NOT NULL,
    -- The key's owner when it was read, when known.
    owner_user_id uuid,
    what          text NOT NULL CHECK (what IN ('key', 'key_history')),
    -- W3C trace id of the request that read.
    trace_id      text,
    read_at       timestamptz NOT NULL
);

CREATE INDEX admin_reads_by_key ON admin_reads (key);
CREATE INDEX admin_reads_by_owner ON admin_reads (owner_user_id) WHERE owner_user_id IS NOT NULL;
