//! The command lines of the mesh's own binaries: help without environment,
//! every setting named, unknown arguments refused.

use platform::testing::cli::Binary;

mod stripe_double {
    use super::Binary;

    const BINARY: Binary<'static> = Binary {
        path: env!("CARGO_BIN_EXE_stripe-double"),
        config_sources: &[include_str!("../src/bin/stripe-double.rs")],
    };

    platform::command_line_tests!(BINARY);
}

mod mesh {
    use super::Binary;

    const BINARY: Binary<'static> = Binary {
        path: env!("CARGO_BIN_EXE_mesh"),
        config_sources: &[include_str!("../src/main.rs")],
    };

    platform::command_line_tests!(BINARY);
}
