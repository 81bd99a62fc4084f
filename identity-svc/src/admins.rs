//! `identity-svc create-admin`: an operator makes an admin without the API
//! (which needs an admin already) — a new account, or with `--promote` an
//! existing one given the role. Recorded in the account's audit trail like
//! any change.

use platform::auth::Role;
use serde_json::json;
use uuid::Uuid;

use crate::{
    Config, MIGRATOR, db,
    domain::{Email, EventKind, Password, PasswordHasher},
};

/// What `create-admin` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminMade {
    Created(Uuid),
    Promoted(Uuid),
    /// The account was an admin already: nothing changed.
    AlreadyAdmin(Uuid),
}

/// Makes `email` an admin. A new account takes `password`; an existing one
/// keeps its own, and is only given the role when `promote` is set (so a
/// typo never turns a customer into an admin).
pub async fn create_admin(config: &Config, email: &str, password: String, promote: bool) -> anyhow::Result<AdminMade> {
    let email = Email::parse(email).map_err(|message| anyhow::anyhow!("email: {message}"))?;
    let pool = platform::db::connect(&config.service.database_url, 2).await?;
    platform::db::migrate(&pool, &MIGRATOR).await?;
    let now = chrono::Utc::now();
    let mut tx = pool.begin().await?;
    if let Some(account) = db::users::find_by_email(&mut tx, &email).await? {
        if account.role == Role::Admin {
            return Ok(AdminMade::AlreadyAdmin(account.id));
        }
        anyhow::ensure!(
            promote,
            "{} is a customer's account; add --promote to give it the admin role",
            email.as_str()
        );
        db::users::set_role(&mut tx, account.id, Role::Admin, now).await?;
        db::events::record(
            &mut tx,
            account.id,
            EventKind::RoleGranted,
            json!({ "role": "admin" }),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(AdminMade::Promoted(account.id));
    }
    let password = Password::parse(password, &email).map_err(|message| anyhow::anyhow!("password: {message}"))?;
    let hash = PasswordHasher::new(1, 1).await?.hash(&password).await?;
    let account = db::users::insert(&mut tx, &email, &hash, Role::Admin, now).await?;
    db::events::record(
        &mut tx,
        account.id,
        EventKind::Registered,
        json!({ "role": "admin" }),
        None,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(AdminMade::Created(account.id))
}
