//! The pod annotations `kubernetes.io/ingress-bandwidth` and
//! `kubernetes.io/egress-bandwidth`, read as Kubernetes quantities into
//! bits per second for the `bandwidth` capability.
//!
//! It owns the quantity syntax and the kubelet's limits on these values;
//! it does not shape traffic (the `bandwidth` plugin does).

use std::collections::HashMap;

use super::CniError;

/// Pod annotations that ask for traffic shaping, in bits per second.
pub const INGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
pub const EGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// Bandwidth limits outside this range are refused, as the kubelet does.
const MIN_BANDWIDTH_BITS: u64 = 1_000;
const MAX_BANDWIDTH_BITS: u64 = 1_000_000_000_000_000;

/// Traffic limits from the pod's bandwidth annotations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bandwidth {
    pub ingress_bits_per_sec: Option<u64>,
    pub egress_bits_per_sec: Option<u64>,
}

impl Bandwidth {
    /// The limits asked for by `kubernetes.io/ingress-bandwidth` and
    /// `kubernetes.io/egress-bandwidth`; `None` when neither is set.
    pub fn from_annotations(
        annotations: &HashMap<String, String>,
    ) -> Result<Option<Bandwidth>, CniError> {
        let rate = |annotation: &'static str| -> Result<Option<u64>, CniError> {
            let Some(value) = annotations.get(annotation) else {
                return Ok(None);
            };
            let invalid = |reason: String| CniError::Bandwidth {
                annotation,
                value: value.clone(),
                reason,
            };
            let bits = parse_quantity(value).map_err(invalid)?;
            if bits < MIN_BANDWIDTH_BITS {
                return Err(invalid("less than 1k bits per second".to_owned()));
            }
            if bits > MAX_BANDWIDTH_BITS {
                return Err(invalid("more than 1P bits per second".to_owned()));
            }
            Ok(Some(bits))
        };
        let bandwidth = Bandwidth {
            ingress_bits_per_sec: rate(INGRESS_BANDWIDTH_ANNOTATION)?,
            egress_bits_per_sec: rate(EGRESS_BANDWIDTH_ANNOTATION)?,
        };
        let any =
            bandwidth.ingress_bits_per_sec.is_some() || bandwidth.egress_bits_per_sec.is_some();
        Ok(any.then_some(bandwidth))
    }
}

/// A Kubernetes quantity (`10M`, `1.5Gi`, `500k`, `1e6`, ...) as a whole
/// number, rounded up as the kubelet's `Value()` rounds it.
fn parse_quantity(text: &str) -> Result<u64, String> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return Err("negative".to_owned());
    }
    let number_len = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(number_len);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err("not a number".to_owned());
    }
    let too_large = || "too large".to_owned();
    let mut mantissa: u128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    let (multiplier, divisor_exp): (u128, u32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, 9),
        "u" => (1, 6),
        "m" => (1, 3),
        "k" => (10u128.pow(3), 0),
        "M" => (10u128.pow(6), 0),
        "G" => (10u128.pow(9), 0),
        "T" => (10u128.pow(12), 0),
        "P" => (10u128.pow(15), 0),
        "E" => (10u128.pow(18), 0),
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .and_then(|e| e.parse::<i32>().ok())
                .ok_or_else(|| format!("unknown suffix {suffix:?}"))?;
            let power = 10u128
                .checked_pow(exponent.unsigned_abs())
                .ok_or_else(too_large)?;
            if exponent >= 0 {
                (power, 0)
            } else {
                (1, exponent.unsigned_abs())
            }
        }
    };
    let fraction_digits = u32::try_from(fraction.len()).map_err(|_| too_large())?;
    let numerator = mantissa.checked_mul(multiplier).ok_or_else(too_large)?;
    let divisor = fraction_digits
        .checked_add(divisor_exp)
        .and_then(|exp| 10u128.checked_pow(exp))
        .ok_or_else(too_large)?;
    u64::try_from(numerator.div_ceil(divisor)).map_err(|_| too_large())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantities_follow_kubernetes() {
        let cases = [
            ("10M", 10_000_000),
            ("1k", 1_000),
            ("1Ki", 1_024),
            ("1.5Mi", 1_572_864),
            ("2G", 2_000_000_000),
            ("1P", 1_000_000_000_000_000),
            ("1e3", 1_000),
            ("1E3", 1_000),
            ("0.5k", 500),
            ("+100", 100),
            ("1500m", 2),
            ("1.0001", 2),
            ("5E", 5_000_000_000_000_000_000),
        ];
        for (text, want) in cases {
            assert_eq!(parse_quantity(text), Ok(want), "{text}");
        }
        for bad in [
            "", "-1M", "M", "1.2.3", "10Mb", "1e", "e3", "1ee3", "100000Ei", "1e40",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bandwidth_annotations_become_bits_per_second() {
        let mut annotations = HashMap::new();
        assert_eq!(Bandwidth::from_annotations(&annotations).unwrap(), None);
        annotations.insert(INGRESS_BANDWIDTH_ANNOTATION.to_owned(), "10M".to_owned());
        annotations.insert(EGRESS_BANDWIDTH_ANNOTATION.to_owned(), "1Mi".to_owned());
        assert_eq!(
            Bandwidth::from_annotations(&annotations).unwrap(),
            Some(Bandwidth {
                ingress_bits_per_sec: Some(10_000_000),
                egress_bits_per_sec: Some(1_048_576),
            })
        );
    }

    #[test]
    fn unreasonable_bandwidth_is_an_invalid_argument() {
        for value in ["999", "2P", "fast"] {
            let annotations =
                HashMap::from([(EGRESS_BANDWIDTH_ANNOTATION.to_owned(), value.to_owned())]);
            let err = Bandwidth::from_annotations(&annotations).unwrap_err();
            assert!(matches!(err, CniError::Bandwidth { .. }), "{value}");
            assert!(
                err.to_string().contains(EGRESS_BANDWIDTH_ANNOTATION),
                "{err}"
            );
        }
    }
}
