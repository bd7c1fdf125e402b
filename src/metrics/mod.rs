//! The Prometheus figures dockshim exposes: per-method gRPC call counts,
//! error counts by code and latency histograms, Docker Engine API call
//! counts and latencies by HTTP method, and the text rendering of all of it
//! together with the index gauges read at scrape time.
//!
//! The registry is a fixed set of atomics, sized once from the method table,
//! so recording never allocates or locks. It is a process-wide value
//! installed only when `--metrics-addr` is given: the server's dispatch and
//! the Docker client reach it through [`record_grpc`] and [`record_docker`]
//! without any handle threaded through their constructors, and record
//! nothing when it is absent. This module does not serve HTTP; `server`
//! does.

pub mod server;

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::grpc::Code;

/// Upper bounds of the latency buckets, in microseconds: 0.5 ms to 10 s.
const BUCKET_BOUNDS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// One slot per bucket plus the overflow slot for anything slower.
const BUCKET_SLOTS: usize = BUCKET_BOUNDS_MICROS.len() + 1;

/// gRPC status codes, 0 to 16.
const CODES: usize = 17;

/// Docker calls are counted under these methods; any other method counts
/// under the last one.
const DOCKER_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OTHER"];

const MICROS_PER_SECOND: u64 = 1_000_000;

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// Installs the process-wide registry; a second call keeps the first one.
pub fn install(metrics: Metrics) -> &'static Metrics {
    GLOBAL.get_or_init(|| metrics)
}

/// Counts one finished gRPC call in the installed registry, if any.
pub fn record_grpc(method: &str, code: Code, elapsed: Duration) {
    if let Some(metrics) = GLOBAL.get() {
        metrics.record_grpc(method, code, elapsed);
    }
}

/// Counts one finished Docker call in the installed registry, if any.
pub fn record_docker(method: &str, elapsed: Duration) {
    if let Some(metrics) = GLOBAL.get() {
        metrics.record_docker(method, elapsed);
    }
}

/// Values read from elsewhere when a scrape comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gauges {
    /// Sandboxes plus containers in the index.
    pub index_entries: usize,
    /// Times the Docker event stream was re-established.
    pub event_stream_reconnects: u64,
}

/// A latency histogram with fixed buckets. Each slot counts only its own
/// range; rendering accumulates, so `+Inf` always equals the count.
#[derive(Debug, Default)]
struct Histogram {
    slots: [AtomicU64; BUCKET_SLOTS],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKET_BOUNDS_MICROS.partition_point(|&bound| bound < micros);
        self.slots[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (slot, bound) in self.slots.iter().zip(BUCKET_BOUNDS_MICROS) {
            cumulative += slot.load(Ordering::Relaxed);
            let le = Seconds(bound);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.slots[BUCKET_SLOTS - 1].load(Ordering::Relaxed);
        let sum = Seconds(self.sum_micros.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Microseconds as decimal seconds without trailing zeros (`0.0005`, `1`,
/// `2.5`): what `f64`'s `Display` writes for them below 10^15 µs, without
/// the float formatting code that would take into the binary.
struct Seconds(u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, mut fraction) = (self.0 / MICROS_PER_SECOND, self.0 % MICROS_PER_SECOND);
        write!(f, "{whole}")?;
        if fraction == 0 {
            return Ok(());
        }
        let mut width = 6;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        write!(f, ".{fraction:0width$}")
    }
}

#[derive(Debug)]
struct GrpcSeries {
    method: &'static str,
    calls: AtomicU64,
    errors: [AtomicU64; CODES],
    latency: Histogram,
}

#[derive(Debug, Default)]
struct DockerSeries {
    calls: AtomicU64,
    latency: Histogram,
}

/// The registry: one series per gRPC method known at start-up and one per
/// Docker method.
#[derive(Debug)]
pub struct Metrics {
    /// Sorted by method, for binary search.
    grpc: Vec<GrpcSeries>,
    docker: [DockerSeries; DOCKER_METHODS.len()],
}

impl Metrics {
    /// A registry for the gRPC methods `methods` (full paths); calls to
    /// other methods are not counted.
    pub fn new(methods: impl IntoIterator<Item = &'static str>) -> Metrics {
        let mut methods: Vec<&'static str> = methods.into_iter().collect();
        methods.sort_unstable();
        methods.dedup();
        let grpc = methods
            .into_iter()
            .map(|method| GrpcSeries {
                method,
                calls: AtomicU64::new(0),
                errors: Default::default(),
                latency: Histogram::default(),
            })
            .collect();
        Metrics {
            grpc,
            docker: Default::default(),
        }
    }

    /// Counts one call to `method` that ended with `code` after `elapsed`.
    pub fn record_grpc(&self, method: &str, code: Code, elapsed: Duration) {
        let Ok(at) = self
            .grpc
            .binary_search_by(|series| series.method.cmp(method))
        else {
            return;
        };
        let series = &self.grpc[at];
        series.calls.fetch_add(1, Ordering::Relaxed);
        if code != Code::Ok {
            series.errors[code as usize].fetch_add(1, Ordering::Relaxed);
        }
        series.latency.observe(elapsed);
    }

    /// Counts one Docker call with HTTP `method` that took `elapsed`.
    pub fn record_docker(&self, method: &str, elapsed: Duration) {
        let at = DOCKER_METHODS
            .iter()
            .position(|known| *known == method)
            .unwrap_or(DOCKER_METHODS.len() - 1);
        let series = &self.docker[at];
        series.calls.fetch_add(1, Ordering::Relaxed);
        series.latency.observe(elapsed);
    }

    /// The Prometheus text exposition format (version 0.0.4) of everything
    /// recorded, plus `gauges`.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "dockshim_grpc_requests_total",
            "counter",
            "CRI gRPC calls answered, by method.",
        );
        for series in &self.grpc {
            let calls = series.calls.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "dockshim_grpc_requests_total{{method=\"{}\"}} {calls}",
                series.method
            );
        }
        header(
            &mut out,
            "dockshim_grpc_errors_total",
            "counter",
            "CRI gRPC calls that ended with a status other than OK, by method and code.",
        );
        for series in &self.grpc {
            for (code, count) in ALL_CODES.iter().zip(&series.errors) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "dockshim_grpc_errors_total{{method=\"{}\",code=\"{}\"}} {count}",
                        series.method,
                        code.name()
                    );
                }
            }
        }
        header(
            &mut out,
            "dockshim_grpc_request_duration_seconds",
            "histogram",
            "Time from the start of a CRI gRPC handler to its outcome, by method.",
        );
        for series in &self.grpc {
            series.latency.render(
                &mut out,
                "dockshim_grpc_request_duration_seconds",
                &format!("method=\"{}\"", series.method),
            );
        }
        header(
            &mut out,
            "dockshim_docker_requests_total",
            "counter",
            "Buffered Docker Engine API calls made, by HTTP method.",
        );
        for (method, series) in DOCKER_METHODS.iter().zip(&self.docker) {
            let calls = series.calls.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "dockshim_docker_requests_total{{method=\"{method}\"}} {calls}"
            );
        }
        header(
            &mut out,
            "dockshim_docker_request_duration_seconds",
            "histogram",
            "Duration of buffered Docker Engine API calls, by HTTP method.",
        );
        for (method, series) in DOCKER_METHODS.iter().zip(&self.docker) {
            series.latency.render(
                &mut out,
                "dockshim_docker_request_duration_seconds",
                &format!("method=\"{method}\""),
            );
        }
        header(
            &mut out,
            "dockshim_index_entries",
            "gauge",
            "Sandboxes plus containers held in the state index.",
        );
        let _ = writeln!(out, "dockshim_index_entries {}", gauges.index_entries);
        header(
            &mut out,
            "dockshim_index_event_stream_reconnects_total",
            "counter",
            "Times the Docker event stream was re-established after being lost.",
        );
        let _ = writeln!(
            out,
            "dockshim_index_event_stream_reconnects_total {}",
            gauges.event_stream_reconnects
        );
        out
    }
}

// Writing to a String cannot fail, so the `writeln!` results above and
// here are ignored.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Every code, at the index of its value, to name the error slots.
const ALL_CODES: [Code; CODES] = [
    Code::Ok,
    Code::Cancelled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    const VERSION: &str = "/runtime.v1.RuntimeService/Version";
    const STATUS: &str = "/runtime.v1.RuntimeService/ContainerStatus";

    #[test]
    fn seconds_are_written_as_an_f64_of_them_displays() {
        let mut micros: Vec<u64> = vec![0, 1, 10, 999_999, 1_000_000, 1_000_001, 123_456_789];
        micros.extend(BUCKET_BOUNDS_MICROS);
        micros.extend((0..40).map(|shift| (1u64 << shift) * 7 + 3));
        micros.push(999_999_999_999_999);
        for m in micros {
            let f64_display = (m as f64 / 1_000_000.0).to_string();
            assert_eq!(Seconds(m).to_string(), f64_display, "{m} µs");
        }
    }

    /// A rendering parsed back: samples by their full `name{labels}`, and
    /// the families that had HELP and TYPE lines, with their type.
    struct Parsed {
        samples: BTreeMap<String, f64>,
        order: Vec<String>,
        types: BTreeMap<String, String>,
    }

    fn parse(text: &str) -> Parsed {
        let mut parsed = Parsed {
            samples: BTreeMap::new(),
            order: Vec::new(),
            types: BTreeMap::new(),
        };
        let mut helped = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap();
                assert!(!help.is_empty(), "empty HELP for {name}");
                helped.insert(name.to_owned());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(helped.contains(name), "TYPE before HELP for {name}");
                parsed.types.insert(name.to_owned(), kind.to_owned());
            } else {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let name = series.split('{').next().unwrap();
                let family = match parsed.types.get(name) {
                    Some(_) => name,
                    None => ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suffix| name.strip_suffix(suffix))
                        .unwrap_or(name),
                };
                let kind = parsed.types.get(family);
                assert!(kind.is_some(), "sample {line:?} has no HELP/TYPE");
                if family != name {
                    assert_eq!(kind.unwrap(), "histogram", "suffix on a non-histogram");
                }
                parsed
                    .samples
                    .insert(series.to_owned(), value.parse().unwrap());
                parsed.order.push(series.to_owned());
            }
        }
        parsed
    }

    fn sample(parsed: &Parsed, series: &str) -> f64 {
        *parsed
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series}"))
    }

    /// Checks every histogram whose labels start with `labels`: buckets in
    /// increasing `le`, counts never decreasing, `+Inf` equal to `_count`.
    fn check_histogram(parsed: &Parsed, name: &str, labels: &str) -> Vec<(String, f64)> {
        let prefix = format!("{name}_bucket{{{labels},le=\"");
        let buckets: Vec<(String, f64)> = parsed
            .order
            .iter()
            .filter_map(|series| {
                let le = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                Some((le.to_owned(), sample(parsed, series)))
            })
            .collect();
        assert_eq!(buckets.len(), BUCKET_SLOTS, "{name}{{{labels}}} buckets");
        for pair in buckets.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "{name}{{{labels}}}: not cumulative");
            if pair[1].0 != "+Inf" {
                let (a, b): (f64, f64) = (pair[0].0.parse().unwrap(), pair[1].0.parse().unwrap());
                assert!(a < b, "{name}{{{labels}}}: le not increasing");
            }
        }
        let (last_le, last) = buckets.last().unwrap();
        assert_eq!(last_le, "+Inf");
        assert_eq!(*last, sample(parsed, &format!("{name}_count{{{labels}}}")));
        buckets
    }

    fn recorded() -> Metrics {
        let metrics = Metrics::new([STATUS, VERSION, VERSION]);
        metrics.record_grpc(VERSION, Code::Ok, Duration::from_micros(300));
        metrics.record_grpc(VERSION, Code::Ok, Duration::from_millis(3));
        metrics.record_grpc(STATUS, Code::NotFound, Duration::from_secs(20));
        metrics.record_grpc("/not.a.Service/Method", Code::Ok, Duration::ZERO);
        metrics.record_docker("GET", Duration::from_millis(2));
        metrics.record_docker("PATCH", Duration::from_millis(2));
        metrics
    }

    #[test]
    fn every_sample_has_help_and_type_and_histograms_are_cumulative() {
        let gauges = Gauges {
            index_entries: 0,
            event_stream_reconnects: 0,
        };
        let parsed = parse(&recorded().render(gauges));

        for method in [VERSION, STATUS] {
            check_histogram(
                &parsed,
                "dockshim_grpc_request_duration_seconds",
                &format!("method=\"{method}\""),
            );
        }
        for method in DOCKER_METHODS {
            check_histogram(
                &parsed,
                "dockshim_docker_request_duration_seconds",
                &format!("method=\"{method}\""),
            );
        }
        assert_eq!(parsed.types["dockshim_index_entries"], "gauge");
        assert_eq!(parsed.types["dockshim_grpc_requests_total"], "counter");
    }

    #[test]
    fn calls_errors_and_latencies_are_counted_per_method() {
        let parsed = parse(&recorded().render(Gauges::default()));

        let version = "method=\"/runtime.v1.RuntimeService/Version\"";
        let status = "method=\"/runtime.v1.RuntimeService/ContainerStatus\"";
        assert_eq!(
            sample(
                &parsed,
                &format!("dockshim_grpc_requests_total{{{version}}}")
            ),
            2.0
        );
        assert_eq!(
            sample(
                &parsed,
                &format!("dockshim_grpc_requests_total{{{status}}}")
            ),
            1.0
        );
        assert_eq!(
            sample(
                &parsed,
                &format!("dockshim_grpc_errors_total{{{status},code=\"NOT_FOUND\"}}")
            ),
            1.0
        );
        assert!(
            !parsed.samples.keys().any(|series| series
                .starts_with(&format!("dockshim_grpc_errors_total{{{version}"))),
            "successful calls are not errors"
        );
        let name = "dockshim_grpc_request_duration_seconds";
        let buckets: BTreeMap<_, _> = check_histogram(&parsed, name, version)
            .into_iter()
            .collect();
        assert_eq!(buckets["0.0005"], 1.0);
        assert_eq!(buckets["0.0025"], 1.0);
        assert_eq!(buckets["0.005"], 2.0);
        assert!((sample(&parsed, &format!("{name}_sum{{{version}}}")) - 0.0033).abs() < 1e-9);
        let slow: BTreeMap<_, _> = check_histogram(&parsed, name, status).into_iter().collect();
        assert_eq!(slow["10"], 0.0, "20 s is above the last finite bucket");
        assert_eq!(slow["+Inf"], 1.0);
        assert!(!parsed
            .samples
            .keys()
            .any(|series| series.contains("not.a.Service")));
    }

    #[test]
    fn docker_calls_are_counted_by_http_method_with_others_pooled() {
        let parsed = parse(&recorded().render(Gauges::default()));

        assert_eq!(
            sample(&parsed, "dockshim_docker_requests_total{method=\"GET\"}"),
            1.0
        );
        assert_eq!(
            sample(&parsed, "dockshim_docker_requests_total{method=\"OTHER\"}"),
            1.0
        );
        assert_eq!(
            sample(&parsed, "dockshim_docker_requests_total{method=\"POST\"}"),
            0.0
        );
        assert_eq!(
            sample(
                &parsed,
                "dockshim_docker_request_duration_seconds_count{method=\"GET\"}"
            ),
            1.0
        );
    }

    #[test]
    fn gauges_are_rendered_as_given() {
        let gauges = Gauges {
            index_entries: 7,
            event_stream_reconnects: 3,
        };
        let parsed = parse(&Metrics::new([]).render(gauges));

        assert_eq!(sample(&parsed, "dockshim_index_entries"), 7.0);
        assert_eq!(
            sample(&parsed, "dockshim_index_event_stream_reconnects_total"),
            3.0
        );
    }
}
