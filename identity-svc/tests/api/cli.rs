//! The identity-svc binary's command line: help without environment, unknown
//! arguments refused, secrets masked by `check-config`.

use platform::testing::cli::Binary;

const BINARY: Binary<'static> = Binary {
    path: env!("CARGO_BIN_EXE_identity-svc"),
    config_sources: &[
        include_str!("../../src/config.rs"),
        include_str!("../../../platform/src/config.rs"),
    ],
};

platform::command_line_tests!(BINARY);

#[test]
fn check_config_prints_the_settings_with_secrets_masked() {
    BINARY.assert_check_config_masks(
        &[("JWT_PRIVATE_KEY", "hunter2-private-key")],
        &["0.0.0.0:50051"],
        &["hunter2-private-key"],
    );
}

/// Runs `identity-svc create-admin` against the test app's database, with
/// `stdin` as standard input.
fn create_admin(app: &crate::helpers::TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(BINARY.path)
        .arg("create-admin")
        .args(args)
        .env_clear()
        .env("DATABASE_URL", app.database.url.expose())
        .env("REDIS_URL", "redis://127.0.0.1:6379")
        .env("JWT_PRIVATE_KEY", "unused by create-admin")
        .env("JWT_PUBLIC_KEY", "unused by create-admin")
        .env("INTERNAL_API_TOKEN", "unused by create-admin")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("identity-svc runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn create_admin_makes_a_new_admin_and_promotes_a_customer_only_when_told() {
    let app = crate::helpers::spawn_app().await;
    let made = create_admin(&app, &["Staff@Example.com"], "purple zebra orbit 42\n");
    assert!(made.status.success(), "{made:?}");
    assert!(String::from_utf8_lossy(&made.stdout).contains("created"), "{made:?}");
    let login = app.login("staff@example.com", "purple zebra orbit 42").await.unwrap();
    assert_eq!(login.user.unwrap().role(), proto::identity::v1::Role::Admin);

    let again = create_admin(&app, &["staff@example.com"], "another password entirely\n");
    assert!(
        again.status.success() && String::from_utf8_lossy(&again.stdout).contains("nothing changed"),
        "{again:?}"
    );

    // A customer's account is never made an admin by a typo.
    app.register("customer@example.com").await;
    let refused = create_admin(&app, &["customer@example.com"], "whatever password here\n");
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--promote"),
        "{refused:?}"
    );
    let customer = app
        .login("customer@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    assert_eq!(customer.user.unwrap().role(), proto::identity::v1::Role::User);

    let promoted = create_admin(&app, &["customer@example.com", "--promote"], "");
    assert!(promoted.status.success(), "{promoted:?}");
    let customer = app
        .login("customer@example.com", crate::helpers::PASSWORD)
        .await
        .unwrap();
    assert_eq!(customer.user.unwrap().role(), proto::identity::v1::Role::Admin);
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    let granted: i64 = sqlx::query_scalar("SELECT count(*) FROM account_events WHERE event_type = 'role_granted'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(granted, 1, "the promotion is in the audit trail");

    // A password that breaks the rules is refused with its reason.
    let weak = create_admin(&app, &["new-staff@example.com"], "short\n");
    assert!(
        !weak.status.success() && String::from_utf8_lossy(&weak.stderr).contains("password"),
        "{weak:?}"
    );
}
