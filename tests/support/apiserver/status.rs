//! Errors as the API server answers them: a `Status` object with `code`,
//! `reason` and `message`, as the body of an error response or as the
//! object of a watch `ERROR` event.

use std::convert::Infallible;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Every response the fake sends.
pub(super) type Reply = Response<BoxBody<Bytes, Infallible>>;

/// A failure, as a `Status` object.
#[derive(Debug)]
pub(super) struct Status {
    code: u16,
    reason: &'static str,
    message: String,
}

// === impl Status ===

impl Status {
    pub(super) fn bad_request(message: impl Into<String>) -> Status {
        Status { code: 400, reason: "BadRequest", message: message.into() }
    }

    pub(super) fn unauthorized() -> Status {
        Status { code: 401, reason: "Unauthorized", message: "Unauthorized".into() }
    }

    pub(super) fn not_found(message: impl Into<String>) -> Status {
        Status { code: 404, reason: "NotFound", message: message.into() }
    }

    /// What the API server answers for a path it does not serve.
    pub(super) fn no_such_path() -> Status {
        Status::not_found("the server could not find the requested resource")
    }

    pub(super) fn method_not_allowed() -> Status {
        let message = "the server does not allow this method on the requested resource";
        Status { code: 405, reason: "MethodNotAllowed", message: message.into() }
    }

    /// 410 Gone: a resourceVersion or continue token older than the last
    /// compaction.
    pub(super) fn expired(message: impl Into<String>) -> Status {
        Status { code: 410, reason: "Expired", message: message.into() }
    }

    /// 422: options the API server's validation refuses.
    pub(super) fn invalid(message: impl Into<String>) -> Status {
        Status { code: 422, reason: "Invalid", message: message.into() }
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }

    pub(super) fn reply(&self) -> Reply {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_reply(code, &self.to_json())
    }
}

/// `body` as an `application/json` response.
pub(super) fn json_reply(code: StatusCode, body: &Value) -> Reply {
    let bytes = serde_json::to_vec(body).expect("a JSON value serialises");
    let mut reply = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *reply.status_mut() = code;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// A 200 `application/json` response.
pub(super) fn ok(body: &Value) -> Reply {
    json_reply(StatusCode::OK, body)
}
