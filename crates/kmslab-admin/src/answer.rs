//! The one error answer of every admin API (kms-host, kms-client, the lab control API, the
//! activation service, and the guard's own refusals): an HTTP status and the JSON body
//! docs/interfaces.md gives each API.
//!
//! - [`ApiError::new`], [`ApiError::code`], [`ApiError::refusal`]: kms-client's form, which
//!   the lab control API and the activation service answer too:
//!   `{"error":TEXT,"hresult":"0x........"|null,"name":SYMBOL|null}`;
//! - [`ApiError::plain`]: kms-host's form, which the guard answers too:
//!   `{"error":TEXT,"hresult":"0x........"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kmslab_core::hresult::HResult;
use serde_json::json;

/// An answer that is not a success.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `error` text.
    pub message: String,
    /// The `hresult` (and with it the `name`), when there is one.
    pub hresult: Option<HResult>,
    form: Form,
}

/// Which body shape the answer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `error`, `hresult` (or null) and `name` (or null).
    Named,
    /// `error` and `hresult` only.
    Plain,
}

impl ApiError {
    /// A failure without an HRESULT (`hresult` and `name` are null).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), hresult: None, form: Form::Named }
    }

    /// A failure that is `code`, explained by the core's table: `0x.... NAME: meaning`.
    pub fn code(status: StatusCode, code: HResult) -> Self {
        let meaning = code.info().map_or("", |i| i.meaning);
        Self::refusal(status, code, meaning)
    }

    /// A failure that is `code`, with its own explanation: `0x.... NAME: detail`.
    pub fn refusal(status: StatusCode, code: HResult, detail: impl std::fmt::Display) -> Self {
        Self::with_hresult(status, format!("{code} {}: {detail}", code.name()), Some(code))
    }

    /// A failure of these parts (`hresult` null when `None`), in kms-client's form.
    pub fn with_hresult(status: StatusCode, message: impl Into<String>, hresult: Option<HResult>) -> Self {
        ApiError { status, message: message.into(), hresult, form: Form::Named }
    }

    /// kms-host's form: `{"error": message, "hresult": code}`, no `name`.
    pub fn plain(status: StatusCode, code: HResult, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), hresult: Some(code), form: Form::Plain }
    }

    /// The message followed by `: detail`.
    #[must_use]
    pub fn detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.message = format!("{}: {detail}", self.message);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let hresult = self.hresult.map(|h| h.to_string());
        match self.form {
            Form::Named => json!({ "error": self.message, "hresult": hresult, "name": self.hresult.map(HResult::name) }),
            Form::Plain => json!({ "error": self.message, "hresult": hresult }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_forms_have_the_documented_fields() {
        let e = ApiError::code(StatusCode::CONFLICT, HResult::NO_PRODUCT_KEY);
        let body = e.body();
        assert_eq!(body["hresult"], "0xC004F014");
        assert_eq!(body["name"], HResult::NO_PRODUCT_KEY.name());
        assert!(body["error"].as_str().unwrap().starts_with("0xC004F014 "), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 3);

        let body = ApiError::new(StatusCode::NOT_FOUND, "no machine named \"x\"").body();
        assert_eq!(body, json!({ "error": "no machine named \"x\"", "hresult": null, "name": null }));

        let body = ApiError::plain(StatusCode::BAD_REQUEST, HResult::INVALID_ARG, "invalid id").body();
        assert_eq!(body, json!({ "error": "invalid id", "hresult": "0x80070057" }));

        let body = ApiError::refusal(StatusCode::BAD_REQUEST, HResult::MAK_BLOCKED, "blocked").detail("key X").body();
        assert_eq!(body["error"], "0xC004C003 SL_E_CHPA_PRODUCT_KEY_BLOCKED: blocked: key X");
    }
}
