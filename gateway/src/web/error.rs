//! The one error page: what went wrong in the customer's words, and the
//! request id so support can find the trace.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use minijinja::context;

use super::Web;
use crate::problem::Problem;

/// A page that cannot be shown; rendered by [`render_errors`](super::render_errors).
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl PageError {
    pub fn csrf() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "This form has expired",
            detail: "For your security the form could not be accepted. Go back, reload the page and try again.".into(),
        }
    }

    pub fn admins_only() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "For administrators only",
            detail: "This page is for the support team. You are signed in with an account that cannot open it.".into(),
        }
    }

    /// A request the page refuses, saying why (a console action tells it
    /// in its notice).
    pub fn refused(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "That did not work",
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            detail: detail.into(),
        }
    }

    pub fn bad_form() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Something is missing",
            detail: "The form was incomplete. Go back and try again.".into(),
        }
    }

    /// The error page itself.
    pub fn into_page(self, web: &Web, request_id: &str) -> Response {
        let body = context! {
            title => self.title,
            detail => self.detail,
            status => self.status.as_u16(),
            request_id => request_id,
        };
        web.render_status(self.status, "error.html", body)
    }
}

impl From<Problem> for PageError {
    fn from(problem: Problem) -> Self {
        let status = problem.status_code();
        let title = match status.as_u16() {
            503 => "Please try again",
            429 => "Too many attempts",
            s if s >= 500 => "Something went wrong",
            404 => "Not found",
            _ => "That did not work",
        };
        let detail = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            "Something went wrong on our side. Please try again in a moment.".to_owned()
        } else {
            problem.detail
        };
        Self { status, title, detail }
    }
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        Problem::from(status).into()
    }
}

/// Handed up to the middleware that knows the templates and the request id.
impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
