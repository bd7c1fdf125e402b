//! Pressure stall information of a v2 cgroup (`cpu.pressure`,
//! `memory.pressure`, `io.pressure`) in the CRI's shape.
//!
//! The kernel writes `some` and `full` lines of running averages (percent)
//! and a `total` stall time in microseconds; the CRI carries the total in
//! nanoseconds. v1 cgroups have no pressure files, and kernels booted with
//! `psi=0` refuse to read them: both read as no figures. This module reads
//! the three pressure files and nothing else.

use std::io;
use std::path::Path;

use super::cgroup::{Cgroup, CgroupVersion};
use super::files::{parse_error, Files, KEYED_FILE_MAX};
use super::StatsError;
use crate::api::v1;

/// A resource the kernel tracks stalls on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    Io,
}

impl Resource {
    fn file(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu.pressure",
            Resource::Memory => "memory.pressure",
            Resource::Io => "io.pressure",
        }
    }
}

/// The cgroup's pressure on `resource`, or `None` where the kernel keeps
/// none.
pub fn read(
    cgroup: &Cgroup,
    resource: Resource,
    files: &mut Files<'_>,
) -> Result<Option<v1::PsiStats>, StatsError> {
    if cgroup.version() == CgroupVersion::V1 {
        return Ok(None);
    }
    let dir = match resource {
        Resource::Memory => cgroup.memory_dir(),
        Resource::Cpu | Resource::Io => cgroup.cpu_dir(),
    };
    match files.text(dir, resource.file(), KEYED_FILE_MAX) {
        Ok(text) => parse(dir, resource.file(), text).map(Some),
        Err(StatsError::Read { source, .. }) if not_kept(&source) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Missing (no PSI in this kernel) or `EOPNOTSUPP` (PSI switched off).
fn not_kept(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
        || err.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32)
}

/// Parses a pressure file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`
/// and the same for `full` (absent for CPU on kernels before 5.13), from
/// the file `name` in `dir`.
pub fn parse(dir: &Path, name: &str, text: &str) -> Result<v1::PsiStats, StatsError> {
    let mut stats = v1::PsiStats::default();
    for line in text.lines() {
        let Some((kind, fields)) = line.split_once(' ') else {
            continue;
        };
        let slot = match kind {
            "some" => &mut stats.some,
            "full" => &mut stats.full,
            _ => continue,
        };
        *slot = Some(parse_line(fields).ok_or_else(|| {
            parse_error(
                &dir.join(name),
                format!("line {line:?} is not a pressure line"),
            )
        })?);
    }
    Ok(stats)
}

/// The figures of one line, `None` when it is not a pressure line.
fn parse_line(fields: &str) -> Option<v1::PsiData> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in fields.split_ascii_whitespace() {
        let (key, value) = field.split_once('=')?;
        let average = || value.parse::<f64>().ok().filter(|v| v.is_finite());
        match key {
            "avg10" => avg10 = Some(average()?),
            "avg60" => avg60 = Some(average()?),
            "avg300" => avg300 = Some(average()?),
            "total" => total = Some(value.parse::<u64>().ok()?),
            _ => {}
        }
    }
    Some(v1::PsiData {
        total: total?.saturating_mul(1000),
        avg10: avg10?,
        avg60: avg60?,
        avg300: avg300?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::stats::fixture::{unkept, Tree};

    #[test]
    fn pressure_lines_are_parsed_with_totals_in_nanoseconds() {
        let text = "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n";
        let stats = parse(Path::new(""), "memory.pressure", text).unwrap();
        let some = stats.some.unwrap();
        assert_eq!(some.total, 123_456_000);
        assert_eq!((some.avg10, some.avg60, some.avg300), (1.5, 0.25, 0.0));
        assert_eq!(stats.full.unwrap().total, 7000);
    }

    #[test]
    fn a_cpu_file_without_full_has_only_some() {
        let stats = parse(
            Path::new(""),
            "cpu.pressure",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert!(stats.some.is_some());
        assert!(stats.full.is_none());
    }

    #[test]
    fn malformed_pressure_lines_are_parse_errors() {
        for odd in [
            "some avg10=x avg60=0.00 avg300=0.00 total=0",
            "some avg10=0.00 avg60=0.00 avg300=0.00",
            "full avg10=NaN avg60=0.00 avg300=0.00 total=0",
            "some total",
        ] {
            assert!(parse(Path::new(""), "io.pressure", odd).is_err(), "{odd}");
        }
    }

    #[test]
    fn v2_fixtures_have_pressure_and_v1_has_none() {
        let v2 = Tree::new(CgroupVersion::V2, v1::CgroupDriver::Systemd);
        let cpu = unkept(|files| read(&v2.container_cgroup(), Resource::Cpu, files))
            .unwrap()
            .unwrap();
        assert_eq!(cpu.some.unwrap().total, 3_521_000);
        assert!(
            unkept(|files| read(&v2.container_cgroup(), Resource::Io, files))
                .unwrap()
                .is_some()
        );
        v2.remove_container("memory.pressure");
        assert_eq!(
            unkept(|files| read(&v2.container_cgroup(), Resource::Memory, files)).unwrap(),
            None
        );

        let v1_tree = Tree::new(CgroupVersion::V1, v1::CgroupDriver::Cgroupfs);
        assert_eq!(
            unkept(|files| read(&v1_tree.container_cgroup(), Resource::Cpu, files)).unwrap(),
            None
        );
    }
}
