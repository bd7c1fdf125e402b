//! CRI `LinuxContainerResources` → Docker's resource fields, for create
//! and for `POST /containers/{id}/update`. Pure: no I/O.
//!
//! - cpu shares/quota/period, memory limit, cpuset cpus/mems: Docker's
//!   fields of the same meaning; 0 (or empty) means unset.
//! - swap: Docker's `MemorySwap` is memory plus swap. It comes from
//!   `memory_swap_limit_in_bytes` (cgroup v1 style, already a total) or
//!   from `unified["memory.swap.max"]` (cgroup v2 style, swap only; `max`
//!   is unlimited) — the kubelet sets one or the other for every container
//!   on a node with a swap controller. With neither, a memory-limited
//!   container gets no swap (`MemorySwap` = `Memory`), as under
//!   cri-dockerd. Docker cannot cap the swap of a container without a
//!   memory limit: that is accepted only when the node has no swap at all
//!   (so the cap holds anyway), and refused otherwise.
//! - hugepage limits: Docker has no hugetlb setting. The kubelet sends one
//!   entry per page size the node supports, with limit 0 unless the
//!   container asks for hugepages; a 0 limit is what the pod's cgroup (the
//!   container's cgroup parent, set by the kubelet) already enforces, so
//!   it is accepted. A non-zero per-container limit is UNIMPLEMENTED.
//! - `unified["pids.max"]`: Docker's `PidsLimit` (`max` is unlimited,
//!   sent as -1). A limit of 0 is UNIMPLEMENTED, since Docker reads a
//!   `PidsLimit` of 0 as no limit at all. ContainerStatus reports a limit
//!   back as `unified["pids.max"]`.
//! - `unified`: besides those two files, any cgroup v2 file is
//!   UNIMPLEMENTED naming the key (Docker 20.10 sets no cgroup file by
//!   name).
//! - `oom_score_adj`: `OomScoreAdj` on create. Docker's update cannot
//!   change it, so the update handler writes it to the processes of a
//!   running container itself ([`oom_score_update`] decides, `update`
//!   writes); a container that is not running keeps its creation value,
//!   so a new one is refused there. Docker keeps the creation value, so
//!   ContainerStatus reads the main process's own (see `list`).
//!
//! Docker's update treats an absent or zero field as "keep the current
//! value", so an update that would remove a memory limit, CPU shares, a
//! CPU quota or period, or a cpuset is refused rather than silently
//! keeping the old setting. A process limit can be lifted (`PidsLimit`
//! -1); an update without `pids.max` keeps the current one, as a runtime
//! that writes `unified` files leaves those an update does not name.

use std::collections::HashMap;

use super::ContainerConfigError;
use crate::api::v1;
use crate::docker::Resources;
use crate::index;

/// The cgroup v2 file the kubelet uses for a container's swap limit.
pub const SWAP_MAX_FILE: &str = "memory.swap.max";
/// The cgroup v2 file of a container's process limit.
pub const PIDS_MAX_FILE: &str = "pids.max";
/// The `unified` files Docker has a field for.
const MAPPED_FILES: [&str; 2] = [SWAP_MAX_FILE, PIDS_MAX_FILE];
/// The value of a cgroup v2 `*.max` file for no limit.
const UNLIMITED: &str = "max";
/// Docker's `MemorySwap` for unlimited swap.
const DOCKER_UNLIMITED_SWAP: i64 = -1;
/// Docker's `PidsLimit` for no limit. Docker reads 0 the same, but -1 is
/// the value runc itself takes for no limit.
const DOCKER_UNLIMITED_PIDS: i64 = -1;
/// Bounds of Linux's `oom_score_adj`.
const OOM_SCORE_ADJ_RANGE: std::ops::RangeInclusive<i64> = -1000..=1000;

/// What an update does to the OOM score adjustment of the container's
/// processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomScoreUpdate {
    /// Write this value to every process of the running container.
    Write(i32),
    /// Nothing: the container runs no process, and asks for the value it
    /// was created with.
    Keep,
}

/// A limit as a cgroup v2 `*.max` file states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CgroupMax {
    Limit(i64),
    Unlimited,
}

/// The `unified` entries Docker has a field for.
#[derive(Debug, Clone, Copy, Default)]
struct Unified {
    swap_max: Option<CgroupMax>,
    pids_max: Option<CgroupMax>,
}

/// Docker's resource fields for `resources`; `node_has_swap` says whether
/// the node has any swap space (see the module notes on swap).
pub fn docker_resources(
    resources: &v1::LinuxContainerResources,
    node_has_swap: bool,
) -> Result<Resources, ContainerConfigError> {
    check_hugepage_limits(&resources.hugepage_limits)?;
    let unified = unified(&resources.unified)?;
    let memory = positive("memory_limit_in_bytes", resources.memory_limit_in_bytes)?;
    let swap_total = positive(
        "memory_swap_limit_in_bytes",
        resources.memory_swap_limit_in_bytes,
    )?;
    Ok(Resources {
        memory,
        memory_swap: memory_swap(memory, swap_total, unified.swap_max, node_has_swap)?,
        cpu_shares: positive("cpu_shares", resources.cpu_shares)?,
        cpu_quota: positive("cpu_quota", resources.cpu_quota)?,
        cpu_period: positive("cpu_period", resources.cpu_period)?,
        cpuset_cpus: cpuset("cpuset_cpus", &resources.cpuset_cpus)?,
        cpuset_mems: cpuset("cpuset_mems", &resources.cpuset_mems)?,
        pids_limit: unified.pids_max.map(|max| match max {
            CgroupMax::Limit(limit) => limit,
            CgroupMax::Unlimited => DOCKER_UNLIMITED_PIDS,
        }),
    })
}

/// `OomScoreAdj` for the CRI value, checked against the kernel's range.
pub fn oom_score_adj(value: i64) -> Result<i32, ContainerConfigError> {
    if !OOM_SCORE_ADJ_RANGE.contains(&value) {
        return Err(ContainerConfigError::invalid(
            "oom_score_adj",
            format!("{value} is outside -1000..=1000"),
        ));
    }
    i32::try_from(value)
        .map_err(|_| ContainerConfigError::invalid("oom_score_adj", format!("{value}")))
}

/// The update body for `resources` on a container whose resources are now
/// `current`. The OOM score adjustment is only checked here; see
/// [`oom_score_update`].
pub fn update_resources_body(
    resources: &v1::LinuxContainerResources,
    current: &index::Resources,
    node_has_swap: bool,
) -> Result<Resources, ContainerConfigError> {
    oom_score_adj(resources.oom_score_adj)?;
    let mut docker = docker_resources(resources, node_has_swap)?;
    let removed = [
        (
            "memory_limit_in_bytes",
            docker.memory.is_none() && current.memory_limit > 0,
        ),
        (
            "cpu_shares",
            docker.cpu_shares.is_none() && current.cpu_shares > 0,
        ),
        (
            "cpu_quota",
            docker.cpu_quota.is_none() && current.cpu_quota > 0,
        ),
        (
            "cpu_period",
            docker.cpu_period.is_none() && current.cpu_period > 0,
        ),
        (
            "cpuset_cpus",
            docker.cpuset_cpus.is_empty() && !current.cpuset_cpus.is_empty(),
        ),
        (
            "cpuset_mems",
            docker.cpuset_mems.is_empty() && !current.cpuset_mems.is_empty(),
        ),
    ];
    if let Some((field, _)) = removed.iter().find(|(_, removed)| *removed) {
        return Err(ContainerConfigError::unsupported(
            *field,
            "Docker's update cannot remove a limit from an existing container, only change it",
        ));
    }
    // An unchanged process limit is left out, so an update that does not
    // change it never touches the pids cgroup.
    docker.pids_limit = docker
        .pids_limit
        .filter(|limit| (*limit).max(0) != current.pids_limit);
    Ok(docker)
}

/// What an update does to the OOM score adjustment of a container created
/// with `current` that is `running` or not: the value asked for is
/// written to the processes of a running container (even when it equals
/// the creation value: an earlier update may have changed them). A
/// container that runs no process would get its creation value again when
/// started, so another value is refused for it.
pub fn oom_score_update(
    resources: &v1::LinuxContainerResources,
    current: &index::Resources,
    running: bool,
) -> Result<OomScoreUpdate, ContainerConfigError> {
    let asked = oom_score_adj(resources.oom_score_adj)?;
    if running {
        return Ok(OomScoreUpdate::Write(asked));
    }
    if i64::from(asked) == current.oom_score_adj {
        return Ok(OomScoreUpdate::Keep);
    }
    Err(ContainerConfigError::unsupported(
        "oom_score_adj",
        format!(
            "the container is not running, and Docker would start it again with the value it \
             was created with ({}, {asked} was asked)",
            current.oom_score_adj
        ),
    ))
}

/// The CRI view of the resources Docker applied, for ContainerStatus.
pub fn cri_resources(current: &index::Resources) -> v1::LinuxContainerResources {
    let unified = if current.pids_limit > 0 {
        HashMap::from([(PIDS_MAX_FILE.to_owned(), current.pids_limit.to_string())])
    } else {
        HashMap::new()
    };
    v1::LinuxContainerResources {
        cpu_period: current.cpu_period,
        cpu_quota: current.cpu_quota,
        cpu_shares: current.cpu_shares,
        memory_limit_in_bytes: current.memory_limit,
        oom_score_adj: current.oom_score_adj,
        cpuset_cpus: current.cpuset_cpus.clone(),
        cpuset_mems: current.cpuset_mems.clone(),
        memory_swap_limit_in_bytes: current.memory_swap.max(0),
        unified,
        ..v1::LinuxContainerResources::default()
    }
}

fn memory_swap(
    memory: Option<i64>,
    swap_total: Option<i64>,
    swap_max: Option<CgroupMax>,
    node_has_swap: bool,
) -> Result<Option<i64>, ContainerConfigError> {
    let Some(memory) = memory else {
        if swap_total.is_some() {
            return Err(ContainerConfigError::invalid(
                "memory_swap_limit_in_bytes",
                "a swap limit needs memory_limit_in_bytes",
            ));
        }
        return match swap_max {
            Some(CgroupMax::Limit(_)) if node_has_swap => Err(ContainerConfigError::unsupported(
                format!("unified[{SWAP_MAX_FILE:?}]"),
                "Docker cannot limit the swap of a container without a memory limit, \
                 and this node has swap",
            )),
            _ => Ok(None),
        };
    };
    let from_unified = match swap_max {
        None => None,
        Some(CgroupMax::Unlimited) => Some(DOCKER_UNLIMITED_SWAP),
        Some(CgroupMax::Limit(swap)) => Some(memory.checked_add(swap).ok_or_else(|| {
            ContainerConfigError::invalid(
                format!("unified[{SWAP_MAX_FILE:?}]"),
                format!("{swap} plus the memory limit overflows"),
            )
        })?),
    };
    if let Some(total) = swap_total {
        if total < memory {
            return Err(ContainerConfigError::invalid(
                "memory_swap_limit_in_bytes",
                format!("{total} is below memory_limit_in_bytes {memory}"),
            ));
        }
        if from_unified.is_some_and(|unified| unified != total) {
            return Err(ContainerConfigError::invalid(
                "memory_swap_limit_in_bytes",
                format!("{total} disagrees with unified[{SWAP_MAX_FILE:?}]"),
            ));
        }
    }
    Ok(Some(swap_total.or(from_unified).unwrap_or(memory)))
}

fn check_hugepage_limits(limits: &[v1::HugepageLimit]) -> Result<(), ContainerConfigError> {
    match limits.iter().find(|limit| limit.limit != 0) {
        None => Ok(()),
        Some(limit) => Err(ContainerConfigError::unsupported(
            format!("hugepage_limits[{:?}]", limit.page_size),
            format!(
                "Docker has no per-container hugetlb limit ({} bytes asked); only the pod's \
                 cgroup limits hugepages",
                limit.limit
            ),
        )),
    }
}

fn unified(unified: &HashMap<String, String>) -> Result<Unified, ContainerConfigError> {
    // The least unmapped key, so that every retry reports the same one.
    if let Some(key) = unified
        .keys()
        .filter(|key| !MAPPED_FILES.contains(&key.as_str()))
        .min()
    {
        return Err(ContainerConfigError::unsupported(
            format!("unified[{key:?}]"),
            format!("Docker sets no cgroup v2 file by name; only {MAPPED_FILES:?} are mapped"),
        ));
    }
    let swap_max = unified
        .get(SWAP_MAX_FILE)
        .map(|value| cgroup_max(SWAP_MAX_FILE, value, "a byte count"))
        .transpose()?;
    let pids_max = unified
        .get(PIDS_MAX_FILE)
        .map(|value| cgroup_max(PIDS_MAX_FILE, value, "a number of processes"))
        .transpose()?;
    if pids_max == Some(CgroupMax::Limit(0)) {
        return Err(ContainerConfigError::unsupported(
            format!("unified[{PIDS_MAX_FILE:?}]"),
            "Docker reads a process limit of 0 as no limit at all",
        ));
    }
    Ok(Unified { swap_max, pids_max })
}

/// The limit a cgroup v2 `*.max` file `value` states: `max`, or a count
/// in plain decimal digits.
fn cgroup_max(file: &str, value: &str, count: &str) -> Result<CgroupMax, ContainerConfigError> {
    if value == UNLIMITED {
        return Ok(CgroupMax::Unlimited);
    }
    let digits = !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit());
    match value.parse::<i64>() {
        Ok(limit) if digits => Ok(CgroupMax::Limit(limit)),
        _ => Err(ContainerConfigError::invalid(
            format!("unified[{file:?}]"),
            format!("{value:?} is neither {count} nor {UNLIMITED:?}"),
        )),
    }
}

/// `Some(value)` for a positive value, `None` for 0 (unset).
fn positive(field: &str, value: i64) -> Result<Option<i64>, ContainerConfigError> {
    match value {
        0 => Ok(None),
        1.. => Ok(Some(value)),
        _ => Err(ContainerConfigError::invalid(
            field,
            format!("{value} is negative"),
        )),
    }
}

/// A cpuset list such as `0-3,8`; the kernel checks the numbers.
fn cpuset(field: &str, value: &str) -> Result<String, ContainerConfigError> {
    if value
        .chars()
        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
    {
        return Ok(value.to_owned());
    }
    Err(ContainerConfigError::invalid(
        field,
        format!("{value:?} is not a list of numbers and ranges"),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::grpc::Code;

    const MIB: i64 = 1024 * 1024;

    fn with_memory(memory: i64) -> v1::LinuxContainerResources {
        v1::LinuxContainerResources {
            memory_limit_in_bytes: memory,
            ..v1::LinuxContainerResources::default()
        }
    }

    fn swap_max(value: &str) -> HashMap<String, String> {
        unified_file(SWAP_MAX_FILE, value)
    }

    fn unified_file(file: &str, value: &str) -> HashMap<String, String> {
        HashMap::from([(file.to_owned(), value.to_owned())])
    }

    #[test]
    fn each_resource_field_reaches_its_docker_field() {
        type Edit = fn(&mut v1::LinuxContainerResources);
        let cases: [(Edit, Resources); 9] = [
            (|_| {}, Resources::default()),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "100"),
                Resources {
                    pids_limit: Some(100),
                    ..Resources::default()
                },
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "max"),
                Resources {
                    pids_limit: Some(-1),
                    ..Resources::default()
                },
            ),
            (
                |r| r.cpu_shares = 512,
                Resources {
                    cpu_shares: Some(512),
                    ..Resources::default()
                },
            ),
            (
                |r| r.cpu_quota = 50_000,
                Resources {
                    cpu_quota: Some(50_000),
                    ..Resources::default()
                },
            ),
            (
                |r| r.cpu_period = 100_000,
                Resources {
                    cpu_period: Some(100_000),
                    ..Resources::default()
                },
            ),
            (
                |r| r.cpuset_cpus = "0-1,3".to_owned(),
                Resources {
                    cpuset_cpus: "0-1,3".to_owned(),
                    ..Resources::default()
                },
            ),
            (
                |r| r.cpuset_mems = "0".to_owned(),
                Resources {
                    cpuset_mems: "0".to_owned(),
                    ..Resources::default()
                },
            ),
            (
                |r| r.memory_limit_in_bytes = 64 * MIB,
                Resources {
                    memory: Some(64 * MIB),
                    memory_swap: Some(64 * MIB),
                    ..Resources::default()
                },
            ),
        ];
        for (edit, expected) in cases {
            let mut resources = v1::LinuxContainerResources::default();
            edit(&mut resources);
            assert_eq!(
                docker_resources(&resources, true).unwrap(),
                expected,
                "{resources:?}"
            );
        }
    }

    #[test]
    fn swap_comes_from_either_swap_field_as_a_total() {
        let cases = [
            (with_memory(64 * MIB), Some(64 * MIB)),
            (
                v1::LinuxContainerResources {
                    memory_swap_limit_in_bytes: 96 * MIB,
                    ..with_memory(64 * MIB)
                },
                Some(96 * MIB),
            ),
            (
                v1::LinuxContainerResources {
                    unified: swap_max("0"),
                    ..with_memory(64 * MIB)
                },
                Some(64 * MIB),
            ),
            (
                v1::LinuxContainerResources {
                    unified: swap_max("1048576"),
                    ..with_memory(64 * MIB)
                },
                Some(65 * MIB),
            ),
            (
                v1::LinuxContainerResources {
                    unified: swap_max("max"),
                    ..with_memory(64 * MIB)
                },
                Some(-1),
            ),
            (
                v1::LinuxContainerResources {
                    memory_swap_limit_in_bytes: 64 * MIB,
                    unified: swap_max("0"),
                    ..with_memory(64 * MIB)
                },
                Some(64 * MIB),
            ),
        ];
        for (resources, expected) in cases {
            let docker = docker_resources(&resources, true).unwrap();
            assert_eq!(docker.memory_swap, expected, "{resources:?}");
        }
    }

    #[test]
    fn a_swap_cap_without_a_memory_limit_holds_only_on_a_node_without_swap() {
        let resources = v1::LinuxContainerResources {
            unified: swap_max("0"),
            ..v1::LinuxContainerResources::default()
        };
        let docker = docker_resources(&resources, false).unwrap();
        assert_eq!((docker.memory, docker.memory_swap), (None, None));
        let err = docker_resources(&resources, true).unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        assert!(
            err.to_string()
                .starts_with("unified[\"memory.swap.max\"]: not supported with Docker"),
            "{err}"
        );
        let unlimited = v1::LinuxContainerResources {
            unified: swap_max("max"),
            ..v1::LinuxContainerResources::default()
        };
        assert_eq!(
            docker_resources(&unlimited, true).unwrap().memory_swap,
            None
        );
    }

    #[test]
    fn zero_hugepage_limits_are_accepted_and_others_refused() {
        let limit = |page_size: &str, limit: u64| v1::HugepageLimit {
            page_size: page_size.to_owned(),
            limit,
        };
        let zeroes = v1::LinuxContainerResources {
            hugepage_limits: vec![limit("2MB", 0), limit("1GB", 0)],
            ..v1::LinuxContainerResources::default()
        };
        assert!(docker_resources(&zeroes, false).is_ok());
        let asked = v1::LinuxContainerResources {
            hugepage_limits: vec![limit("2MB", 0), limit("1GB", 1 << 30)],
            ..v1::LinuxContainerResources::default()
        };
        let err = docker_resources(&asked, false).unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        assert!(
            err.to_string().starts_with("hugepage_limits[\"1GB\"]"),
            "{err}"
        );
    }

    #[test]
    fn impossible_resources_are_refused_naming_the_field() {
        type Edit = fn(&mut v1::LinuxContainerResources);
        let cases: [(Edit, Code, &str); 13] = [
            (
                |r| r.cpu_shares = -2,
                Code::InvalidArgument,
                "cpu_shares: -2 is negative",
            ),
            (
                |r| r.memory_limit_in_bytes = -1,
                Code::InvalidArgument,
                "memory_limit_in_bytes: -1",
            ),
            (
                |r| r.cpuset_cpus = "all".to_owned(),
                Code::InvalidArgument,
                "cpuset_cpus: \"all\"",
            ),
            (
                |r| r.memory_swap_limit_in_bytes = MIB,
                Code::InvalidArgument,
                "memory_swap_limit_in_bytes: a swap limit needs",
            ),
            (
                |r| {
                    r.memory_limit_in_bytes = 2 * MIB;
                    r.memory_swap_limit_in_bytes = MIB;
                },
                Code::InvalidArgument,
                "memory_swap_limit_in_bytes: 1048576 is below",
            ),
            (
                |r| {
                    r.memory_limit_in_bytes = MIB;
                    r.memory_swap_limit_in_bytes = 2 * MIB;
                    r.unified = swap_max("0");
                },
                Code::InvalidArgument,
                "memory_swap_limit_in_bytes: 2097152 disagrees",
            ),
            (
                |r| r.unified = swap_max("lots"),
                Code::InvalidArgument,
                "unified[\"memory.swap.max\"]: \"lots\"",
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "-1"),
                Code::InvalidArgument,
                "unified[\"pids.max\"]: \"-1\" is neither a number of processes nor \"max\"",
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "+5"),
                Code::InvalidArgument,
                "unified[\"pids.max\"]: \"+5\"",
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, ""),
                Code::InvalidArgument,
                "unified[\"pids.max\"]: \"\"",
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "99999999999999999999"),
                Code::InvalidArgument,
                "unified[\"pids.max\"]: \"99999999999999999999\"",
            ),
            (
                |r| r.unified = unified_file(PIDS_MAX_FILE, "0"),
                Code::Unimplemented,
                "unified[\"pids.max\"]: not supported with Docker: Docker reads a process limit \
                 of 0",
            ),
            (
                |r| r.unified = unified_file("memory.high", "1000"),
                Code::Unimplemented,
                "unified[\"memory.high\"]: not supported with Docker",
            ),
        ];
        for (edit, code, message) in cases {
            let mut resources = v1::LinuxContainerResources::default();
            edit(&mut resources);
            let err = docker_resources(&resources, false).unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().starts_with(message), "{err}");
        }
    }

    #[test]
    fn oom_score_adj_is_checked_against_the_kernel_range() {
        assert_eq!(oom_score_adj(-998).unwrap(), -998);
        assert_eq!(oom_score_adj(1000).unwrap(), 1000);
        assert!(oom_score_adj(1001).is_err());
        assert!(oom_score_adj(-1001).is_err());
    }

    #[test]
    fn an_update_body_carries_every_changeable_field() {
        let resources = v1::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            cpu_shares: 204,
            memory_limit_in_bytes: 128 * MIB,
            oom_score_adj: 999,
            cpuset_cpus: "0".to_owned(),
            cpuset_mems: "0".to_owned(),
            unified: HashMap::from([
                (SWAP_MAX_FILE.to_owned(), "0".to_owned()),
                (PIDS_MAX_FILE.to_owned(), "200".to_owned()),
            ]),
            hugepage_limits: vec![v1::HugepageLimit {
                page_size: "2MB".to_owned(),
                limit: 0,
            }],
            ..v1::LinuxContainerResources::default()
        };
        let current = index::Resources {
            oom_score_adj: 0,
            memory_limit: 64 * MIB,
            pids_limit: 100,
            ..index::Resources::default()
        };
        let body = update_resources_body(&resources, &current, true).unwrap();
        assert_eq!(
            body.to_json(),
            json!({
                "Memory": 128 * MIB,
                "MemorySwap": 128 * MIB,
                "CpuShares": 204,
                "CpuQuota": 20_000,
                "CpuPeriod": 100_000,
                "CpusetCpus": "0",
                "CpusetMems": "0",
                "PidsLimit": 200
            })
        );
    }

    #[test]
    fn an_update_sends_the_process_limit_only_when_it_changes() {
        let limited = index::Resources {
            pids_limit: 100,
            ..index::Resources::default()
        };
        let unlimited = index::Resources::default();
        let cases = [
            (&limited, Some("100"), None),
            (&limited, Some("200"), Some(200)),
            (&limited, Some("max"), Some(-1)),
            (&limited, None, None),
            (&unlimited, Some("max"), None),
            (&unlimited, Some("100"), Some(100)),
        ];
        for (current, asked, expected) in cases {
            let resources = v1::LinuxContainerResources {
                unified: asked
                    .map_or_else(HashMap::new, |value| unified_file(PIDS_MAX_FILE, value)),
                ..v1::LinuxContainerResources::default()
            };
            let body = update_resources_body(&resources, current, false).unwrap();
            assert_eq!(body.pids_limit, expected, "{asked:?} on {current:?}");
        }
    }

    #[test]
    fn a_running_container_gets_any_oom_score_adj_and_a_stopped_one_keeps_its_own() {
        let current = index::Resources {
            oom_score_adj: 500,
            ..index::Resources::default()
        };
        let asking = |value: i64| v1::LinuxContainerResources {
            oom_score_adj: value,
            ..v1::LinuxContainerResources::default()
        };
        let cases = [
            (500, true, OomScoreUpdate::Write(500)),
            (0, true, OomScoreUpdate::Write(0)),
            (-998, true, OomScoreUpdate::Write(-998)),
            (500, false, OomScoreUpdate::Keep),
        ];
        for (asked, running, expected) in cases {
            assert_eq!(
                oom_score_update(&asking(asked), &current, running).unwrap(),
                expected,
                "{asked} running={running}"
            );
        }
        let err = oom_score_update(&asking(0), &current, false).unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
        assert!(
            err.to_string().starts_with(
                "oom_score_adj: not supported with Docker: the container is not running"
            ),
            "{err}"
        );
        let err = oom_score_update(&asking(1001), &current, true).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        let err = update_resources_body(&asking(-1001), &current, false).unwrap_err();
        assert!(err.to_string().starts_with("oom_score_adj: -1001"), "{err}");
    }

    #[test]
    fn an_update_docker_cannot_apply_is_refused() {
        let current = index::Resources {
            oom_score_adj: 999,
            memory_limit: 64 * MIB,
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpuset_cpus: "0".to_owned(),
            cpuset_mems: "0".to_owned(),
            ..index::Resources::default()
        };
        let same = v1::LinuxContainerResources {
            oom_score_adj: 999,
            memory_limit_in_bytes: 64 * MIB,
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            cpuset_cpus: "0".to_owned(),
            cpuset_mems: "0".to_owned(),
            ..v1::LinuxContainerResources::default()
        };
        assert!(update_resources_body(&same, &current, false).is_ok());
        type Edit = fn(&mut v1::LinuxContainerResources);
        let cases: [(Edit, &str); 8] = [
            (|r| r.memory_limit_in_bytes = 0, "memory_limit_in_bytes"),
            (|r| r.cpu_shares = 0, "cpu_shares"),
            (|r| r.cpu_quota = 0, "cpu_quota"),
            (|r| r.cpu_period = 0, "cpu_period"),
            (|r| r.cpuset_cpus = String::new(), "cpuset_cpus"),
            (|r| r.cpuset_mems = String::new(), "cpuset_mems"),
            (
                |r| {
                    r.hugepage_limits = vec![v1::HugepageLimit {
                        page_size: "2MB".to_owned(),
                        limit: 2 << 20,
                    }]
                },
                "hugepage_limits[\"2MB\"]",
            ),
            (
                |r| r.unified = unified_file("memory.high", "1000"),
                "unified[\"memory.high\"]",
            ),
        ];
        for (edit, field) in cases {
            let mut resources = same.clone();
            edit(&mut resources);
            let err = update_resources_body(&resources, &current, false).unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("{field}: not supported with Docker")),
                "{err}"
            );
        }
    }

    #[test]
    fn status_resources_mirror_what_docker_applied() {
        let current = index::Resources {
            cpu_shares: 2,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            memory_limit: 64 * MIB,
            memory_swap: -1,
            cpuset_cpus: "0".to_owned(),
            cpuset_mems: String::new(),
            oom_score_adj: 1000,
            pids_limit: 100,
        };
        let cri = cri_resources(&current);
        assert_eq!(
            (
                cri.cpu_shares,
                cri.cpu_period,
                cri.cpu_quota,
                cri.memory_limit_in_bytes,
                cri.memory_swap_limit_in_bytes,
                cri.oom_score_adj,
                cri.cpuset_cpus.as_str()
            ),
            (2, 100_000, 50_000, 64 * MIB, 0, 1000, "0")
        );
        assert_eq!(cri.unified, unified_file(PIDS_MAX_FILE, "100"));
        let unlimited = index::Resources {
            pids_limit: 0,
            ..current
        };
        assert!(cri_resources(&unlimited).unified.is_empty());
    }
}
