-- When the customer's account was closed (identity-svc's closure), cleared
-- when they act again with their own token, which only an open account
-- holds. While it is set, billing never gives their keys back.

ALTER TABLE tenants ADD COLUMN account_closed_at timestamptz;
