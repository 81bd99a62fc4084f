//! Everything a notify operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::{Failure, Refusal, reason};

use crate::templates::RenderError;

platform::service_error! {
    pub enum Error {
        /// NOT_FOUND, reason `MESSAGE_NOT_FOUND`.
        #[error("message not found")]
        MessageNotFound,
    }
}

impl From<RenderError> for Error {
    fn from(err: RenderError) -> Self {
        match err {
            RenderError::InvalidVariable { field, message } => Self::invalid(&field, message),
            broken @ RenderError::Template { .. } => anyhow::Error::from(broken).into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::MessageNotFound => Refusal::not_found(reason::MESSAGE_NOT_FOUND, "Message not found.").into(),
            Error::Failed(failure) => failure,
        }
    }
}
