//! The dockshim executable: reads the command line, connects the CRI
//! handlers to dockerd, and serves until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a graceful shutdown, 1 when start-up fails or an
//! essential background thread died (after a graceful shutdown, see
//! `dockshim::supervisor`), 2 for a command-line error.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use dockshim::api::services::{Services, METHODS};
use dockshim::cli::{self, Command, Config};
use dockshim::cri::container::ContainerService;
use dockshim::cri::image::{ImageSettings, Images};
use dockshim::cri::runtime::{Runtime, RuntimeParts, RuntimeSettings};
use dockshim::cri::sandbox::{SandboxService, SandboxSettings};
use dockshim::cri::stats::StatsService;
use dockshim::cri::streaming::docker_sessions::DockerSessions;
use dockshim::docker::{DockerApi, DockerClient};
use dockshim::host::Node;
use dockshim::index::Index;
use dockshim::logs::LogManager;
use dockshim::metrics::{self, Gauges, Metrics};
use dockshim::network::cni::CniOptions;
use dockshim::network::NetworkSource;
use dockshim::server::{self, Server, ServerOptions};
use dockshim::store::Store;
use dockshim::streaming::server::StreamingServer;
use dockshim::supervisor;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

fn main() -> ExitCode {
    let config = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help(text) | Command::Version(text) | Command::PrintConfig(text)) => {
            // A closed stdout (as in `dockshim --help | true`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    if let Err(err) = dockshim::logger::init(config.log_level) {
        eprintln!("dockshim: cannot start logging: {err}");
        return ExitCode::FAILURE;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> Result<(), String> {
    // Before any thread exists, so that every thread inherits the mask that
    // keeps SIGTERM and SIGINT for the signal thread.
    server::block_shutdown_signals().map_err(|err| err.to_string())?;
    log::info!("dockshim {} starting", env!("CARGO_PKG_VERSION"));
    // Sockets and the stats calls' kept cgroup files share this limit; a
    // launcher's soft 1024 is a select(2)-era default dockshim has no use
    // for. Where it cannot be raised, fewer files are kept (`stats::kept`).
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, soft.max(hard), hard);
    }
    if let Some(path) = &config.config_file {
        log::info!("configuration read from {}", path.display());
    }
    let store = Store::open(&config.root_directory).map_err(|err| err.to_string())?;
    let pod_cidr = match &config.pod_cidr {
        Some(cidr) => {
            store.save_pod_cidr(cidr).map_err(|err| err.to_string())?;
            Some(cidr.clone())
        }
        None => store.load_pod_cidr().map_err(|err| err.to_string())?,
    };

    // Installed before the first Docker call so that every call is counted;
    // never installed without the flag, so nothing is counted then.
    let registry = config.metrics_addr.map(|addr| {
        (
            addr,
            metrics::install(Metrics::new(METHODS.iter().map(|m| m.path))),
        )
    });

    let docker = DockerClient::new(&config.docker_endpoint, config.runtime_request_timeout)
        .map_err(|err| format!("--docker-endpoint: {err}"))?;
    // dockerd may start after dockshim (both are started at boot); Status
    // reports it not ready and the version is negotiated when it answers.
    match docker.negotiate() {
        Ok(version) => log::info!("docker API version {version} at {}", config.docker_endpoint),
        Err(err) => log::warn!("docker is not answering yet: {err}"),
    }

    let mut options = ServerOptions::new(config.runtime_endpoint.clone());
    options.socket_group = config.socket_group.clone();
    options.quick_methods = dockshim::cri::QUICK_METHODS;
    let api: Arc<dyn DockerApi> = Arc::new(docker.clone());
    let images = Arc::new(Images::new(Arc::clone(&api), image_settings(&config)));
    let index = Index::start(docker.clone()).map_err(|err| err.to_string())?;
    let settings = sandbox_settings(&config);
    let sandboxes = SandboxService::new(Arc::clone(&api), index.clone(), images.clone(), settings)
        .map_err(|err| format!("--root-directory: {err}"))?;
    sandboxes
        .migrate_from_cri_dockerd()
        .map_err(|err| err.to_string())?;
    sandboxes.settle_owed_teardowns();
    let logs = LogManager::start(docker.clone());
    let containers = ContainerService::new(
        Arc::clone(&api),
        index.clone(),
        logs,
        Arc::new(Node),
        config.runtime_request_timeout,
    );
    containers
        .log_keeper()
        .spawn()
        .map_err(|err| format!("cannot start the log keeper: {err}"))?;
    let stats = StatsService::new(Arc::clone(&api), index.clone());
    if let Some((addr, registry)) = registry {
        let scraped = index.clone();
        let gauges = Box::new(move || Gauges {
            index_entries: scraped.len(),
            event_stream_reconnects: scraped.reconnects(),
        });
        let bound = metrics::server::start(addr, registry, gauges)
            .map_err(|err| format!("--metrics-addr: {err}"))?;
        log::info!("metrics endpoint listening on http://{bound}/metrics");
    }
    let streaming = StreamingServer::start(
        config.streaming_bind_addr,
        config.streaming_connection_idle_timeout,
        Arc::new(DockerSessions::new(Arc::clone(&api), index, Arc::new(Node))),
    )
    .map_err(|err| format!("--streaming-bind-addr: {err}"))?;
    log::info!("streaming server listening on {}", streaming.local_addr());
    let services = Services {
        runtime: Arc::new(Runtime::new(
            api,
            RuntimeSettings {
                docker_endpoint: config.docker_endpoint,
                cni_conf_dir: config.cni_conf_dir,
                runtime_request_timeout: config.runtime_request_timeout,
            },
            store,
            pod_cidr,
            RuntimeParts {
                sandboxes,
                containers,
                stats,
                streaming,
                supervisor: supervisor::process().clone(),
            },
        )),
        image: images,
    };
    let server =
        Server::bind(&options, Arc::new(services), METHODS).map_err(|err| err.to_string())?;
    server::spawn_signal_thread(server.shutdown_handle()).map_err(|err| err.to_string())?;
    let shutdown = server.shutdown_handle();
    supervisor::process().on_fatal(move || shutdown.shutdown());
    server.run().map_err(|err| err.to_string())?;
    match supervisor::process().fatal() {
        Some(death) => Err(format!("exiting after an essential thread died: {death}")),
        None => Ok(()),
    }
}

fn image_settings(config: &Config) -> ImageSettings {
    ImageSettings {
        sandbox_image: config.pod_infra_container_image.clone(),
        pull_progress_deadline: config.image_pull_progress_deadline,
        pull_timeout: config.image_pull_timeout,
    }
}

fn sandbox_settings(config: &Config) -> SandboxSettings {
    SandboxSettings {
        root_directory: config.root_directory.clone(),
        cni: CniOptions {
            bin_dirs: config.cni_bin_dirs.clone(),
            cache_dir: config.cni_cache_dir.clone(),
            ipv6_dual_stack: config.ipv6_dual_stack,
        },
        image: config.pod_infra_container_image.clone(),
        oom_score_adj: config.sandbox_oom_score_adj,
        network_plugin: config.network_plugin,
        hairpin_mode: config.hairpin_mode,
        networks: NetworkSource::new(
            config.cni_conf_dir.clone(),
            config.cni_bin_dirs.clone(),
            &config.default_network,
        ),
        migration: config.migrate_from_cri_dockerd.clone(),
    }
}
