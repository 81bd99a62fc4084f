-- Why a key is disabled: billing restores only what billing suspended
-- (payment, account closed); a key an admin disabled stays disabled.

ALTER TABLE license_keys
    ADD COLUMN disabled_reason text CHECK (disabled_reason IN ('admin', 'payment', 'account_closed'));

-- Keys disabled before the reason was kept: the last disabling action says
-- who (billing's `suspended`, or an admin's `disabled`).
UPDATE license_keys k SET disabled_reason = CASE
        WHEN (SELECT h.action FROM key_history h
              WHERE h.key = k.key AND h.action IN ('disabled', 'suspended')
              ORDER BY h.performed_at DESC, h.id DESC LIMIT 1) = 'suspended' THEN 'payment'
        ELSE 'admin' END
    WHERE disabled_at IS NOT NULL;
