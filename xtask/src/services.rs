//! Generates src/api/services.rs from the service descriptors: one trait
//! per CRI service (a method per rpc, answering `UNIMPLEMENTED` by default),
//! a private dispatcher per rpc, and the sorted `METHODS` table the server
//! binary-searches. Only unary and server-streaming rpcs exist in the CRI;
//! any other shape is refused rather than silently mis-generated.
//!
//! The rpcs in [`ANSWERED_ENCODED`] return an `Answer`, which may carry a
//! reply encoded earlier: the kubelet asks them every second, and a
//! runtime can keep their encoded answers while nothing changed. Each also
//! has an `_at_hand` trait method, asked first on the connection's thread,
//! that gives such a kept answer when it has one without waiting.

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_types::{FileDescriptorProto, FileDescriptorSet};

use crate::XtaskError;

/// The proto package whose services are generated.
const PACKAGE: &str = "runtime.v1";
/// The Rust module (beside services.rs) that holds that package's messages.
const MESSAGES_MODULE: &str = "v1";
/// Field numbers in `FileDescriptorProto` and `ServiceDescriptorProto`, used
/// to find comments in `SourceCodeInfo` paths.
const FILE_SERVICE_FIELD: i32 = 6;
const SERVICE_METHOD_FIELD: i32 = 2;
/// Unary rpcs whose trait method returns `Answer<Reply>` instead of the
/// reply message, by proto name.
const ANSWERED_ENCODED: &[&str] = &["ListContainers", "ListPodSandbox"];

/// One service as it appears in the generated code.
struct ServiceSpec {
    /// `RuntimeService`: the proto name, also the trait name.
    name: String,
    /// `runtime`: the `Services` field and the dispatcher prefix.
    field: String,
    doc: Vec<String>,
    rpcs: Vec<RpcSpec>,
}

/// One rpc as it appears in the generated code.
struct RpcSpec {
    /// `/runtime.v1.RuntimeService/Version`
    path: String,
    /// `runtime.v1.RuntimeService/Version`, for the unimplemented message.
    full_name: String,
    /// `version`
    method: String,
    /// `runtime_version`
    dispatcher: String,
    /// `VersionRequest`, in the messages module.
    input: String,
    output: String,
    server_streaming: bool,
    /// Listed in [`ANSWERED_ENCODED`].
    answered_encoded: bool,
    doc: Vec<String>,
}

/// Returns the formatted-later Rust source of services.rs.
pub fn generate(descriptors: &FileDescriptorSet) -> Result<String, XtaskError> {
    let file = descriptors
        .file
        .iter()
        .find(|file| file.package() == PACKAGE)
        .ok_or_else(|| XtaskError::Descriptor(format!("no file declares package {PACKAGE}")))?;
    let services = collect(file)?;
    Ok(render(&services))
}

fn collect(file: &FileDescriptorProto) -> Result<Vec<ServiceSpec>, XtaskError> {
    let mut services = Vec::new();
    for (service_index, service) in file.service.iter().enumerate() {
        let name = service.name().to_string();
        let field = name
            .strip_suffix("Service")
            .unwrap_or(&name)
            .to_snake_case();
        let service_path = [FILE_SERVICE_FIELD, index_i32(service_index)?];
        let mut rpcs = Vec::new();
        for (method_index, method) in service.method.iter().enumerate() {
            if method.client_streaming() {
                return Err(XtaskError::Descriptor(format!(
                    "{name}/{} streams from the client, which dockshim cannot serve",
                    method.name()
                )));
            }
            let method_name = method.name().to_snake_case();
            let method_path = [
                service_path[0],
                service_path[1],
                SERVICE_METHOD_FIELD,
                index_i32(method_index)?,
            ];
            rpcs.push(RpcSpec {
                path: format!("/{PACKAGE}.{name}/{}", method.name()),
                full_name: format!("{PACKAGE}.{name}/{}", method.name()),
                dispatcher: format!("{field}_{method_name}"),
                method: method_name,
                input: message_type(method.input_type())?,
                output: message_type(method.output_type())?,
                server_streaming: method.server_streaming(),
                answered_encoded: ANSWERED_ENCODED.contains(&method.name()),
                doc: comment(file, &method_path),
            });
        }
        services.push(ServiceSpec {
            doc: comment(file, &service_path),
            name,
            field,
            rpcs,
        });
    }
    if services.is_empty() {
        return Err(XtaskError::Descriptor(format!(
            "package {PACKAGE} declares no service"
        )));
    }
    Ok(services)
}

fn index_i32(index: usize) -> Result<i32, XtaskError> {
    i32::try_from(index).map_err(|_| XtaskError::Descriptor(format!("index {index} overflows")))
}

/// `.runtime.v1.VersionRequest` → `VersionRequest`, named as prost-build names it.
fn message_type(proto_name: &str) -> Result<String, XtaskError> {
    proto_name
        .strip_prefix('.')
        .and_then(|name| name.strip_prefix(PACKAGE))
        .and_then(|name| name.strip_prefix('.'))
        .filter(|name| !name.contains('.'))
        .map(|name| name.to_upper_camel_case())
        .ok_or_else(|| {
            XtaskError::Descriptor(format!(
                "rpc type {proto_name} is not a top-level message of {PACKAGE}"
            ))
        })
}

/// The leading comment at `path`, one entry per line.
fn comment(file: &FileDescriptorProto, path: &[i32]) -> Vec<String> {
    let Some(info) = &file.source_code_info else {
        return Vec::new();
    };
    info.location
        .iter()
        .find(|location| location.path == path)
        .map(|location| {
            location
                .leading_comments()
                .lines()
                .map(|line| {
                    line.strip_prefix(' ')
                        .unwrap_or(line)
                        .trim_end()
                        .to_string()
                })
                .filter(|line| !line.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn doc_lines(out: &mut String, indent: &str, lines: &[String]) {
    for line in lines {
        out.push_str(&format!("{indent}/// {line}\n"));
    }
}

fn render(services: &[ServiceSpec]) -> String {
    let mut out = String::new();
    out.push_str(PREAMBLE);

    out.push_str("/// What the server dispatches to: one implementation per CRI service.\n");
    out.push_str("pub struct Services {\n");
    for service in services {
        out.push_str(&format!(
            "    pub {}: Arc<dyn {}>,\n",
            service.field, service.name
        ));
    }
    out.push_str("}\n\n");
    out.push_str(SERVICES_DEBUG);

    for service in services {
        render_trait(&mut out, service);
    }

    out.push_str(SINK);

    let mut rows: Vec<&RpcSpec> = services.iter().flat_map(|service| &service.rpcs).collect();
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    out.push_str(
        "/// Every method of every service, sorted by path (the server binary-searches it).\n",
    );
    out.push_str("pub static METHODS: &[Method<Services>] = &[\n");
    for rpc in rows {
        let handler = if rpc.server_streaming {
            format!("ServerStreaming({})", rpc.dispatcher)
        } else if rpc.answered_encoded {
            format!("UnaryAtHand({0}, {0}_at_hand)", rpc.dispatcher)
        } else {
            format!("Unary({})", rpc.dispatcher)
        };
        out.push_str(&format!(
            "    Method {{ path: \"{}\", handler: Handler::{handler} }},\n",
            rpc.path
        ));
    }
    out.push_str("];\n\n");

    for service in services {
        for rpc in &service.rpcs {
            render_dispatcher(&mut out, service, rpc);
        }
    }

    out.push_str(HELPERS);
    out
}

fn render_trait(out: &mut String, service: &ServiceSpec) {
    doc_lines(out, "", &service.doc);
    out.push_str(
        "///\n/// Every method answers `UNIMPLEMENTED` until an implementation overrides it.\n",
    );
    out.push_str(&format!(
        "pub trait {}: Send + Sync + 'static {{\n",
        service.name
    ));
    for rpc in &service.rpcs {
        doc_lines(out, "    ", &rpc.doc);
        let (extra_param, result, sink_binding) = if rpc.server_streaming {
            (
                format!(", sink: &mut Sink<'_, {MESSAGES_MODULE}::{}>", rpc.output),
                "()".to_string(),
                ", sink",
            )
        } else if rpc.answered_encoded {
            (
                String::new(),
                format!("Answer<{MESSAGES_MODULE}::{}>", rpc.output),
                "",
            )
        } else {
            (
                String::new(),
                format!("{MESSAGES_MODULE}::{}", rpc.output),
                "",
            )
        };
        out.push_str(&format!(
            "    fn {}(&self, ctx: &CallContext, request: {MESSAGES_MODULE}::{}{extra_param}) -> Result<{result}, Status> {{\n",
            rpc.method, rpc.input
        ));
        out.push_str(&format!("        let _ = (ctx, request{sink_binding});\n"));
        out.push_str(&format!(
            "        Err(Status::unimplemented(\"{} is not implemented by dockshim yet\"))\n",
            rpc.full_name
        ));
        out.push_str("    }\n\n");
        if rpc.answered_encoded {
            out.push_str(&format!(
                "    /// The encoded reply to `request` if it is at hand without waiting on\n    /// anything: asked on the connection's thread before the call goes to a\n    /// worker, so it must never block. `None` sends the call to\n    /// [`{0}::{1}`].\n",
                service.name, rpc.method
            ));
            out.push_str(&format!(
                "    fn {}_at_hand(&self, request: &{MESSAGES_MODULE}::{}) -> Option<Bytes> {{\n",
                rpc.method, rpc.input
            ));
            out.push_str("        let _ = request;\n        None\n    }\n\n");
        }
    }
    out.push_str("}\n\n");
}

fn render_dispatcher(out: &mut String, service: &ServiceSpec, rpc: &RpcSpec) {
    let input_name = format!("{PACKAGE}.{}", rpc.input);
    if rpc.server_streaming {
        out.push_str(&format!(
            "fn {}(services: &Services, ctx: &CallContext, request: &[u8], sink: &mut dyn MessageSink) -> Result<(), Status> {{\n",
            rpc.dispatcher
        ));
        out.push_str(&format!(
            "    let request: {MESSAGES_MODULE}::{} = decode(\"{input_name}\", request)?;\n",
            rpc.input
        ));
        out.push_str(&format!(
            "    services.{}.{}(ctx, request, &mut Sink::new(sink))\n",
            service.field, rpc.method
        ));
    } else {
        out.push_str(&format!(
            "fn {}(services: &Services, ctx: &CallContext, request: &[u8], reply: &mut BytesMut) -> Result<(), Status> {{\n",
            rpc.dispatcher
        ));
        out.push_str(&format!(
            "    let request: {MESSAGES_MODULE}::{} = decode(\"{input_name}\", request)?;\n",
            rpc.input
        ));
        out.push_str(&format!(
            "    let response = services.{}.{}(ctx, request)?;\n",
            service.field, rpc.method
        ));
        let encode = if rpc.answered_encoded {
            "encode_answer"
        } else {
            "encode_reply"
        };
        out.push_str(&format!(
            "    {encode}(\"{PACKAGE}.{}\", response, reply)\n",
            rpc.output
        ));
    }
    out.push_str("}\n\n");
    if rpc.answered_encoded {
        out.push_str(&format!(
            "fn {}_at_hand(services: &Services, request: &[u8]) -> Option<Bytes> {{\n",
            rpc.dispatcher
        ));
        out.push_str("    // A request that does not decode is the worker's to refuse.\n");
        out.push_str(&format!(
            "    let request: {MESSAGES_MODULE}::{} = decode(\"{input_name}\", request).ok()?;\n",
            rpc.input
        ));
        out.push_str(&format!(
            "    services.{}.{}_at_hand(&request)\n}}\n\n",
            service.field, rpc.method
        ));
    }
}

const PREAMBLE: &str = r#"
//! The CRI services as traits, and the method table the server dispatches
//! through.
//!
//! Each rpc is a trait method whose default answers `UNIMPLEMENTED`, so an
//! implementation overrides only what it supports. The dispatchers decode
//! the request, call the trait and encode the reply; they do no I/O and
//! hold no state of their own.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::v1;
use crate::grpc::{Answer, CallContext, Handler, MessageSink, Method, Status};

"#;

const SERVICES_DEBUG: &str = r#"impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

"#;

const SINK: &str = r#"/// A server-streaming call's typed outlet over the connection's
/// [`MessageSink`]: each message is encoded into one reused buffer.
pub struct Sink<'a, M> {
    inner: &'a mut dyn MessageSink,
    buffer: Vec<u8>,
    message: PhantomData<fn(&M)>,
}

impl<M: prost::Message> Sink<'_, M> {
    /// Wraps the sink the server handed to one call.
    pub fn new(inner: &mut dyn MessageSink) -> Sink<'_, M> {
        Sink { inner, buffer: Vec::new(), message: PhantomData }
    }

    /// Sends one message. Blocks while the client is behind, and fails once
    /// the client has gone or the call was cancelled: the handler should
    /// then return.
    pub fn send(&mut self, message: &M) -> Result<(), Status> {
        self.buffer.clear();
        self.buffer.reserve(message.encoded_len());
        // A Vec grows as needed, so prost's only error (buffer too small)
        // cannot happen; it is mapped rather than unwrapped all the same.
        message
            .encode(&mut self.buffer)
            .map_err(|err| Status::internal(format!("cannot encode stream message: {err}")))?;
        self.inner.send(&self.buffer)
    }
}

impl<M> fmt::Debug for Sink<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").field("buffer_capacity", &self.buffer.capacity()).finish_non_exhaustive()
    }
}

"#;

const HELPERS: &str = r#"/// Decodes a request body; a malformed one is the client's error.
fn decode<M: prost::Message + Default>(name: &str, request: &[u8]) -> Result<M, Status> {
    M::decode(request).map_err(|err| Status::invalid_argument(format!("cannot decode {name}: {err}")))
}

/// Appends the encoded reply to `reply`.
fn encode_reply<M: prost::Message>(name: &str, message: M, reply: &mut BytesMut) -> Result<(), Status> {
    reply.reserve(message.encoded_len());
    // BytesMut grows as needed, so prost's only error (buffer too small)
    // cannot happen; it is mapped rather than unwrapped all the same.
    message.encode(reply).map_err(|err| Status::internal(format!("cannot encode {name}: {err}")))
}

/// Appends the answer to `reply`, encoding it unless it already is.
fn encode_answer<M: prost::Message>(name: &str, answer: Answer<M>, reply: &mut BytesMut) -> Result<(), Status> {
    match answer {
        Answer::Message(message) => encode_reply(name, message, reply),
        Answer::Encoded(bytes) => {
            reply.extend_from_slice(&bytes);
            Ok(())
        }
    }
}
"#;
