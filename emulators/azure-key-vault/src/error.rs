//! Key Vault error responses: an HTTP status and the body
//! `{"error": {"code": "...", "message": "...", "innererror": {"code": "..."}}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub inner_code: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            inner_code: None,
        }
    }

    fn with_inner(mut self, inner_code: &str) -> Self {
        self.inner_code = Some(inner_code.to_owned());
        self
    }

    pub fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "BadParameter", message)
    }

    pub fn secret_not_found(name: &str) -> Self {
        Self::new(
            404,
            "SecretNotFound",
            format!("A secret with (name/id) {name} was not found in this key vault."),
        )
    }

    pub fn version_not_found(name: &str, version: &str) -> Self {
        Self::new(
            404,
            "SecretNotFound",
            format!("A secret with (name/id) {name}/{version} was not found in this key vault."),
        )
    }

    pub fn deleted_secret_not_found(name: &str) -> Self {
        Self::new(404, "SecretNotFound", format!("Deleted Secret not found: {name}"))
    }

    pub fn secret_disabled() -> Self {
        Self::new(403, "Forbidden", "Operation get is not allowed on a disabled secret.").with_inner("SecretDisabled")
    }

    pub fn deleted_but_recoverable(name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; \
                 in this state, the secret can only be recovered or purged."
            ),
        )
        .with_inner("ObjectIsDeletedButRecoverable")
    }

    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(inner) = &self.inner_code {
            error["innererror"] = serde_json::json!({"code": inner});
        }
        serde_json::json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_inner_error_only_when_set() {
        let disabled = ApiError::secret_disabled().body();
        assert_eq!(disabled["error"]["code"], "Forbidden");
        assert_eq!(disabled["error"]["innererror"]["code"], "SecretDisabled");

        let missing = ApiError::secret_not_found("db").body();
        assert_eq!(missing["error"]["code"], "SecretNotFound");
        assert!(missing["error"].get("innererror").is_none(), "{missing}");
    }
}
