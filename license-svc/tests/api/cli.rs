//! The license-svc binary's command line: help without environment, unknown
//! arguments refused, secrets masked by `check-config`.

use platform::testing::cli::Binary;

const BINARY: Binary<'static> = Binary {
    path: env!("CARGO_BIN_EXE_license-svc"),
    config_sources: &[
        include_str!("../../src/config.rs"),
        include_str!("../../../platform/src/config.rs"),
    ],
};

platform::command_line_tests!(BINARY);

#[test]
fn check_config_prints_the_settings_with_secrets_masked() {
    BINARY.assert_check_config_masks(&[], &["0.0.0.0:50052"], &[]);
}
