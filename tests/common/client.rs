//! `CriClient`: CRI calls through tonic, whose HTTP/2 (hyper + h2) and gRPC
//! framing are independent of dockshim's, over the unix socket. Like grpc-go,
//! it sends `:authority: localhost`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, BufMut};
use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::client::Grpc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

use dockshim::api::v1 as cri;

pub const VERSION: &str = "/runtime.v1.RuntimeService/Version";
pub const STATUS: &str = "/runtime.v1.RuntimeService/Status";
pub const RUNTIME_CONFIG: &str = "/runtime.v1.RuntimeService/RuntimeConfig";
pub const UPDATE_RUNTIME_CONFIG: &str = "/runtime.v1.RuntimeService/UpdateRuntimeConfig";
pub const RUN_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/RunPodSandbox";
pub const STOP_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/StopPodSandbox";
pub const REMOVE_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/RemovePodSandbox";
pub const POD_SANDBOX_STATUS: &str = "/runtime.v1.RuntimeService/PodSandboxStatus";
pub const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";
pub const CREATE_CONTAINER: &str = "/runtime.v1.RuntimeService/CreateContainer";
pub const START_CONTAINER: &str = "/runtime.v1.RuntimeService/StartContainer";
pub const STOP_CONTAINER: &str = "/runtime.v1.RuntimeService/StopContainer";
pub const REMOVE_CONTAINER: &str = "/runtime.v1.RuntimeService/RemoveContainer";
pub const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";
pub const CONTAINER_STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";
pub const EXEC_SYNC: &str = "/runtime.v1.RuntimeService/ExecSync";
pub const UPDATE_CONTAINER_RESOURCES: &str = "/runtime.v1.RuntimeService/UpdateContainerResources";
pub const REOPEN_CONTAINER_LOG: &str = "/runtime.v1.RuntimeService/ReopenContainerLog";
pub const EXEC: &str = "/runtime.v1.RuntimeService/Exec";
pub const ATTACH: &str = "/runtime.v1.RuntimeService/Attach";
pub const PORT_FORWARD: &str = "/runtime.v1.RuntimeService/PortForward";
pub const LIST_IMAGES: &str = "/runtime.v1.ImageService/ListImages";
pub const STREAM_IMAGES: &str = "/runtime.v1.ImageService/StreamImages";
pub const IMAGE_STATUS: &str = "/runtime.v1.ImageService/ImageStatus";
pub const PULL_IMAGE: &str = "/runtime.v1.ImageService/PullImage";
pub const REMOVE_IMAGE: &str = "/runtime.v1.ImageService/RemoveImage";
pub const IMAGE_FS_INFO: &str = "/runtime.v1.ImageService/ImageFsInfo";
pub const CONTAINER_STATS: &str = "/runtime.v1.RuntimeService/ContainerStats";
pub const LIST_CONTAINER_STATS: &str = "/runtime.v1.RuntimeService/ListContainerStats";
pub const STREAM_CONTAINER_STATS: &str = "/runtime.v1.RuntimeService/StreamContainerStats";
pub const POD_SANDBOX_STATS: &str = "/runtime.v1.RuntimeService/PodSandboxStats";
pub const LIST_POD_SANDBOX_STATS: &str = "/runtime.v1.RuntimeService/ListPodSandboxStats";
pub const STREAM_POD_SANDBOX_STATS: &str = "/runtime.v1.RuntimeService/StreamPodSandboxStats";

/// Larger than any answer the tests expect; tonic's default is 4 MiB.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// A call that gets no answer fails here instead of hanging the test run.
/// Enforced by tonic alone; it sends no `grpc-timeout` for it.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A tonic channel (one HTTP/2 connection) to dockshim. Clones share it.
#[derive(Debug, Clone)]
pub struct CriClient {
    grpc: Grpc<Channel>,
}

impl CriClient {
    /// Connects to the socket at `socket`; panics if that fails.
    pub async fn connect(socket: &Path) -> CriClient {
        let socket: PathBuf = socket.to_owned();
        let channel = Endpoint::try_from("http://localhost")
            .expect("a valid endpoint URI")
            .timeout(CALL_TIMEOUT)
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move { Ok::<_, io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
            }))
            .await
            .expect("connect tonic to the dockshim socket");
        let grpc = Grpc::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        CriClient { grpc }
    }

    /// One unary call with prost messages.
    pub async fn call<Req, Resp>(
        &self,
        method: &'static str,
        request: Request<Req>,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        grpc.unary(
            request,
            PathAndQuery::from_static(method),
            ProstCodec::<Req, Resp>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// One unary call whose request and response messages are raw bytes, to any path.
    pub async fn raw_unary(&self, path: &str, message: Vec<u8>) -> Result<Vec<u8>, Status> {
        let path = PathAndQuery::try_from(path)
            .map_err(|e| Status::invalid_argument(format!("bad path {path:?}: {e}")))?;
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        grpc.unary(Request::new(message), path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn version(&self) -> Result<cri::VersionResponse, Status> {
        let request = cri::VersionRequest {
            version: "v1".into(),
        };
        self.call(VERSION, Request::new(request)).await
    }

    pub async fn status(&self, verbose: bool) -> Result<cri::StatusResponse, Status> {
        self.call(STATUS, Request::new(cri::StatusRequest { verbose }))
            .await
    }

    pub async fn runtime_config(&self) -> Result<cri::RuntimeConfigResponse, Status> {
        self.call(RUNTIME_CONFIG, Request::new(cri::RuntimeConfigRequest {}))
            .await
    }

    pub async fn update_runtime_config(
        &self,
        pod_cidr: &str,
    ) -> Result<cri::UpdateRuntimeConfigResponse, Status> {
        let request = cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: pod_cidr.into(),
                }),
            }),
        };
        self.call(UPDATE_RUNTIME_CONFIG, Request::new(request))
            .await
    }

    /// RunPodSandbox with the default runtime handler; returns the ID.
    pub async fn run_pod_sandbox(&self, config: cri::PodSandboxConfig) -> Result<String, Status> {
        let request = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        let response: cri::RunPodSandboxResponse =
            self.call(RUN_POD_SANDBOX, Request::new(request)).await?;
        Ok(response.pod_sandbox_id)
    }

    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<cri::StopPodSandboxResponse, Status> {
        let request = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(STOP_POD_SANDBOX, Request::new(request)).await
    }

    pub async fn remove_pod_sandbox(
        &self,
        id: &str,
    ) -> Result<cri::RemovePodSandboxResponse, Status> {
        let request = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        self.call(REMOVE_POD_SANDBOX, Request::new(request)).await
    }

    pub async fn pod_sandbox_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::PodSandboxStatusResponse, Status> {
        let request = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose,
        };
        self.call(POD_SANDBOX_STATUS, Request::new(request)).await
    }

    /// ListPodSandbox; returns the items.
    pub async fn list_pod_sandbox(
        &self,
        filter: Option<cri::PodSandboxFilter>,
    ) -> Result<Vec<cri::PodSandbox>, Status> {
        let response: cri::ListPodSandboxResponse = self
            .call(
                LIST_POD_SANDBOX,
                Request::new(cri::ListPodSandboxRequest { filter }),
            )
            .await?;
        Ok(response.items)
    }

    /// CreateContainer in sandbox `sandbox_id`; returns the ID.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, Status> {
        let request = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        let response: cri::CreateContainerResponse =
            self.call(CREATE_CONTAINER, Request::new(request)).await?;
        Ok(response.container_id)
    }

    pub async fn start_container(&self, id: &str) -> Result<cri::StartContainerResponse, Status> {
        let request = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.call(START_CONTAINER, Request::new(request)).await
    }

    pub async fn stop_container(
        &self,
        id: &str,
        timeout: i64,
    ) -> Result<cri::StopContainerResponse, Status> {
        let request = cri::StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.call(STOP_CONTAINER, Request::new(request)).await
    }

    pub async fn remove_container(&self, id: &str) -> Result<cri::RemoveContainerResponse, Status> {
        let request = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        self.call(REMOVE_CONTAINER, Request::new(request)).await
    }

    /// ListContainers; returns the containers.
    pub async fn list_containers(
        &self,
        filter: Option<cri::ContainerFilter>,
    ) -> Result<Vec<cri::Container>, Status> {
        let response: cri::ListContainersResponse = self
            .call(
                LIST_CONTAINERS,
                Request::new(cri::ListContainersRequest { filter }),
            )
            .await?;
        Ok(response.containers)
    }

    pub async fn container_status(
        &self,
        id: &str,
        verbose: bool,
    ) -> Result<cri::ContainerStatusResponse, Status> {
        let request = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose,
        };
        self.call(CONTAINER_STATUS, Request::new(request)).await
    }

    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<cri::ExecSyncResponse, Status> {
        let request = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|arg| (*arg).to_owned()).collect(),
            timeout,
        };
        self.call(EXEC_SYNC, Request::new(request)).await
    }

    /// Exec; returns the streaming URL.
    pub async fn exec(&self, request: cri::ExecRequest) -> Result<String, Status> {
        let response: cri::ExecResponse = self.call(EXEC, Request::new(request)).await?;
        Ok(response.url)
    }

    /// Attach; returns the streaming URL.
    pub async fn attach(&self, request: cri::AttachRequest) -> Result<String, Status> {
        let response: cri::AttachResponse = self.call(ATTACH, Request::new(request)).await?;
        Ok(response.url)
    }

    /// PortForward; returns the streaming URL.
    pub async fn port_forward(&self, request: cri::PortForwardRequest) -> Result<String, Status> {
        let response: cri::PortForwardResponse =
            self.call(PORT_FORWARD, Request::new(request)).await?;
        Ok(response.url)
    }

    pub async fn reopen_container_log(
        &self,
        id: &str,
    ) -> Result<cri::ReopenContainerLogResponse, Status> {
        let request = cri::ReopenContainerLogRequest {
            container_id: id.into(),
        };
        self.call(REOPEN_CONTAINER_LOG, Request::new(request)).await
    }

    pub async fn update_container_resources(
        &self,
        request: cri::UpdateContainerResourcesRequest,
    ) -> Result<cri::UpdateContainerResourcesResponse, Status> {
        self.call(UPDATE_CONTAINER_RESOURCES, Request::new(request))
            .await
    }

    /// ListImages, filtered by `image` when given.
    pub async fn list_images(
        &self,
        image: Option<&str>,
    ) -> Result<cri::ListImagesResponse, Status> {
        let request = cri::ListImagesRequest {
            filter: image.map(|image| cri::ImageFilter {
                image: Some(image_spec(image)),
            }),
        };
        self.call(LIST_IMAGES, Request::new(request)).await
    }

    /// StreamImages, every message of the stream.
    pub async fn stream_images(
        &self,
        image: Option<&str>,
    ) -> Result<Vec<cri::StreamImagesResponse>, Status> {
        let request = cri::StreamImagesRequest {
            filter: image.map(|image| cri::ImageFilter {
                image: Some(image_spec(image)),
            }),
        };
        self.collect_stream(STREAM_IMAGES, request).await
    }

    /// Opens a server-streaming call; the caller reads its messages.
    pub async fn server_stream<Req, Resp>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<tonic::Streaming<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        grpc.server_streaming(
            Request::new(request),
            PathAndQuery::from_static(method),
            ProstCodec::<Req, Resp>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
    }

    /// A server-streaming call read to its end: every message, in order.
    pub async fn collect_stream<Req, Resp>(
        &self,
        method: &'static str,
        request: Req,
    ) -> Result<Vec<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut stream = self.server_stream::<Req, Resp>(method, request).await?;
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await? {
            messages.push(message);
        }
        Ok(messages)
    }

    pub async fn image_status(
        &self,
        image: &str,
        verbose: bool,
    ) -> Result<cri::ImageStatusResponse, Status> {
        let request = cri::ImageStatusRequest {
            image: Some(image_spec(image)),
            verbose,
        };
        self.call(IMAGE_STATUS, Request::new(request)).await
    }

    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
    ) -> Result<cri::PullImageResponse, Status> {
        let request = cri::PullImageRequest {
            image: Some(image_spec(image)),
            auth,
            sandbox_config: None,
        };
        self.call(PULL_IMAGE, Request::new(request)).await
    }

    pub async fn remove_image(&self, image: &str) -> Result<cri::RemoveImageResponse, Status> {
        let request = cri::RemoveImageRequest {
            image: Some(image_spec(image)),
        };
        self.call(REMOVE_IMAGE, Request::new(request)).await
    }

    pub async fn image_fs_info(&self) -> Result<cri::ImageFsInfoResponse, Status> {
        self.call(IMAGE_FS_INFO, Request::new(cri::ImageFsInfoRequest {}))
            .await
    }

    pub async fn container_stats(&self, container_id: &str) -> Result<cri::ContainerStats, Status> {
        let request = cri::ContainerStatsRequest {
            container_id: container_id.into(),
        };
        let response: cri::ContainerStatsResponse =
            self.call(CONTAINER_STATS, Request::new(request)).await?;
        response
            .stats
            .ok_or_else(|| Status::internal("ContainerStatsResponse without stats"))
    }

    pub async fn list_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::ContainerStats>, Status> {
        let request = cri::ListContainerStatsRequest { filter };
        let response: cri::ListContainerStatsResponse = self
            .call(LIST_CONTAINER_STATS, Request::new(request))
            .await?;
        Ok(response.stats)
    }

    /// Every message of StreamContainerStats.
    pub async fn stream_container_stats(
        &self,
        filter: Option<cri::ContainerStatsFilter>,
    ) -> Result<Vec<cri::StreamContainerStatsResponse>, Status> {
        let request = cri::StreamContainerStatsRequest { filter };
        self.collect_stream(STREAM_CONTAINER_STATS, request).await
    }

    pub async fn pod_sandbox_stats(
        &self,
        pod_sandbox_id: &str,
    ) -> Result<cri::PodSandboxStats, Status> {
        let request = cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod_sandbox_id.into(),
        };
        let response: cri::PodSandboxStatsResponse =
            self.call(POD_SANDBOX_STATS, Request::new(request)).await?;
        response
            .stats
            .ok_or_else(|| Status::internal("PodSandboxStatsResponse without stats"))
    }

    pub async fn list_pod_sandbox_stats(
        &self,
        filter: Option<cri::PodSandboxStatsFilter>,
    ) -> Result<Vec<cri::PodSandboxStats>, Status> {
        let request = cri::ListPodSandboxStatsRequest { filter };
        let response: cri::ListPodSandboxStatsResponse = self
            .call(LIST_POD_SANDBOX_STATS, Request::new(request))
            .await?;
        Ok(response.stats)
    }

    /// Every message of StreamPodSandboxStats.
    pub async fn stream_pod_sandbox_stats(
        &self,
        filter: Option<cri::PodSandboxStatsFilter>,
    ) -> Result<Vec<cri::StreamPodSandboxStatsResponse>, Status> {
        let request = cri::StreamPodSandboxStatsRequest { filter };
        self.collect_stream(STREAM_POD_SANDBOX_STATS, request).await
    }
}

/// An `ImageSpec` naming `image` and nothing else.
pub fn image_spec(image: &str) -> cri::ImageSpec {
    cri::ImageSpec {
        image: image.to_owned(),
        ..cri::ImageSpec::default()
    }
}

/// The `status` of the condition named `kind` (e.g. `RuntimeReady`) in a
/// Status answer, with its reason; panics if the condition is missing.
pub fn condition(response: &cri::StatusResponse, kind: &str) -> (bool, String) {
    let conditions = &response
        .status
        .as_ref()
        .expect("StatusResponse.status is set")
        .conditions;
    let found = conditions
        .iter()
        .find(|c| c.r#type == kind)
        .unwrap_or_else(|| panic!("no {kind} condition in {conditions:?}"));
    (found.status, found.reason.clone())
}

/// Passes message bytes through untouched, so tests can send what no
/// generated type would.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.len());
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut message = vec![0; src.remaining()];
        src.copy_to_slice(&mut message);
        Ok(Some(message))
    }
}
