//! The metrics of ListMetricDescriptors and ListPodSandboxMetrics: the
//! cAdvisor names the kubelet serves on `/metrics/cadvisor`, their help
//! and label keys, and the conversion of a pod's CRI stats into samples
//! of them.
//!
//! Everything here is pure: the figures come from `cri::stats::StatsService`,
//! already read; this module must not read the cgroup filesystem, `/proc`
//! or dockerd itself. Every sample is built from its descriptor, so its
//! type and the order of its label values always match what
//! ListMetricDescriptors announced. Pod-level samples carry an empty
//! `container` label, as cAdvisor's pod cgroup series do.

use crate::api::v1;

/// Nanoseconds in a second: CPU time is counted in whole seconds, the
/// unit the metric's name promises, since a sample's value is an integer.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Labels of a container's (or, with `container` empty, a pod's) series.
const CONTAINER_LABELS: &[&str] = &["container", "pod", "namespace"];
/// Labels of a pod's network series, one per interface.
const INTERFACE_LABELS: &[&str] = &["container", "pod", "namespace", "interface"];

/// One metric as ListMetricDescriptors announces it.
#[derive(Debug)]
struct Described {
    name: &'static str,
    help: &'static str,
    kind: v1::MetricType,
    labels: &'static [&'static str],
}

const CPU_USAGE: Described = Described {
    name: "container_cpu_usage_seconds_total",
    help: "Cumulative cpu time consumed in seconds.",
    kind: v1::MetricType::Counter,
    labels: CONTAINER_LABELS,
};
const MEMORY_USAGE: Described = Described {
    name: "container_memory_usage_bytes",
    help: "Current memory usage in bytes, including all memory regardless of when it was accessed.",
    kind: v1::MetricType::Gauge,
    labels: CONTAINER_LABELS,
};
const MEMORY_WORKING_SET: Described = Described {
    name: "container_memory_working_set_bytes",
    help: "Current working set in bytes.",
    kind: v1::MetricType::Gauge,
    labels: CONTAINER_LABELS,
};
const MEMORY_RSS: Described = Described {
    name: "container_memory_rss",
    help: "Size of RSS in bytes.",
    kind: v1::MetricType::Gauge,
    labels: CONTAINER_LABELS,
};
const MEMORY_LIMIT: Described = Described {
    name: "container_spec_memory_limit_bytes",
    help: "Memory limit for the container.",
    kind: v1::MetricType::Gauge,
    labels: CONTAINER_LABELS,
};
const PROCESSES: Described = Described {
    name: "container_processes",
    help: "Number of processes running inside the container.",
    kind: v1::MetricType::Gauge,
    labels: CONTAINER_LABELS,
};
const NETWORK_RECEIVE: Described = Described {
    name: "container_network_receive_bytes_total",
    help: "Cumulative count of bytes received.",
    kind: v1::MetricType::Counter,
    labels: INTERFACE_LABELS,
};
const NETWORK_TRANSMIT: Described = Described {
    name: "container_network_transmit_bytes_total",
    help: "Cumulative count of bytes transmitted.",
    kind: v1::MetricType::Counter,
    labels: INTERFACE_LABELS,
};

/// Every metric ListPodSandboxMetrics may report.
const DESCRIBED: [&Described; 8] = [
    &CPU_USAGE,
    &MEMORY_USAGE,
    &MEMORY_WORKING_SET,
    &MEMORY_RSS,
    &MEMORY_LIMIT,
    &PROCESSES,
    &NETWORK_RECEIVE,
    &NETWORK_TRANSMIT,
];

/// ListMetricDescriptors: the same list for the runtime's lifetime.
pub fn descriptors() -> Vec<v1::MetricDescriptor> {
    DESCRIBED
        .iter()
        .map(|described| v1::MetricDescriptor {
            name: described.name.to_owned(),
            help: described.help.to_owned(),
            label_keys: described.labels.iter().map(|&key| key.to_owned()).collect(),
        })
        .collect()
}

/// A pod's metrics from its stats: pod-level series from its own figures
/// and network counters, one set per running container from theirs. A
/// sandbox without figures (not ready) has no samples.
pub fn pod_sandbox_metrics(stats: &v1::PodSandboxStats) -> v1::PodSandboxMetrics {
    let attributes = stats.attributes.as_ref();
    let metadata = attributes.and_then(|a| a.metadata.as_ref());
    let pod = metadata.map_or("", |m| m.name.as_str());
    let namespace = metadata.map_or("", |m| m.namespace.as_str());
    let mut metrics = Vec::new();
    let mut container_metrics = Vec::new();
    if let Some(linux) = stats.linux.as_ref() {
        let labels = [String::new(), pod.to_owned(), namespace.to_owned()];
        push_usage(
            &mut metrics,
            &labels,
            linux.cpu.as_ref(),
            linux.memory.as_ref(),
        );
        if let Some(process) = linux.process.as_ref() {
            push(
                &mut metrics,
                &PROCESSES,
                process.timestamp,
                &labels,
                process.process_count,
            );
        }
        if let Some(network) = linux.network.as_ref() {
            push_network(&mut metrics, &labels, network);
        }
        container_metrics = linux
            .containers
            .iter()
            .map(|container| container_metrics_of(container, pod, namespace))
            .collect();
    }
    v1::PodSandboxMetrics {
        pod_sandbox_id: attributes.map(|a| a.id.clone()).unwrap_or_default(),
        metrics,
        container_metrics,
    }
}

fn container_metrics_of(
    stats: &v1::ContainerStats,
    pod: &str,
    namespace: &str,
) -> v1::ContainerMetrics {
    let attributes = stats.attributes.as_ref();
    let name = attributes
        .and_then(|a| a.metadata.as_ref())
        .map_or("", |m| m.name.as_str());
    let labels = [name.to_owned(), pod.to_owned(), namespace.to_owned()];
    let mut metrics = Vec::new();
    push_usage(
        &mut metrics,
        &labels,
        stats.cpu.as_ref(),
        stats.memory.as_ref(),
    );
    v1::ContainerMetrics {
        container_id: attributes.map(|a| a.id.clone()).unwrap_or_default(),
        metrics,
    }
}

/// The CPU and memory series of one cgroup. The limit is known only when
/// the stats name the memory still available below it.
fn push_usage(
    out: &mut Vec<v1::Metric>,
    labels: &[String],
    cpu: Option<&v1::CpuUsage>,
    memory: Option<&v1::MemoryUsage>,
) {
    if let Some(cpu) = cpu {
        let seconds = cpu.usage_core_nano_seconds.map(|nanos| v1::UInt64Value {
            value: nanos.value / NANOS_PER_SECOND,
        });
        push(out, &CPU_USAGE, cpu.timestamp, labels, seconds);
    }
    if let Some(memory) = memory {
        push(
            out,
            &MEMORY_USAGE,
            memory.timestamp,
            labels,
            memory.usage_bytes,
        );
        push(
            out,
            &MEMORY_WORKING_SET,
            memory.timestamp,
            labels,
            memory.working_set_bytes,
        );
        push(out, &MEMORY_RSS, memory.timestamp, labels, memory.rss_bytes);
        let limit = memory
            .available_bytes
            .zip(memory.working_set_bytes)
            .and_then(|(available, working_set)| available.value.checked_add(working_set.value))
            .map(|value| v1::UInt64Value { value });
        push(out, &MEMORY_LIMIT, memory.timestamp, labels, limit);
    }
}

/// Received and transmitted bytes of every interface of the pod.
fn push_network(out: &mut Vec<v1::Metric>, labels: &[String], network: &v1::NetworkUsage) {
    for interface in network.default_interface.iter().chain(&network.interfaces) {
        let mut labels = labels.to_vec();
        labels.push(interface.name.clone());
        push(
            out,
            &NETWORK_RECEIVE,
            network.timestamp,
            &labels,
            interface.rx_bytes,
        );
        push(
            out,
            &NETWORK_TRANSMIT,
            network.timestamp,
            &labels,
            interface.tx_bytes,
        );
    }
}

/// Appends a sample of `described`, if the figure is known.
fn push(
    out: &mut Vec<v1::Metric>,
    described: &Described,
    timestamp: i64,
    labels: &[String],
    value: Option<v1::UInt64Value>,
) {
    let Some(value) = value else {
        return;
    };
    out.push(v1::Metric {
        name: described.name.to_owned(),
        timestamp,
        metric_type: described.kind as i32,
        label_values: labels.to_vec(),
        value: Some(value),
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;

    fn figure(value: u64) -> Option<v1::UInt64Value> {
        Some(v1::UInt64Value { value })
    }

    fn usage(cpu_nanos: u64, working_set: u64) -> (v1::CpuUsage, v1::MemoryUsage) {
        let cpu = v1::CpuUsage {
            timestamp: T0,
            usage_core_nano_seconds: figure(cpu_nanos),
            ..v1::CpuUsage::default()
        };
        let memory = v1::MemoryUsage {
            timestamp: T0,
            working_set_bytes: figure(working_set),
            usage_bytes: figure(working_set + 1_000),
            rss_bytes: figure(working_set / 2),
            ..v1::MemoryUsage::default()
        };
        (cpu, memory)
    }

    fn pod_stats() -> v1::PodSandboxStats {
        let (app_cpu, mut app_memory) = usage(2_500_000_000, 40_000);
        app_memory.available_bytes = figure(60_000);
        let app = v1::ContainerStats {
            attributes: Some(v1::ContainerAttributes {
                id: "c0ffee".to_owned(),
                metadata: Some(v1::ContainerMetadata {
                    name: "app".to_owned(),
                    attempt: 0,
                }),
                ..v1::ContainerAttributes::default()
            }),
            cpu: Some(app_cpu),
            memory: Some(app_memory),
            ..v1::ContainerStats::default()
        };
        let (cpu, memory) = usage(3_000_000_000, 50_000);
        let interface = |name: &str, rx: u64, tx: u64| v1::NetworkInterfaceUsage {
            name: name.to_owned(),
            rx_bytes: figure(rx),
            tx_bytes: figure(tx),
            ..v1::NetworkInterfaceUsage::default()
        };
        v1::PodSandboxStats {
            attributes: Some(v1::PodSandboxAttributes {
                id: "5d1b".to_owned(),
                metadata: Some(v1::PodSandboxMetadata {
                    name: "web".to_owned(),
                    namespace: "prod".to_owned(),
                    ..v1::PodSandboxMetadata::default()
                }),
                ..v1::PodSandboxAttributes::default()
            }),
            linux: Some(v1::LinuxPodSandboxStats {
                cpu: Some(cpu),
                memory: Some(memory),
                network: Some(v1::NetworkUsage {
                    timestamp: T0,
                    default_interface: Some(interface("eth0", 736, 586)),
                    interfaces: vec![interface("lo", 10, 10)],
                }),
                process: Some(v1::ProcessUsage {
                    timestamp: T0,
                    process_count: figure(4),
                }),
                containers: vec![app],
                io: None,
            }),
            windows: None,
        }
    }

    /// `(labels, value)` of the samples named `name`.
    fn samples(metrics: &[v1::Metric], name: &str) -> Vec<(Vec<String>, u64)> {
        metrics
            .iter()
            .filter(|m| m.name == name)
            .map(|m| (m.label_values.clone(), m.value.unwrap().value))
            .collect()
    }

    fn labels(values: &[&str]) -> Vec<String> {
        values.iter().map(|&v| v.to_owned()).collect()
    }

    #[test]
    fn descriptors_are_unique_and_carry_the_cadvisor_label_keys() {
        let descriptors = descriptors();
        let names: HashSet<&str> = descriptors.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names.len(), descriptors.len());
        let cpu = descriptors
            .iter()
            .find(|d| d.name == CPU_USAGE.name)
            .unwrap();
        assert_eq!(cpu.label_keys, ["container", "pod", "namespace"]);
        assert!(!cpu.help.is_empty());
        let rx = descriptors
            .iter()
            .find(|d| d.name == "container_network_receive_bytes_total")
            .unwrap();
        assert_eq!(
            rx.label_keys,
            ["container", "pod", "namespace", "interface"]
        );
    }

    #[test]
    fn every_sample_matches_its_descriptor() {
        let kinds: HashMap<String, (usize, v1::MetricType)> = DESCRIBED
            .iter()
            .map(|d| (d.name.to_owned(), (d.labels.len(), d.kind)))
            .collect();
        let metrics = pod_sandbox_metrics(&pod_stats());
        let all = metrics
            .metrics
            .iter()
            .chain(metrics.container_metrics.iter().flat_map(|c| &c.metrics));
        for sample in all {
            let (label_count, kind) = kinds[&sample.name];
            assert_eq!(sample.label_values.len(), label_count, "{sample:?}");
            assert_eq!(sample.metric_type, kind as i32, "{sample:?}");
            assert_eq!(sample.timestamp, T0);
        }
    }

    #[test]
    fn a_pod_has_its_own_series_with_an_empty_container_label() {
        let metrics = pod_sandbox_metrics(&pod_stats());
        assert_eq!(metrics.pod_sandbox_id, "5d1b");
        let pod = labels(&["", "web", "prod"]);
        assert_eq!(
            samples(&metrics.metrics, CPU_USAGE.name),
            [(pod.clone(), 3)]
        );
        assert_eq!(
            samples(&metrics.metrics, MEMORY_WORKING_SET.name),
            [(pod.clone(), 50_000)]
        );
        assert_eq!(
            samples(&metrics.metrics, MEMORY_USAGE.name),
            [(pod.clone(), 51_000)]
        );
        assert_eq!(
            samples(&metrics.metrics, MEMORY_RSS.name),
            [(pod.clone(), 25_000)]
        );
        assert_eq!(samples(&metrics.metrics, PROCESSES.name), [(pod, 4)]);
        // No memory available figure: no known limit.
        assert!(samples(&metrics.metrics, MEMORY_LIMIT.name).is_empty());
    }

    #[test]
    fn network_counters_are_per_interface_at_pod_level() {
        let metrics = pod_sandbox_metrics(&pod_stats());
        assert_eq!(
            samples(&metrics.metrics, NETWORK_RECEIVE.name),
            [
                (labels(&["", "web", "prod", "eth0"]), 736),
                (labels(&["", "web", "prod", "lo"]), 10),
            ]
        );
        assert_eq!(
            samples(&metrics.metrics, NETWORK_TRANSMIT.name)[0],
            (labels(&["", "web", "prod", "eth0"]), 586)
        );
        let container = &metrics.container_metrics[0].metrics;
        assert!(samples(container, NETWORK_RECEIVE.name).is_empty());
    }

    #[test]
    fn a_container_has_whole_cpu_seconds_and_a_limit_when_memory_is_bounded() {
        let metrics = pod_sandbox_metrics(&pod_stats());
        assert_eq!(metrics.container_metrics.len(), 1);
        let app = &metrics.container_metrics[0];
        assert_eq!(app.container_id, "c0ffee");
        let app_labels = labels(&["app", "web", "prod"]);
        assert_eq!(
            samples(&app.metrics, CPU_USAGE.name),
            [(app_labels.clone(), 2)]
        );
        assert_eq!(
            samples(&app.metrics, MEMORY_LIMIT.name),
            [(app_labels, 100_000)]
        );
        assert!(samples(&app.metrics, PROCESSES.name).is_empty());
    }

    #[test]
    fn a_sandbox_without_figures_has_no_samples() {
        let mut stats = pod_stats();
        stats.linux = None;
        let metrics = pod_sandbox_metrics(&stats);
        assert_eq!(metrics.pod_sandbox_id, "5d1b");
        assert!(metrics.metrics.is_empty());
        assert!(metrics.container_metrics.is_empty());
    }
}
