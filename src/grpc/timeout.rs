//! The `grpc-timeout` request header: how long the client will wait.
//!
//! The value is 1–8 ASCII digits followed by one unit letter (`H` hours,
//! `M` minutes, `S` seconds, `m` milliseconds, `u` microseconds,
//! `n` nanoseconds). This module turns it into a `Duration`; turning that
//! into a deadline and enforcing it is the server's job.
//!
//! A malformed value is refused with `INTERNAL` rather than ignored: the
//! spec gives no rule for it, ignoring it would run a call without the bound
//! the client asked for, and grpc-go (the kubelet's gRPC) answers the same
//! way. A value of zero is accepted and means "already expired": the spec
//! asks for a positive number, but grpc-go sends `0n` for a deadline that
//! has already passed.

use std::time::Duration;

use super::Status;

/// At most 8 digits, per the gRPC HTTP/2 protocol.
pub const MAX_TIMEOUT_DIGITS: usize = 8;

/// Parses a `grpc-timeout` header value.
pub fn parse_timeout(value: &[u8]) -> Result<Duration, Status> {
    let malformed = || {
        Status::internal(format!(
            "malformed grpc-timeout {:?}",
            String::from_utf8_lossy(value)
        ))
    };
    let (&unit, digits) = value.split_last().ok_or_else(malformed)?;
    if digits.is_empty()
        || digits.len() > MAX_TIMEOUT_DIGITS
        || !digits.iter().all(u8::is_ascii_digit)
    {
        return Err(malformed());
    }
    // At most 8 digits: the value is below 10^8 and fits in a u64 with room
    // for the hour multiplier below.
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    match unit {
        b'H' => Ok(Duration::from_secs(amount * 3600)),
        b'M' => Ok(Duration::from_secs(amount * 60)),
        b'S' => Ok(Duration::from_secs(amount)),
        b'm' => Ok(Duration::from_millis(amount)),
        b'u' => Ok(Duration::from_micros(amount)),
        b'n' => Ok(Duration::from_nanos(amount)),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::grpc::Code;

    #[test]
    fn every_unit_is_understood() {
        let cases: [(&[u8], Duration); 6] = [
            (b"2H", Duration::from_secs(7200)),
            (b"3M", Duration::from_secs(180)),
            (b"4S", Duration::from_secs(4)),
            (b"100m", Duration::from_millis(100)),
            (b"250u", Duration::from_micros(250)),
            (b"999999n", Duration::from_nanos(999_999)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_timeout(value),
                Ok(expected),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn eight_digits_is_the_most_accepted() {
        assert_eq!(
            parse_timeout(b"99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(
            parse_timeout(b"999999999n").map_err(|s| s.code),
            Err(Code::Internal)
        );
    }

    #[test]
    fn zero_means_already_expired() {
        assert_eq!(parse_timeout(b"0n"), Ok(Duration::ZERO));
    }

    #[test]
    fn malformed_values_are_refused_with_internal() {
        let bad: [&[u8]; 9] = [
            b"", b"S", b"10", b"10s", b"10 S", b"-1S", b"1.5S", b"+1S", b"1SS",
        ];
        for value in bad {
            let status = parse_timeout(value).expect_err(&String::from_utf8_lossy(value));
            assert_eq!(status.code, Code::Internal);
            assert!(
                status.message.contains("grpc-timeout"),
                "{}",
                status.message
            );
        }
    }
}
