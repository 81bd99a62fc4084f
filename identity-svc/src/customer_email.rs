//! Emails other services owe a customer they know only by id: billing-svc
//! holds no email address, so it asks identity-svc, which owns it, to send
//! them (`SendCustomerEmail`).
//!
//! The email is owed through identity's own outbox, so notify-svc being
//! down delays it and never loses it. The account row is share-locked while
//! the email is recorded: an erasure, which locks the row for update and
//! drops the emails still owed to the address, either waits for this to
//! commit (and drops it) or has already committed (and this finds no user).

use std::collections::HashMap;

use platform::mail;
use proto::notify::v1::Template;
use uuid::Uuid;

use crate::{accounts::Accounts, db, error::Error};

impl Accounts {
    /// Owes `template` to the customer `user_id`, once per `key`. Whether
    /// it is owed: an unknown user (erased) gets nothing.
    #[tracing::instrument(skip(self, variables))]
    pub async fn send_customer_email(
        &self,
        user_id: Uuid,
        template: Template,
        variables: HashMap<String, String>,
        key: &str,
    ) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let Some(account) = db::users::lock_shared(&mut tx, user_id).await? else {
            tracing::info!(user_id = %user_id, "an email for an unknown (erased) customer: dropped");
            return Ok(false);
        };
        let email = mail::Email {
            template: template.as_str_name().to_owned(),
            recipient: account.email.as_str().to_owned(),
            variables,
        };
        // Namespaced: the caller's keys never meet identity's own.
        mail::owe(&mut tx, &format!("customer-email:{key}"), &email).await?;
        tx.commit().await?;
        self.waker.wake();
        Ok(true)
    }
}
