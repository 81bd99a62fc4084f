//! Everything a notify operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::Refusal;
use tonic::{Code, Status};

use crate::templates::RenderError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// INVALID_ARGUMENT, reason `INVALID_FIELD`; `field` names the culprit
    /// (`recipient`, `variables.link`, …).
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    /// NOT_FOUND, reason `MESSAGE_NOT_FOUND`.
    #[error("message not found")]
    MessageNotFound,
    /// A refusal made by shared code (authentication, authorization), passed
    /// through as is: TOKEN_INVALID, ADMIN_REQUIRED.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// INTERNAL: logged with its cause chain, opaque to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<RenderError> for Error {
    fn from(err: RenderError) -> Self {
        match err {
            RenderError::InvalidVariable { field, message } => Self::InvalidField { field, message },
            broken @ RenderError::Template { .. } => Self::Internal(broken.into()),
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::InvalidField { field, message } => Refusal::invalid_field(&field, message),
            Error::MessageNotFound => Refusal::new(Code::NotFound, "MESSAGE_NOT_FOUND", "Message not found."),
            Error::Refused(refusal) => refusal,
            Error::Internal(err) => return platform::error::internal(&err),
        };
        refusal.into()
    }
}
