//! The CNI network configuration in `--cni-conf-dir`, as the CNI spec and
//! the kubelet's convention pick it: the first file in lexical order ending
//! in `.conflist`, `.conf` or `.json` that parses and names at least one
//! plugin, every plugin binary present in `--cni-bin-dir`.
//!
//! [`NetworkSource`] falls back on the built-in default network
//! (`default_network`) only when the directory holds no candidate file at
//! all, or does not exist: a file that cannot be used yet (its plugins not
//! installed yet, say, while a network add-on starts) is the operator's
//! configuration in the making, and pods must wait for it rather than
//! start on another network. The directory is read again on every call, so
//! the first file that appears wins for every later pod.
//!
//! This module reads files only; it never executes a plugin.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::CniConfigError;
use crate::codec::json::{Fields, FromJson};

/// A network configuration file larger than this is not a configuration.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Extensions the CNI library accepts for configuration files.
const CONFIG_EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// One plugin of a network configuration list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniPlugin {
    pub plugin_type: String,
    /// Capability arguments the plugin accepts (`portMappings`, `ipRanges`, ...).
    pub capabilities: BTreeMap<String, bool>,
}

/// Where a network configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkOrigin {
    /// A file of `--cni-conf-dir`.
    File(PathBuf),
    /// Made by dockshim: the default network, or the pods' loopback;
    /// `subnets` are the ones it hands addresses out of, when known.
    BuiltIn { subnets: Vec<String> },
}

impl NetworkOrigin {
    /// The file the configuration was read from, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            NetworkOrigin::File(file) => Some(file),
            NetworkOrigin::BuiltIn { .. } => None,
        }
    }
}

impl fmt::Display for NetworkOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkOrigin::File(file) => write!(f, "{}", file.display()),
            NetworkOrigin::BuiltIn { subnets } if subnets.is_empty() => write!(f, "built-in"),
            NetworkOrigin::BuiltIn { subnets } => {
                write!(f, "built-in default (subnet {})", subnets.join(", "))
            }
        }
    }
}

/// The network configuration pods are wired with.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    pub origin: NetworkOrigin,
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<CniPlugin>,
    /// The configuration as found, handed to the plugins on stdin.
    pub config: Value,
}

impl CniNetwork {
    /// The network a configuration recorded earlier describes (the content
    /// of `file` then; an empty `file` records a built-in network), checked
    /// as a file's would be but without looking for the plugins: a teardown
    /// owed since then reaches the same ones.
    pub fn from_recorded(file: &Path, config: Value) -> Result<CniNetwork, CniConfigError> {
        let origin = if file.as_os_str().is_empty() {
            NetworkOrigin::BuiltIn {
                subnets: Vec::new(),
            }
        } else {
            NetworkOrigin::File(file.to_path_buf())
        };
        parse(origin, config).map_err(|reason| CniConfigError::Recorded {
            file: file.to_path_buf(),
            reason,
        })
    }

    /// True when some plugin wants the pod CIDR as `ipRanges`, so pods
    /// cannot be wired until UpdateRuntimeConfig has given one.
    pub fn needs_pod_cidr(&self) -> bool {
        self.plugins
            .iter()
            .any(|p| p.capabilities.get("ipRanges") == Some(&true))
    }
}

struct RawPlugin {
    plugin_type: String,
    capabilities: BTreeMap<String, bool>,
}

impl FromJson for RawPlugin {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(RawPlugin {
            plugin_type: fields.field("type"),
            capabilities: fields.field("capabilities"),
        })
    }
}

struct RawConfig {
    name: String,
    cni_version: String,
    /// Present in a `.conflist`.
    plugins: Option<Vec<RawPlugin>>,
    /// Present in a single-plugin `.conf`.
    plugin_type: Option<String>,
    capabilities: BTreeMap<String, bool>,
}

impl FromJson for RawConfig {
    fn from_json(value: &Value) -> Result<Self, serde_json::Error> {
        let fields = Fields::of(value)?;
        fields.finish(RawConfig {
            name: fields.field("name"),
            cni_version: fields.field("cniVersion"),
            plugins: fields.opt("plugins"),
            plugin_type: fields.opt("type"),
            capabilities: fields.field("capabilities"),
        })
    }
}

/// Finds the network configuration in `conf_dir` whose plugins are all in
/// one of `bin_dirs`.
pub fn load_default(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<CniNetwork, CniConfigError> {
    let entries = fs::read_dir(conf_dir).map_err(|source| CniConfigError::ReadDir {
        dir: conf_dir.to_path_buf(),
        source,
    })?;
    // Kept in order by insert: a sort of paths would compile its own copy.
    let mut candidates: Vec<PathBuf> = Vec::new();
    for path in entries.filter_map(|entry| entry.ok().map(|e| e.path())) {
        let is_config = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| CONFIG_EXTENSIONS.contains(&ext));
        if is_config {
            let at = candidates.partition_point(|known| *known < path);
            candidates.insert(at, path);
        }
    }

    let mut skipped = Vec::new();
    for file in candidates {
        match load_file(&file).and_then(|network| check_binaries(network, bin_dirs)) {
            Ok(network) => return Ok(network),
            Err(why) => skipped.push((file, why)),
        }
    }
    Err(CniConfigError::NoUsableConfig {
        dir: conf_dir.to_path_buf(),
        skipped,
    })
}

fn load_file(file: &Path) -> Result<CniNetwork, String> {
    let mut text = String::new();
    fs::File::open(file)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|err| format!("cannot read: {err}"))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!("larger than {MAX_CONFIG_BYTES} bytes"));
    }
    // From bytes, as every JSON read is: one parser is compiled, not two.
    let config: Value =
        serde_json::from_slice(text.as_bytes()).map_err(|err| format!("not JSON: {err}"))?;
    parse(NetworkOrigin::File(file.to_path_buf()), config)
}

/// The network `config` describes, found at `origin`.
fn parse(origin: NetworkOrigin, config: Value) -> Result<CniNetwork, String> {
    let raw = RawConfig::from_json(&config).map_err(|err| format!("invalid: {err}"))?;
    let plugins = match (raw.plugins, raw.plugin_type) {
        (Some(list), _) => list
            .into_iter()
            .map(|p| CniPlugin {
                plugin_type: p.plugin_type,
                capabilities: p.capabilities,
            })
            .collect(),
        (None, Some(plugin_type)) => {
            vec![CniPlugin {
                plugin_type,
                capabilities: raw.capabilities,
            }]
        }
        (None, None) => return Err("neither \"plugins\" nor \"type\" is set".to_owned()),
    };
    if plugins.is_empty() {
        return Err("the plugin list is empty".to_owned());
    }
    if let Some(p) = plugins.iter().find(|p| !is_plain_name(&p.plugin_type)) {
        return Err(format!(
            "plugin type {:?} is not a plain file name",
            p.plugin_type
        ));
    }
    if raw.name.is_empty() {
        return Err("the network has no \"name\"".to_owned());
    }
    Ok(CniNetwork {
        origin,
        name: raw.name,
        cni_version: raw.cni_version,
        plugins,
        config,
    })
}

/// A plugin type becomes a file name in a bin dir, so it must not be able
/// to name anything outside it.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

fn check_binaries(network: CniNetwork, bin_dirs: &[PathBuf]) -> Result<CniNetwork, String> {
    for plugin in &network.plugins {
        if find_plugin(&plugin.plugin_type, bin_dirs).is_none() {
            return Err(format!(
                "plugin {:?} is not an executable in {}",
                plugin.plugin_type,
                display_dirs(bin_dirs)
            ));
        }
    }
    Ok(network)
}

pub(super) fn display_dirs(dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// The first executable file named `plugin_type` in `bin_dirs`.
pub fn find_plugin(plugin_type: &str, bin_dirs: &[PathBuf]) -> Option<PathBuf> {
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|path| {
            fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::network::default_network::DefaultNetwork;
    use crate::network::default_network::{BuiltInNetwork, NetworkSource};

    struct Dirs {
        _tmp: tempfile::TempDir,
        conf: PathBuf,
        bin: PathBuf,
    }

    fn dirs(plugins: &[&str]) -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("net.d");
        let bin = tmp.path().join("bin");
        fs::create_dir_all(&conf).unwrap();
        fs::create_dir_all(&bin).unwrap();
        for name in plugins {
            let path = bin.join(name);
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Dirs {
            _tmp: tmp,
            conf,
            bin,
        }
    }

    const BRIDGE_LIST: &str = r#"{"cniVersion":"1.0.0","name":"pods","plugins":[
        {"type":"bridge","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

    #[test]
    fn empty_directory_has_no_network() {
        let d = dirs(&[]);
        let err = load_default(&d.conf, std::slice::from_ref(&d.bin)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no CNI network config found in"),
            "{err}"
        );
    }

    #[test]
    fn missing_directory_is_reported() {
        let d = dirs(&[]);
        let err = load_default(&d.conf.join("absent"), std::slice::from_ref(&d.bin)).unwrap_err();
        assert!(matches!(err, CniConfigError::ReadDir { .. }), "{err}");
    }

    #[test]
    fn conflist_with_all_plugins_present_is_used() {
        let d = dirs(&["bridge", "portmap"]);
        fs::write(d.conf.join("10-pods.conflist"), BRIDGE_LIST).unwrap();
        let network = load_default(&d.conf, std::slice::from_ref(&d.bin)).unwrap();
        assert_eq!(network.name, "pods");
        assert_eq!(network.cni_version, "1.0.0");
        let types: Vec<_> = network
            .plugins
            .iter()
            .map(|p| p.plugin_type.as_str())
            .collect();
        assert_eq!(types, ["bridge", "portmap"]);
        assert!(!network.needs_pod_cidr());
    }

    #[test]
    fn missing_plugin_binary_skips_the_file_and_says_why() {
        let d = dirs(&["bridge"]);
        fs::write(d.conf.join("10-pods.conflist"), BRIDGE_LIST).unwrap();
        let err = load_default(&d.conf, std::slice::from_ref(&d.bin))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("10-pods.conflist") && err.contains("\"portmap\""),
            "{err}"
        );
    }

    #[test]
    fn first_usable_file_in_lexical_order_wins() {
        let d = dirs(&["bridge", "portmap", "ptp"]);
        fs::write(d.conf.join("00-broken.conf"), "{not json").unwrap();
        fs::write(d.conf.join("05-notes.txt"), BRIDGE_LIST).unwrap();
        fs::write(
            d.conf.join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"ptp"}"#,
        )
        .unwrap();
        fs::write(d.conf.join("10-a.conflist"), BRIDGE_LIST).unwrap();
        let network = load_default(&d.conf, std::slice::from_ref(&d.bin)).unwrap();
        assert_eq!(
            network.origin,
            NetworkOrigin::File(d.conf.join("10-a.conflist"))
        );
    }

    #[test]
    fn single_plugin_conf_is_a_one_plugin_list() {
        let d = dirs(&["ptp"]);
        fs::write(
            d.conf.join("a.conf"),
            r#"{"cniVersion":"0.4.0","name":"p","type":"ptp"}"#,
        )
        .unwrap();
        let network = load_default(&d.conf, std::slice::from_ref(&d.bin)).unwrap();
        assert_eq!(network.plugins.len(), 1);
    }

    #[test]
    fn plugin_binaries_may_be_in_any_listed_dir() {
        let first = dirs(&["bridge"]);
        let second = dirs(&["portmap"]);
        fs::write(first.conf.join("a.conflist"), BRIDGE_LIST).unwrap();
        let network = load_default(&first.conf, &[first.bin.clone(), second.bin.clone()]);
        assert!(network.is_ok());
    }

    #[test]
    fn plugin_type_with_a_path_is_refused() {
        let d = dirs(&[]);
        fs::write(
            d.conf.join("a.conf"),
            r#"{"name":"p","type":"../../bin/sh"}"#,
        )
        .unwrap();
        let err = load_default(&d.conf, std::slice::from_ref(&d.bin))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a plain file name"), "{err}");
    }

    #[test]
    fn ip_ranges_capability_needs_a_pod_cidr() {
        let d = dirs(&["bridge"]);
        fs::write(
            d.conf.join("a.conflist"),
            r#"{"name":"p","plugins":[{"type":"bridge","capabilities":{"ipRanges":true}}]}"#,
        )
        .unwrap();
        assert!(load_default(&d.conf, std::slice::from_ref(&d.bin))
            .unwrap()
            .needs_pod_cidr());
    }

    #[test]
    fn empty_plugin_list_and_nameless_network_are_skipped() {
        let d = dirs(&["bridge"]);
        fs::write(d.conf.join("a.conflist"), r#"{"name":"p","plugins":[]}"#).unwrap();
        fs::write(d.conf.join("b.conf"), r#"{"type":"bridge"}"#).unwrap();
        let err = load_default(&d.conf, std::slice::from_ref(&d.bin))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty") && err.contains("no \"name\""),
            "{err}"
        );
    }

    #[test]
    fn a_recorded_config_is_the_same_network_without_its_plugins_present() {
        let d = dirs(&[]);
        let file = d.conf.join("10-pods.conflist");
        let config: Value = serde_json::from_str(BRIDGE_LIST).unwrap();
        let network = CniNetwork::from_recorded(&file, config.clone()).unwrap();
        assert_eq!(network.name, "pods");
        assert_eq!(network.origin, NetworkOrigin::File(file.clone()));
        assert_eq!(network.config, config);
        assert_eq!(network.plugins.len(), 2);
        let err = CniNetwork::from_recorded(&file, serde_json::json!({"name": "x"})).unwrap_err();
        assert!(matches!(err, CniConfigError::Recorded { .. }), "{err}");
    }

    const BUILT_IN_PLUGINS: [&str; 4] = ["bridge", "host-local", "firewall", "portmap"];

    fn source(d: &Dirs, default_network: DefaultNetwork) -> NetworkSource {
        NetworkSource::new(d.conf.clone(), vec![d.bin.clone()], &default_network)
    }

    fn auto() -> DefaultNetwork {
        DefaultNetwork::Auto { bridge: None }
    }

    #[test]
    fn an_empty_directory_serves_the_built_in_network() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let network = source(&d, auto()).current(None).unwrap();
        assert_eq!(network.name, "dockshim0");
        assert_eq!(
            network.origin.to_string(),
            "built-in default (subnet 10.86.0.0/16)"
        );
        assert_eq!(network.origin.file(), None);
    }

    #[test]
    fn a_missing_directory_serves_the_built_in_network() {
        let mut d = dirs(&BUILT_IN_PLUGINS);
        d.conf = d.conf.join("absent");
        assert!(source(&d, auto()).current(None).is_ok());
        let err = source(&d, DefaultNetwork::Off).current(None).unwrap_err();
        assert!(matches!(err, CniConfigError::ReadDir { .. }), "{err}");
    }

    #[test]
    fn with_the_default_network_off_an_empty_directory_has_no_network() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let err = source(&d, DefaultNetwork::Off).current(None).unwrap_err();
        assert!(
            matches!(err, CniConfigError::NoUsableConfig { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_pod_cidr_is_the_built_in_networks_subnet() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let network = source(&d, auto()).current(Some("10.244.7.0/24")).unwrap();
        assert_eq!(
            network.origin.to_string(),
            "built-in default (subnet 10.244.7.0/24)"
        );
    }

    #[test]
    fn a_named_bridge_names_the_built_in_network() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let bridge = DefaultNetwork::Auto {
            bridge: Some("pods9".to_owned()),
        };
        assert_eq!(source(&d, bridge).current(None).unwrap().name, "pods9");
    }

    #[test]
    fn a_file_in_the_directory_wins_over_the_built_in_network() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let networks = source(&d, auto());
        assert_eq!(networks.current(None).unwrap().name, "dockshim0");
        fs::write(d.conf.join("10-pods.conflist"), BRIDGE_LIST).unwrap();
        let network = networks.current(None).unwrap();
        assert_eq!(network.name, "pods");
        assert_eq!(
            network.origin.file(),
            Some(d.conf.join("10-pods.conflist").as_path())
        );
    }

    #[test]
    fn a_file_that_cannot_be_used_yet_keeps_the_built_in_network_out() {
        let d = dirs(&["bridge", "host-local", "firewall"]);
        fs::write(d.conf.join("10-pods.conflist"), BRIDGE_LIST).unwrap();
        let err = source(&d, auto()).current(None).unwrap_err();
        assert!(
            matches!(err, CniConfigError::NoUsableConfig { .. }),
            "{err}"
        );
    }

    #[test]
    fn the_built_in_network_needs_every_one_of_its_plugins() {
        let d = dirs(&["bridge", "host-local", "portmap"]);
        let err = source(&d, auto()).current(None).unwrap_err();
        assert!(matches!(err, CniConfigError::BuiltIn { .. }), "{err}");
        assert!(err.to_string().contains("\"firewall\""), "{err}");
    }

    #[test]
    fn a_pod_of_the_built_in_network_is_torn_down_by_it_after_a_file_took_over() {
        let d = dirs(&BUILT_IN_PLUGINS);
        fs::write(d.conf.join("10-pods.conflist"), BRIDGE_LIST).unwrap();
        let networks = source(&d, auto());
        assert_eq!(
            networks.for_teardown(Some("dockshim0")).unwrap().name,
            "dockshim0"
        );
        assert_eq!(networks.for_teardown(Some("pods")).unwrap().name, "pods");
        assert_eq!(networks.for_teardown(None).unwrap().name, "pods");
    }

    #[test]
    fn a_pod_of_the_built_in_network_is_torn_down_by_it_once_it_is_off() {
        let d = dirs(&[]);
        let networks = source(&d, DefaultNetwork::Off);
        assert_eq!(
            networks.for_teardown(Some("dockshim0")).unwrap().name,
            "dockshim0"
        );
    }

    #[test]
    fn a_pod_of_a_files_network_is_never_torn_down_by_the_built_in_one() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let err = source(&d, auto()).for_teardown(Some("pods")).unwrap_err();
        assert!(
            matches!(err, CniConfigError::NoUsableConfig { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_file_network_named_like_the_built_in_one_tears_its_pods_down() {
        let d = dirs(&BUILT_IN_PLUGINS);
        let file = d.conf.join("10-mine.conflist");
        fs::write(&file, BRIDGE_LIST.replace("\"pods\"", "\"dockshim0\"")).unwrap();
        let network = source(&d, auto()).for_teardown(Some("dockshim0")).unwrap();
        assert_eq!(network.origin.file(), Some(file.as_path()));
    }

    #[test]
    fn an_empty_recorded_file_is_a_built_in_network() {
        let network = CniNetwork::from_recorded(
            Path::new(""),
            BuiltInNetwork::new(None).network(None).unwrap().config,
        )
        .unwrap();
        assert_eq!(network.origin.file(), None);
        assert_eq!(network.name, "dockshim0");
    }
}
