//! The sandbox's `resolv.conf`, rendered from the CRI `DnsConfig`.
//!
//! DNS settings never go to Docker: after the sandbox starts, the handler
//! replaces the file Docker made (the inspect `ResolvConfPath`) with this
//! text, which every container of the pod then shares. This module only
//! validates and renders; it reads and writes no files.
//!
//! Limits, and where they come from:
//! - at most 3 name servers: glibc's `MAXNS` (further lines are ignored by
//!   the resolver), which Kubernetes validates too;
//! - at most 32 search domains in at most 2048 characters (joined by
//!   spaces): Kubernetes' own limits since glibc 2.26 lifted the historic
//!   6 domains / 256 characters;
//! - each search domain at most 253 characters: a longer one makes some
//!   glibc versions abort during resolution, so the kubelet drops them.
//!
//! The kubelet already trims to these limits; a request over them comes
//! from another client and is refused rather than silently cut.

use std::net::IpAddr;

use super::SandboxConfigError;
use crate::api::v1;

/// Name servers the resolver reads (glibc `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Search domains Kubernetes allows.
pub const MAX_SEARCH_DOMAINS: usize = 32;
/// Characters of the search list, domains joined by single spaces.
pub const MAX_SEARCH_LIST_CHARS: usize = 2048;
/// Characters of one search domain (a DNS name's maximum length).
pub const MAX_SEARCH_DOMAIN_CHARS: usize = 253;

/// The `resolv.conf` text for `dns`, or `None` when it sets nothing and
/// Docker's file (a copy of the host's) stays.
pub fn resolv_conf(dns: &v1::DnsConfig) -> Result<Option<String>, SandboxConfigError> {
    validate(dns)?;
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for server in &dns.servers {
        text.push_str("nameserver ");
        text.push_str(server);
        text.push('\n');
    }
    if !dns.searches.is_empty() {
        text.push_str("search ");
        text.push_str(&dns.searches.join(" "));
        text.push('\n');
    }
    if !dns.options.is_empty() {
        text.push_str("options ");
        text.push_str(&dns.options.join(" "));
        text.push('\n');
    }
    Ok(Some(text))
}

/// Checks `dns` against the limits above without rendering it.
pub fn validate(dns: &v1::DnsConfig) -> Result<(), SandboxConfigError> {
    if dns.servers.len() > MAX_NAMESERVERS {
        return Err(SandboxConfigError::invalid(
            "dns_config.servers",
            format!(
                "{} name servers given, the resolver reads at most {MAX_NAMESERVERS}",
                dns.servers.len()
            ),
        ));
    }
    for server in &dns.servers {
        if server.parse::<IpAddr>().is_err() {
            return Err(SandboxConfigError::invalid(
                "dns_config.servers",
                format!("{server:?} is not an IP address"),
            ));
        }
    }

    if dns.searches.len() > MAX_SEARCH_DOMAINS {
        return Err(SandboxConfigError::invalid(
            "dns_config.searches",
            format!(
                "{} search domains given, at most {MAX_SEARCH_DOMAINS} are allowed",
                dns.searches.len()
            ),
        ));
    }
    for search in &dns.searches {
        check_word("dns_config.searches", search)?;
        if search.len() > MAX_SEARCH_DOMAIN_CHARS {
            return Err(SandboxConfigError::invalid(
                "dns_config.searches",
                format!("{search:?} is longer than {MAX_SEARCH_DOMAIN_CHARS} characters"),
            ));
        }
    }
    let list_chars =
        dns.searches.iter().map(String::len).sum::<usize>() + dns.searches.len().saturating_sub(1);
    if list_chars > MAX_SEARCH_LIST_CHARS {
        return Err(SandboxConfigError::invalid(
            "dns_config.searches",
            format!(
                "the search list has {list_chars} characters, at most \
                 {MAX_SEARCH_LIST_CHARS} are allowed"
            ),
        ));
    }

    for option in &dns.options {
        check_word("dns_config.options", option)?;
    }
    Ok(())
}

/// A search domain or option must be one non-empty word of printable ASCII:
/// whitespace would split it and a newline would start another directive.
fn check_word(field: &str, word: &str) -> Result<(), SandboxConfigError> {
    if word.is_empty() {
        return Err(SandboxConfigError::invalid(field, "an entry is empty"));
    }
    if !word.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SandboxConfigError::invalid(
            field,
            format!("{word:?} holds whitespace, a control character or non-ASCII text"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::grpc::{Code, Status};

    use super::*;

    fn dns(servers: &[&str], searches: &[&str], options: &[&str]) -> v1::DnsConfig {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect();
        v1::DnsConfig {
            servers: owned(servers),
            searches: owned(searches),
            options: owned(options),
        }
    }

    #[test]
    fn a_kubelet_cluster_first_config_renders_three_directives() {
        let config = dns(
            &["10.96.0.10"],
            &[
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
            ],
            &["ndots:5"],
        );
        assert_eq!(
            resolv_conf(&config).unwrap().unwrap(),
            "nameserver 10.96.0.10\n\
             search default.svc.cluster.local svc.cluster.local cluster.local\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn each_part_is_rendered_only_when_given() {
        let cases = [
            (
                dns(&["1.1.1.1", "fd00::53"], &[], &[]),
                "nameserver 1.1.1.1\nnameserver fd00::53\n",
            ),
            (dns(&[], &["example.org"], &[]), "search example.org\n"),
            (
                dns(&[], &[], &["rotate", "timeout:2"]),
                "options rotate timeout:2\n",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(resolv_conf(&config).unwrap().unwrap(), expected);
        }
    }

    #[test]
    fn an_empty_config_keeps_dockers_file() {
        assert_eq!(resolv_conf(&v1::DnsConfig::default()).unwrap(), None);
    }

    #[test]
    fn invalid_configs_are_refused_with_the_field_and_value() {
        let long_domain = "a".repeat(MAX_SEARCH_DOMAIN_CHARS + 1);
        let many_domains: Vec<String> = (0..=MAX_SEARCH_DOMAINS).map(|i| format!("d{i}")).collect();
        let many: Vec<&str> = many_domains.iter().map(String::as_str).collect();
        let wide_domains: Vec<String> = (0..9).map(|i| format!("{i}{}", "x".repeat(249))).collect();
        let wide: Vec<&str> = wide_domains.iter().map(String::as_str).collect();
        let cases = [
            (
                dns(&["dns.example"], &[], &[]),
                "dns_config.servers: \"dns.example\"",
            ),
            (
                dns(&["10.0.0.1:53"], &[], &[]),
                "dns_config.servers: \"10.0.0.1:53\"",
            ),
            (
                dns(&["fe80::1%eth0"], &[], &[]),
                "dns_config.servers: \"fe80::1%eth0\"",
            ),
            (
                dns(&["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"], &[], &[]),
                "4 name servers",
            ),
            (dns(&[], &["a b"], &[]), "dns_config.searches: \"a b\""),
            (
                dns(&[], &["a\nnameserver 6.6.6.6"], &[]),
                "dns_config.searches",
            ),
            (
                dns(&[], &[""], &[]),
                "dns_config.searches: an entry is empty",
            ),
            (dns(&[], &[&long_domain], &[]), "longer than 253"),
            (dns(&[], &many, &[]), "33 search domains"),
            (dns(&[], &wide, &[]), "2258 characters"),
            (
                dns(&[], &[], &["ndots:5\nnameserver 6.6.6.6"]),
                "dns_config.options",
            ),
            (dns(&[], &[], &["a\0"]), "dns_config.options"),
        ];
        for (config, expected) in cases {
            let err = resolv_conf(&config).unwrap_err();
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
            assert_eq!(Status::from(err).code, Code::InvalidArgument);
        }
    }

    #[test]
    fn the_limits_themselves_are_accepted() {
        let domains: Vec<String> = (0..MAX_SEARCH_DOMAINS)
            .map(|i| format!("d{i}.example"))
            .collect();
        let searches: Vec<&str> = domains.iter().map(String::as_str).collect();
        let config = dns(&["1.1.1.1", "1.0.0.1", "::1"], &searches, &[]);
        assert!(resolv_conf(&config).is_ok());
        let longest = "a".repeat(MAX_SEARCH_DOMAIN_CHARS);
        assert!(resolv_conf(&dns(&[], &[&longest], &[])).is_ok());
    }
}
