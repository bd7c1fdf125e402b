//! The HTTP/2 headers of a gRPC call: checking a request's head, and
//! building response headers, trailers and Trailers-Only responses.
//!
//! A request is refused before its method runs when it is not a `POST`
//! (HTTP 405), when its content-type does not begin with `application/grpc`
//! (HTTP 415, as the gRPC HTTP/2 protocol asks, so plain HTTP clients do not
//! take the answer for a success), when its path names no method (HTTP 200,
//! `grpc-status 12`) or when its `grpc-timeout` is malformed. Every refusal
//! is an ordinary response carrying `grpc-status`; none is a stream reset.
//! This module builds values only: sending them is the server's job.

use std::time::Duration;

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::percent::encode_status_message;
use super::timeout::parse_timeout;
use super::{lookup, Code, Method, Status};

/// The content-type of every gRPC request and response.
pub const GRPC_CONTENT_TYPE: &str = "application/grpc";

const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// A request that passed the checks: the method to run and how long the
/// client waits for it.
pub struct Accepted<S: 'static> {
    pub method: &'static Method<S>,
    pub timeout: Option<Duration>,
}

impl<S> std::fmt::Debug for Accepted<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("method", &self.method.path)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A request refused before its method runs, and the answer it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub http_status: StatusCode,
    pub status: Status,
}

impl Refusal {
    fn grpc(status: Status) -> Refusal {
        Refusal {
            http_status: StatusCode::OK,
            status,
        }
    }

    /// The Trailers-Only response that answers the refused request.
    pub fn response(&self) -> Response<()> {
        let mut response = trailers_only(&self.status);
        *response.status_mut() = self.http_status;
        if self.http_status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// Checks a request head and finds its method in `methods`.
pub fn check_request<S>(
    head: &http::request::Parts,
    methods: &'static [Method<S>],
) -> Result<Accepted<S>, Refusal> {
    if head.method != http::Method::POST {
        return Err(Refusal {
            http_status: StatusCode::METHOD_NOT_ALLOWED,
            status: Status::unimplemented(format!(
                "HTTP method {} is not allowed: gRPC calls use POST",
                head.method
            )),
        });
    }
    let content_type = head
        .headers
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !content_type.starts_with(GRPC_CONTENT_TYPE.as_bytes()) {
        return Err(Refusal {
            http_status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            status: Status::invalid_argument(format!(
                "content-type {:?} is not {GRPC_CONTENT_TYPE}",
                String::from_utf8_lossy(content_type)
            )),
        });
    }
    let path = head.uri.path();
    let method = lookup(methods, path)
        .ok_or_else(|| Refusal::grpc(Status::unimplemented(format!("unknown method {path}"))))?;
    let timeout = match head.headers.get(GRPC_TIMEOUT) {
        Some(value) => Some(parse_timeout(value.as_bytes()).map_err(Refusal::grpc)?),
        None => None,
    };
    Ok(Accepted { method, timeout })
}

/// The headers that open a response carrying messages.
pub fn response_headers() -> Response<()> {
    let mut response = Response::new(());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(GRPC_CONTENT_TYPE));
    response
}

/// The trailers that end a response: `grpc-status`, and `grpc-message`
/// when there is one.
pub fn trailers(outcome: Result<(), &Status>) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    put_status(&mut trailers, outcome);
    trailers
}

/// A response made of a single HEADERS frame: status 200, the
/// content-type and the status trailers, for calls that end without a
/// message.
pub fn trailers_only(status: &Status) -> Response<()> {
    let mut response = response_headers();
    put_status(response.headers_mut(), Err(status));
    response
}

fn put_status(headers: &mut HeaderMap, outcome: Result<(), &Status>) {
    let (code, message) = match outcome {
        Ok(()) => (Code::Ok, ""),
        Err(status) => (status.code, status.message.as_str()),
    };
    headers.insert(GRPC_STATUS, HeaderValue::from_static(code.as_str()));
    if !message.is_empty() {
        // Percent-encoding leaves only bytes 0x20..=0x7E, all valid in a
        // header value, so the conversion cannot fail.
        if let Ok(value) = HeaderValue::try_from(encode_status_message(message)) {
            headers.insert(GRPC_MESSAGE, value);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::{CallContext, Handler};

    struct Service;

    fn echo(_: &Service, _: &CallContext, _: &[u8], _: &mut bytes::BytesMut) -> Result<(), Status> {
        Ok(())
    }

    static METHODS: &[Method<Service>] = &[
        Method {
            path: "/test.Echo/A",
            handler: Handler::Unary(echo),
        },
        Method {
            path: "/test.Echo/B",
            handler: Handler::Unary(echo),
        },
    ];

    fn head(method: &str, path: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn grpc_head(path: &str, extra: &[(&str, &str)]) -> http::request::Parts {
        let mut headers = vec![("content-type", "application/grpc")];
        headers.extend_from_slice(extra);
        head("POST", path, &headers)
    }

    #[test]
    fn known_method_is_accepted_without_timeout() {
        let accepted = check_request(&grpc_head("/test.Echo/B", &[]), METHODS).unwrap();
        assert_eq!(accepted.method.path, "/test.Echo/B");
        assert_eq!(accepted.timeout, None);
    }

    #[test]
    fn content_type_with_suffix_is_accepted() {
        let parts = head(
            "POST",
            "/test.Echo/A",
            &[("content-type", "application/grpc+proto")],
        );
        assert!(check_request(&parts, METHODS).is_ok());
    }

    #[test]
    fn timeout_is_read_from_the_request() {
        let accepted = check_request(
            &grpc_head("/test.Echo/A", &[("grpc-timeout", "100m")]),
            METHODS,
        )
        .unwrap();
        assert_eq!(accepted.timeout, Some(Duration::from_millis(100)));
    }

    #[test]
    fn malformed_timeout_is_refused_with_internal() {
        let refusal = check_request(
            &grpc_head("/test.Echo/A", &[("grpc-timeout", "soon")]),
            METHODS,
        )
        .unwrap_err();
        assert_eq!(refusal.http_status, StatusCode::OK);
        assert_eq!(refusal.status.code, Code::Internal);
    }

    #[test]
    fn unknown_path_is_unimplemented_and_named() {
        let refusal = check_request(&grpc_head("/test.Echo/Missing", &[]), METHODS).unwrap_err();
        assert_eq!(refusal.http_status, StatusCode::OK);
        assert_eq!(
            refusal.status,
            Status::unimplemented("unknown method /test.Echo/Missing")
        );
        let response = refusal.response();
        assert_eq!(response.headers()["grpc-status"], "12");
        assert_eq!(
            response.headers()["grpc-message"],
            "unknown method /test.Echo/Missing"
        );
    }

    #[test]
    fn non_grpc_content_type_gets_http_415() {
        let parts = head(
            "POST",
            "/test.Echo/A",
            &[("content-type", "application/json")],
        );
        let refusal = check_request(&parts, METHODS).unwrap_err();
        assert_eq!(refusal.http_status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(
            refusal.response().status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
    }

    #[test]
    fn missing_content_type_gets_http_415() {
        let refusal = check_request(&head("POST", "/test.Echo/A", &[]), METHODS).unwrap_err();
        assert_eq!(refusal.http_status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn other_http_methods_get_405_with_allow_post() {
        let parts = head(
            "GET",
            "/test.Echo/A",
            &[("content-type", "application/grpc")],
        );
        let response = check_request(&parts, METHODS).unwrap_err().response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()["allow"], "POST");
        assert_eq!(response.headers()["grpc-status"], "12");
    }

    #[test]
    fn response_headers_are_status_200_and_grpc_content_type() {
        let response = response_headers();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers().len(), 1);
    }

    #[test]
    fn ok_trailers_carry_status_zero_and_no_message() {
        let trailers = trailers(Ok(()));
        assert_eq!(trailers["grpc-status"], "0");
        assert!(trailers.get("grpc-message").is_none());
    }

    #[test]
    fn error_trailers_carry_the_percent_encoded_message() {
        let trailers = trailers(Err(&Status::not_found("container \"x\" is 100% gone\n")));
        assert_eq!(trailers["grpc-status"], "5");
        assert_eq!(
            trailers["grpc-message"],
            "container \"x\" is 100%25 gone%0A"
        );
    }

    #[test]
    fn trailers_only_holds_status_content_type_and_grpc_status_together() {
        let response = trailers_only(&Status::internal("boom"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], "13");
        assert_eq!(response.headers()["grpc-message"], "boom");
    }
}
