//! The billing-svc binary's command line: help without environment, unknown
//! arguments refused, secrets masked by `check-config`, and a missing price
//! id with real Stripe named before anything starts.

use platform::testing::cli::{Binary, SHARED_SETTINGS};

const BINARY: Binary<'static> = Binary {
    path: env!("CARGO_BIN_EXE_billing-svc"),
    config_sources: &[
        include_str!("../../src/config.rs"),
        include_str!("../../../platform/src/config.rs"),
    ],
};

platform::command_line_tests!(BINARY);

/// Everything `check-config` needs with real Stripe, every price id included.
const REAL_STRIPE: &[(&str, &str)] = &[
    ("STRIPE_SECRET_KEY", "sk_test_hunter2"),
    ("STRIPE_WEBHOOK_SECRET", "whsec_hunter2"),
    // Real Stripe: every price id is required.
    ("STRIPE_PRICE_ID_GROWER", "price_live_grower"),
    ("STRIPE_PRICE_ID_GROWER_ANNUAL", "price_live_grower_annual"),
    ("STRIPE_PRICE_ID_BUILDER", "price_live_builder"),
    ("STRIPE_PRICE_ID_BUILDER_ANNUAL", "price_live_builder_annual"),
    ("STRIPE_PRICE_ID_MAVEN", "price_live_maven"),
    ("STRIPE_PRICE_ID_MAVEN_ANNUAL", "price_live_maven_annual"),
];

#[test]
fn check_config_prints_the_settings_with_secrets_masked() {
    BINARY.assert_check_config_masks(REAL_STRIPE, &["0.0.0.0:50053"], &["sk_test_hunter2", "whsec_hunter2"]);
}

#[test]
fn with_real_stripe_check_config_names_a_missing_price_id_and_fails() {
    let missing = "STRIPE_PRICE_ID_BUILDER_ANNUAL";
    let output = std::process::Command::new(BINARY.path)
        .arg("check-config")
        .env_clear()
        .envs(
            SHARED_SETTINGS
                .iter()
                .chain(REAL_STRIPE)
                .copied()
                .filter(|(name, _)| *name != missing),
        )
        .output()
        .expect("billing-svc runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "check-config accepted it:\n{text}");
    assert!(text.contains(missing), "the refusal should name {missing}:\n{text}");
}
