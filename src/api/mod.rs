//! Rust code for the CRI `runtime.v1` API, generated from proto/api.proto by
//! `cargo xtask codegen` (see proto/README.md): the message types in [`v1`]
//! and the service traits and method table in [`services`].
//!
//! Only this file is written by hand. It adds what generation cannot: a
//! `Debug` for [`v1::AuthConfig`] that keeps registry secrets out of logs.
//! Nothing here performs I/O.

use std::fmt;

/// Every message and enum of the `runtime.v1` package.
pub mod v1 {
    include!("runtime.v1.rs");
}

pub mod services;

/// Shown instead of a secret that is set; an empty one is shown as empty so
/// a log still tells "no password" from "a password".
const REDACTED: &str = "<redacted>";

fn redact(secret: &str) -> &str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

impl fmt::Debug for v1::AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("auth", &redact(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &redact(&self.identity_token))
            .field("registry_token", &redact(&self.registry_token))
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;

    use bytes::BytesMut;
    use prost::Message;

    use super::services::{ImageService, RuntimeService, Services, Sink, METHODS};
    use super::v1;
    use crate::grpc::{CallContext, Code, Handler, MessageSink, Status};

    const PROTO: &str = include_str!("../../proto/api.proto");

    /// Every rpc in proto/api.proto as (`/package.Service/Method`, streams replies).
    fn rpcs_in_proto() -> Vec<(String, bool)> {
        let mut service = "";
        let mut rpcs = Vec::new();
        for line in PROTO.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.trim_end_matches('{').trim();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim();
                let streaming = line.contains("returns (stream ");
                rpcs.push((format!("/runtime.v1.{service}/{name}"), streaming));
            }
        }
        rpcs
    }

    struct Unimplemented;
    impl RuntimeService for Unimplemented {}
    impl ImageService for Unimplemented {}

    struct Recorded;
    impl RuntimeService for Recorded {
        fn version(
            &self,
            _ctx: &CallContext,
            request: v1::VersionRequest,
        ) -> Result<v1::VersionResponse, Status> {
            Ok(v1::VersionResponse {
                version: request.version,
                runtime_name: "docker".to_string(),
                ..Default::default()
            })
        }

        fn get_container_events(
            &self,
            _ctx: &CallContext,
            _request: v1::GetEventsRequest,
            sink: &mut Sink<'_, v1::ContainerEventResponse>,
        ) -> Result<(), Status> {
            for id in ["a", "b"] {
                sink.send(&v1::ContainerEventResponse {
                    container_id: id.to_string(),
                    ..Default::default()
                })?;
            }
            Ok(())
        }
    }
    impl ImageService for Recorded {}

    fn services(runtime: impl RuntimeService, image: impl ImageService) -> Services {
        Services {
            runtime: std::sync::Arc::new(runtime),
            image: std::sync::Arc::new(image),
        }
    }

    fn method(path: &str) -> &'static Handler<Services> {
        &crate::grpc::lookup(METHODS, path)
            .expect("method is in the table")
            .handler
    }

    #[derive(Default)]
    struct CollectingSink(Vec<Vec<u8>>);
    impl MessageSink for CollectingSink {
        fn send(&mut self, message: &[u8]) -> Result<(), Status> {
            self.0.push(message.to_vec());
            Ok(())
        }
    }

    #[test]
    fn method_table_is_sorted_by_path() {
        assert!(METHODS.windows(2).all(|pair| pair[0].path < pair[1].path));
    }

    #[test]
    fn method_table_has_one_row_per_rpc_in_the_proto() {
        let proto = rpcs_in_proto();
        assert_eq!(
            proto
                .iter()
                .filter(|(p, _)| p.contains(".RuntimeService/"))
                .count(),
            35
        );
        assert_eq!(
            proto
                .iter()
                .filter(|(p, _)| p.contains(".ImageService/"))
                .count(),
            6
        );

        let expected: BTreeSet<(String, bool)> = proto.into_iter().collect();
        let table: BTreeSet<(String, bool)> = METHODS
            .iter()
            .map(|m| {
                (
                    m.path.to_string(),
                    matches!(m.handler, Handler::ServerStreaming(_)),
                )
            })
            .collect();
        assert_eq!(table, expected);
        assert_eq!(METHODS.len(), 41);
    }

    #[test]
    fn unimplemented_method_answers_unimplemented_naming_the_method() {
        let services = services(Unimplemented, Unimplemented);
        let ctx = CallContext::new("/runtime.v1.ImageService/PullImage", None);
        let Handler::Unary(pull) = method("/runtime.v1.ImageService/PullImage") else {
            panic!("PullImage is unary");
        };
        let status = pull(&services, &ctx, &[], &mut BytesMut::new()).unwrap_err();
        assert_eq!(status.code, Code::Unimplemented);
        assert!(
            status.message.contains("runtime.v1.ImageService/PullImage"),
            "{status}"
        );
    }

    #[test]
    fn unary_dispatch_decodes_request_and_encodes_reply() {
        let services = services(Recorded, Unimplemented);
        let ctx = CallContext::new("/runtime.v1.RuntimeService/Version", None);
        let request = v1::VersionRequest {
            version: "v1".to_string(),
        }
        .encode_to_vec();
        let mut reply = BytesMut::from(&b"kept"[..]);
        let Handler::Unary(version) = method("/runtime.v1.RuntimeService/Version") else {
            panic!("Version is unary");
        };
        version(&services, &ctx, &request, &mut reply).unwrap();

        assert_eq!(
            &reply[..4],
            b"kept",
            "the reply is appended, not overwritten"
        );
        let response = v1::VersionResponse::decode(&reply[4..]).unwrap();
        assert_eq!(response.version, "v1");
        assert_eq!(response.runtime_name, "docker");
    }

    #[test]
    fn undecodable_request_is_invalid_argument_naming_the_message() {
        let services = services(Unimplemented, Unimplemented);
        let ctx = CallContext::new("/runtime.v1.RuntimeService/Version", None);
        let Handler::Unary(version) = method("/runtime.v1.RuntimeService/Version") else {
            panic!("Version is unary");
        };
        // Field 1 claims 10 bytes of string but the body ends after 1.
        let status =
            version(&services, &ctx, &[0x0a, 0x0a, b'x'], &mut BytesMut::new()).unwrap_err();
        assert_eq!(status.code, Code::InvalidArgument);
        assert!(
            status.message.contains("runtime.v1.VersionRequest"),
            "{status}"
        );
    }

    #[test]
    fn streaming_dispatch_sends_each_message_through_the_sink() {
        let services = services(Recorded, Unimplemented);
        let ctx = CallContext::new("/runtime.v1.RuntimeService/GetContainerEvents", None);
        let Handler::ServerStreaming(events) =
            method("/runtime.v1.RuntimeService/GetContainerEvents")
        else {
            panic!("GetContainerEvents streams");
        };
        let mut sink = CollectingSink::default();
        events(&services, &ctx, &[], &mut sink).unwrap();

        let ids: Vec<String> = sink
            .0
            .iter()
            .map(|bytes| {
                v1::ContainerEventResponse::decode(&bytes[..])
                    .unwrap()
                    .container_id
            })
            .collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn auth_config_debug_hides_every_secret() {
        let auth = v1::AuthConfig {
            username: "alice".to_string(),
            password: "hunter2-password".to_string(),
            auth: "YWxpY2U6aHVudGVyMg==".to_string(),
            server_address: "registry.example".to_string(),
            identity_token: "identity-token-secret".to_string(),
            registry_token: "registry-token-secret".to_string(),
        };
        let shown = format!("{auth:?}");
        for secret in [
            &auth.password,
            &auth.auth,
            &auth.identity_token,
            &auth.registry_token,
        ] {
            assert!(!shown.contains(secret.as_str()), "{shown} leaks {secret}");
        }
        assert!(
            shown.contains("alice") && shown.contains("registry.example"),
            "{shown}"
        );
        assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");

        let pretty = format!("{auth:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }

    #[test]
    fn auth_config_debug_shows_unset_secrets_as_empty() {
        let auth = v1::AuthConfig {
            username: "bob".to_string(),
            ..Default::default()
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("password: \"\""), "{shown}");
    }
}
