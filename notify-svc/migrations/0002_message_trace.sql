-- The W3C trace context of the request that enqueued a message, so its
-- delivery continues the same trace (one customer's story, end to end).
ALTER TABLE messages ADD COLUMN traceparent text;
