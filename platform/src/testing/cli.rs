//! The command line every binary of the mesh promises, checked the same way
//! for each: `--help` and `--version` need no environment, the help names
//! every setting the binary's config reads, unknown arguments are refused,
//! and `check-config` never prints a secret.

use std::process::{Command, Output};

/// A binary under test: its path (`env!("CARGO_BIN_EXE_…")`) and the
/// sources of the config modules it reads its settings in.
#[derive(Debug)]
pub struct Binary<'a> {
    pub path: &'a str,
    pub config_sources: &'a [&'a str],
}

impl Binary<'_> {
    fn run(&self, args: &[&str], environment: &[(&str, &str)]) -> Output {
        Command::new(self.path)
            .args(args)
            .env_clear()
            .envs(environment.iter().copied())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.path))
    }

    /// `--help` and `--version` answer with an empty environment, and the
    /// help lists every variable the config sources read.
    pub fn assert_help_needs_no_environment(&self) {
        let help = self.run(&["--help"], &[]);
        assert!(help.status.success(), "--help failed: {help:?}");
        let text = String::from_utf8_lossy(&help.stdout);
        for source in self.config_sources {
            for name in crate::cli::variables_named_in(source) {
                assert!(text.contains(name), "--help does not mention {name}:\n{text}");
            }
        }
        let version = self.run(&["--version"], &[]);
        assert!(version.status.success(), "--version failed: {version:?}");
        let text = String::from_utf8_lossy(&version.stdout);
        assert!(text.contains(env!("CARGO_PKG_VERSION")), "--version printed {text:?}");
    }

    /// An unknown option or command is refused (clap's usage error, exit
    /// code 2) before anything starts.
    pub fn assert_unknown_arguments_refused(&self) {
        for args in [&["--no-such-option"][..], &["no-such-command"]] {
            let output = self.run(args, &[]);
            assert_eq!(output.status.code(), Some(2), "{args:?} was not refused: {output:?}");
            let error = String::from_utf8_lossy(&output.stderr);
            assert!(
                error.contains(args[0]),
                "the refusal should name {:?}: {error}",
                args[0]
            );
        }
    }

    /// `check-config` with the settings every binary shares (in
    /// [`SHARED_SETTINGS`]) and `own` succeeds, prints `shown`, and prints
    /// none of the shared secrets nor `own_secrets`.
    pub fn assert_check_config_masks(&self, own: &[(&str, &str)], shown: &[&str], own_secrets: &[&str]) {
        let environment: Vec<(&str, &str)> = SHARED_SETTINGS.iter().chain(own).copied().collect();
        let output = self.run(&["check-config"], &environment);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "check-config failed:\n{text}");
        for value in shown {
            assert!(text.contains(value), "check-config should show {value}:\n{text}");
        }
        assert!(text.contains("[redacted]"), "{text}");
        for secret in SHARED_SECRETS.iter().chain(own_secrets) {
            assert!(!text.contains(secret), "check-config printed a secret:\n{text}");
        }
    }
}

/// Settings every binary reads, each secret one marked `hunter2`.
pub const SHARED_SETTINGS: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://app:hunter2-db@db.internal:5432/app"),
    ("REDIS_URL", "rediss://:hunter2-redis@redis.internal:6380"),
    ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----"),
    ("INTERNAL_API_TOKEN", "hunter2-internal"),
];
const SHARED_SECRETS: &[&str] = &["hunter2-db", "hunter2-redis", "hunter2-internal"];

/// The two tests every binary gets alike, given its [`Binary`]:
/// `command_line_tests!(BINARY);` in the crate's tests.
#[macro_export]
macro_rules! command_line_tests {
    ($binary:expr) => {
        #[test]
        fn help_and_version_need_no_environment_and_name_every_setting() {
            $binary.assert_help_needs_no_environment();
        }

        #[test]
        fn unknown_arguments_are_refused_before_anything_starts() {
            $binary.assert_unknown_arguments_refused();
        }
    };
}
