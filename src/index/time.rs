//! RFC 3339 timestamps, as dockerd writes them in inspect answers, turned
//! into nanoseconds since the Unix epoch.
//!
//! Hand-rolled because one format is all dockshim reads. It accepts what
//! Go's `time.RFC3339Nano` produces (`2026-11-23T11:26:27.658122116Z`, with
//! trailing zeros of the fraction dropped) and numeric offsets. It must not
//! guess: anything else is refused rather than read approximately.

/// Seconds from 0001-01-01T00:00:00Z, Go's zero `time.Time` that dockerd
/// writes for "never", to the Unix epoch, negated.
const GO_ZERO_TIME_SECS: i64 = -62_135_596_800;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Most fraction digits Go writes (nanoseconds).
const MAX_FRACTION_DIGITS: usize = 9;

/// Nanoseconds since the Unix epoch for an RFC 3339 timestamp.
///
/// Docker's "never" (`0001-01-01T00:00:00Z`) is 0, not the large negative
/// number Go's `UnixNano` gives for it, so that an unset time reads as
/// unset. `None` for text that is not RFC 3339 or a time outside the range
/// an `i64` of nanoseconds holds (years 1678 to 2262).
pub fn parse_rfc3339_nanos(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let (fraction, zone) = split_fraction(&b[19..])?;
    let offset_secs = parse_zone(zone)?;
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_secs;
    if secs == GO_ZERO_TIME_SECS && fraction == 0 {
        return Some(0);
    }
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(fraction)
}

/// Splits `[.digits]zone` into nanoseconds and the zone.
fn split_fraction(rest: &[u8]) -> Option<(i64, &[u8])> {
    let Some(after_dot) = rest.strip_prefix(b".") else {
        return Some((0, rest));
    };
    let len = after_dot
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(after_dot.len());
    if len == 0 || len > MAX_FRACTION_DIGITS {
        return None;
    }
    let mut nanos = digits(&after_dot[..len])?;
    for _ in len..MAX_FRACTION_DIGITS {
        nanos *= 10;
    }
    Some((nanos, &after_dot[len..]))
}

/// `Z` or `±hh:mm`, as seconds east of UTC.
fn parse_zone(zone: &[u8]) -> Option<i64> {
    match zone {
        b"Z" | b"z" => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let east = hours * 3_600 + minutes * 60;
            Some(if *sign == b'-' { -east } else { east })
        }
        _ => None,
    }
}

/// The decimal value of ASCII digits; at most 9 of them, so no overflow.
fn digits(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > MAX_FRACTION_DIGITS {
        return None;
    }
    text.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date, counting
/// whole 400-year eras (146 097 days each) from 0000-03-01 so that the
/// leap day falls at the end of each counted year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerd_timestamps_keep_every_nanosecond() {
        assert_eq!(
            parse_rfc3339_nanos("2026-11-23T11:26:27.658122116Z"),
            Some(1_795_433_187_658_122_116)
        );
    }

    #[test]
    fn the_unix_epoch_is_zero_and_fractions_without_trailing_zeros_scale() {
        assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("1970-01-01T00:00:00.000000001Z"),
            Some(1)
        );
    }

    #[test]
    fn docker_never_is_zero_not_go_unix_nano() {
        assert_eq!(parse_rfc3339_nanos("0001-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn numeric_offsets_are_applied() {
        let utc = parse_rfc3339_nanos("2024-02-29T12:00:00Z");
        assert_eq!(parse_rfc3339_nanos("2024-02-29T14:30:00+02:30"), utc);
        assert_eq!(parse_rfc3339_nanos("2024-02-29T09:00:00-03:00"), utc);
        assert_eq!(utc, Some(1_709_208_000 * NANOS_PER_SEC));
    }

    #[test]
    fn times_before_the_epoch_are_negative() {
        assert_eq!(
            parse_rfc3339_nanos("1969-12-31T23:59:59Z"),
            Some(-NANOS_PER_SEC)
        );
    }

    #[test]
    fn malformed_or_out_of_range_text_is_refused() {
        for bad in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567891Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "+024-01-01T00:00:00Z",
            "1000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{bad:?}");
        }
    }
}
