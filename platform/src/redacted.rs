//! Values that identify a person or grant access (an email address, a
//! license key) are newtypes over their one spelling. Spans record their
//! fields with `Debug`, so that `Debug` never shows the value; `Display` and
//! `as_str` give it to the code that must send or store it.

/// Gives the newtype `$name(String)` its `as_str`, a `Display` that writes the
/// value and a `Debug` that writes only `$name(redacted)`.
macro_rules! redacted_text {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Spans record their fields with `Debug`: the value never reaches telemetry.
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(redacted)"))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use redacted_text;
