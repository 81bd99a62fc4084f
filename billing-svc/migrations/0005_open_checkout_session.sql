-- The tenant's last Checkout session, which may still be open: creating a
-- new one expires it at Stripe first, so a customer holds one open session
-- at a time and two tabs cannot both be paid.

ALTER TABLE tenants ADD COLUMN open_checkout_session text;
