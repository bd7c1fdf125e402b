//! Docker Engine API versions (`1.41`) and the negotiation rule.
//!
//! It owns parsing, ordering and the range dockshim speaks; it does no I/O.

use std::fmt;

/// A Docker Engine API version, `major.minor` (e.g. `1.41`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    major: u16,
    minor: u16,
}

/// The oldest API dockshim speaks: Docker Engine 20.10.
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 41);

/// The newest API dockshim asks for (Docker Engine 29.x); newer engines are
/// spoken to at this version. Every field and endpoint dockshim uses was
/// checked against each version up to here: see
/// `vendor-docs/docker-engine-versions.md`.
pub const MAX_API_VERSION: ApiVersion = ApiVersion::new(1, 55);

impl ApiVersion {
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// Parses `"1.41"`. Anything else (missing minor, signs, spaces, extra
    /// dots) is `None`.
    pub fn parse(text: &str) -> Option<ApiVersion> {
        let (major, minor) = text.split_once('.')?;
        Some(ApiVersion {
            major: parse_number(major)?,
            minor: parse_number(minor)?,
        })
    }

    /// The version to use with a server whose newest API is `server`: the
    /// lower of the two maxima, or `None` if the server is older than
    /// [`MIN_API_VERSION`].
    pub fn negotiate(server: ApiVersion) -> Option<ApiVersion> {
        (server >= MIN_API_VERSION).then(|| server.min(MAX_API_VERSION))
    }

    /// Packs the version into one `u32` so it can live in an atomic.
    pub(crate) fn to_bits(self) -> u32 {
        (u32::from(self.major) << 16) | u32::from(self.minor)
    }

    /// Inverse of [`ApiVersion::to_bits`]; truncation to `u16` keeps exactly the
    /// halves `to_bits` put there.
    pub(crate) fn from_bits(bits: u32) -> ApiVersion {
        ApiVersion {
            major: (bits >> 16) as u16,
            minor: bits as u16,
        }
    }
}

/// Decimal digits only, as Go's API version strings are; `u16::from_str`
/// alone would also accept a leading `+`.
fn parse_number(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_dot_minor() {
        assert_eq!(ApiVersion::parse("1.41"), Some(ApiVersion::new(1, 41)));
        assert_eq!(
            ApiVersion::parse("1.9").map(|v| v.to_string()),
            Some("1.9".to_owned())
        );
    }

    #[test]
    fn rejects_malformed_versions() {
        for bad in [
            "", "1", "1.", ".41", "1.41.0", "+1.41", "1.-4", " 1.41", "v1.41", "1.99999",
        ] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orders_numerically_not_textually() {
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 41));
        assert!(ApiVersion::new(1, 44) < ApiVersion::new(2, 0));
    }

    #[test]
    fn negotiation_caps_at_our_maximum_and_refuses_old_servers() {
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 41)),
            Some(ApiVersion::new(1, 41))
        );
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 43)),
            Some(ApiVersion::new(1, 43))
        );
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 47)),
            Some(ApiVersion::new(1, 47))
        );
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 55)),
            Some(ApiVersion::new(1, 55))
        );
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 60)),
            Some(MAX_API_VERSION)
        );
        assert_eq!(ApiVersion::negotiate(ApiVersion::new(1, 40)), None);
    }

    #[test]
    fn bits_round_trip() {
        let v = ApiVersion::new(1, 44);
        assert_eq!(ApiVersion::from_bits(v.to_bits()), v);
    }
}
