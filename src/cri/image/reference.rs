//! Image references and image IDs as the kubelet writes them, normalised
//! the way Docker and the kubelet do: `busybox` is
//! `docker.io/library/busybox:latest`, `registry:5000/app` keeps its port,
//! `name@sha256:…` pins a digest, and `name:tag@sha256:…` is looked up and
//! pulled by its digest alone, as Docker does.
//!
//! It owns parsing and comparison only: it never asks dockerd anything,
//! and it accepts the grammar of Docker's reference package (domain with an
//! optional port, lowercase path components, tags of up to 128 word
//! characters, sha256/sha384/sha512 digests), not a superset of it.

use std::fmt;

use super::error::ReferenceError;

/// Where names without a registry come from.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The old name of [`DEFAULT_DOMAIN`], still accepted and rewritten.
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Where single-component Docker Hub names live.
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
/// The tag a reference without tag or digest means.
const DEFAULT_TAG: &str = "latest";
/// Longest repository name (registry included), as Docker limits it.
const MAX_NAME_LEN: usize = 255;
/// Longest tag.
const MAX_TAG_LEN: usize = 128;
/// The `sha256:` of image IDs and digests.
const SHA256_PREFIX: &str = "sha256:";
/// Hex digits of a sha256 digest.
const SHA256_HEX_LEN: usize = 64;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// `docker.io`, `registry.example:5000`, `[::1]:5000`, ...
    domain: String,
    /// `library/busybox`, `team/app`, ...
    path: String,
    /// As written; `None` when the reference has none.
    tag: Option<String>,
    /// `algorithm:hex`, as written.
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises `text`.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        let invalid = |why| ReferenceError::Invalid(text.to_owned(), why);
        if text.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((name, digest)) => {
                check_digest(digest).map_err(invalid)?;
                (name, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag follows the last colon only if no slash comes after it;
        // otherwise that colon belongs to a registry port.
        let (name, tag) = match name_and_tag.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => {
                check_tag(tag).map_err(invalid)?;
                (name, Some(tag.to_owned()))
            }
            _ => (name_and_tag, None),
        };
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong(text.to_owned(), MAX_NAME_LEN));
        }
        let (domain, path) = split_domain(name);
        check_domain(domain).map_err(invalid)?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(text.to_owned()));
        }
        if path
            .split('/')
            .any(|component| !is_path_component(component))
        {
            return Err(invalid("bad repository path"));
        }
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            DEFAULT_DOMAIN
        } else {
            domain
        };
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_REPOSITORY_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        let reference = Reference {
            domain: domain.to_owned(),
            path,
            tag,
            digest,
        };
        if reference.repository().len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong(text.to_owned(), MAX_NAME_LEN));
        }
        Ok(reference)
    }

    /// `domain/path`, e.g. `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// True when the reference names a repository only, with neither tag
    /// nor digest.
    pub fn is_name_only(&self) -> bool {
        self.tag.is_none() && self.digest.is_none()
    }

    /// What a pull asks for after the repository: the digest when there is
    /// one (a tag beside it is ignored, as Docker does), else the tag,
    /// else `latest`.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The one image this reference names: `repository@digest` or
    /// `repository:tag`, with the default tag filled in.
    pub fn canonical(&self) -> String {
        match &self.digest {
            Some(digest) => format!("{}@{digest}", self.repository()),
            None => format!("{}:{}", self.repository(), self.tag_or_digest()),
        }
    }

    fn same_repository(&self, other: &Reference) -> bool {
        self.domain == other.domain && self.path == other.path
    }
}

/// The normalised reference as written, with `:latest` added when it has
/// neither tag nor digest: what a message about a pull should name.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        } else if self.digest.is_none() {
            write!(f, ":{DEFAULT_TAG}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// What a CRI call names an image by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageQuery {
    /// An image ID or a prefix of one: lowercase hex without `sha256:`.
    Id(String),
    Reference(Reference),
}

/// How an image answers a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// By its ID or an ID prefix (a digest equal to the ID counts too).
    Id,
    /// By one of its `RepoTags`.
    Tag,
    /// By one of its `RepoDigests`.
    Digest,
}

impl ImageQuery {
    /// `sha256:<hex>` (a whole ID or a prefix) and 64 bare hex digits are
    /// IDs, as Docker refuses 64-hex repository names; everything else must
    /// be a reference. `docker-pullable://` and `docker://` prefixes are
    /// dropped.
    pub fn parse(text: &str) -> Result<ImageQuery, ReferenceError> {
        // ContainerStatus.image_ref values carry these prefixes; a caller
        // handing one back is understood.
        let text = crate::cri::naming::strip_image_ref_prefix(text);
        if let Some(hex) = text.strip_prefix(SHA256_PREFIX) {
            if !hex.is_empty() && hex.len() <= SHA256_HEX_LEN && is_lower_hex(hex) {
                return Ok(ImageQuery::Id(hex.to_owned()));
            }
        }
        if text.len() == SHA256_HEX_LEN && is_lower_hex(text) {
            return Ok(ImageQuery::Id(text.to_owned()));
        }
        Reference::parse(text).map(ImageQuery::Reference)
    }

    /// The string to ask dockerd for (`GET /images/{name}/json`).
    pub fn lookup_name(&self) -> String {
        match self {
            ImageQuery::Id(hex) => format!("{SHA256_PREFIX}{hex}"),
            ImageQuery::Reference(reference) => reference.canonical(),
        }
    }

    /// For a reference that may also be a short ID prefix (`f6a1e70bd9c1`
    /// is a valid repository name too): that prefix.
    pub fn as_id_prefix(text: &str) -> Option<ImageQuery> {
        (!text.is_empty() && text.len() < SHA256_HEX_LEN && is_lower_hex(text))
            .then(|| ImageQuery::Id(text.to_owned()))
    }

    /// Whether the image with `id`, `repo_tags` and `repo_digests` (as
    /// dockerd reports them) is the one this query names, and how. A
    /// reference with a digest matches on the digest alone.
    pub fn resolve(
        &self,
        id: &str,
        repo_tags: &[String],
        repo_digests: &[String],
    ) -> Option<Match> {
        let hex = id.strip_prefix(SHA256_PREFIX).unwrap_or(id);
        match self {
            ImageQuery::Id(prefix) => hex.starts_with(prefix.as_str()).then_some(Match::Id),
            ImageQuery::Reference(wanted) => match &wanted.digest {
                // On the containerd image store the ID is the manifest
                // digest, so a repository digest is looked for first: it
                // names one reference, the ID the whole image.
                Some(digest) => {
                    if parsed(repo_digests)
                        .any(|r| r.same_repository(wanted) && r.digest == wanted.digest)
                    {
                        Some(Match::Digest)
                    } else {
                        (digest.strip_prefix(SHA256_PREFIX) == Some(hex)).then_some(Match::Id)
                    }
                }
                None => parsed(repo_tags)
                    .any(|r| {
                        r.same_repository(wanted) && r.tag_or_digest() == wanted.tag_or_digest()
                    })
                    .then_some(Match::Tag),
            },
        }
    }

    /// The ListImages filter: like [`ImageQuery::resolve`], except that a
    /// bare repository name matches every tag and digest of it, as
    /// `docker images NAME` does.
    pub fn filter_matches(&self, id: &str, repo_tags: &[String], repo_digests: &[String]) -> bool {
        match self {
            ImageQuery::Reference(wanted) if wanted.is_name_only() => parsed(repo_tags)
                .chain(parsed(repo_digests))
                .any(|r| r.same_repository(wanted)),
            _ => self.resolve(id, repo_tags, repo_digests).is_some(),
        }
    }
}

/// The references among dockerd's strings; placeholders such as
/// `<none>:<none>` are skipped.
fn parsed(references: &[String]) -> impl Iterator<Item = Reference> + '_ {
    references.iter().filter_map(|r| Reference::parse(r).ok())
}

/// Splits a name into registry and path the way Docker does: the first
/// component is a registry if it has a dot or a colon, is `localhost`, or
/// has an uppercase letter (paths may not).
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    }
}

/// `host[:port]`, where host is DNS labels separated by dots or a
/// bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<(), &'static str> {
    let (host, port) = split_port(domain)?;
    if let Some(address) = host.strip_prefix('[') {
        let address = address
            .strip_suffix(']')
            .ok_or("unclosed [ in the registry")?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("bad IPv6 registry address");
        }
    } else {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err("bad registry host name");
        }
    }
    match port {
        Some(port) if !is_port(port) => Err("bad registry port"),
        _ => Ok(()),
    }
}

/// Splits `host:port`; the colons inside `[IPv6]` are not the port's.
fn split_port(domain: &str) -> Result<(&str, Option<&str>), &'static str> {
    if domain.starts_with('[') {
        let end = domain.find(']').ok_or("unclosed [ in the registry")?;
        let (host, rest) = domain.split_at(end + 1);
        return match rest {
            "" => Ok((host, None)),
            _ => rest
                .strip_prefix(':')
                .map(|port| (host, Some(port)))
                .ok_or("junk after the IPv6 registry address"),
        };
    }
    Ok(match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    })
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__`, or any
/// number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        let separator_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[separator_start..i];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn check_tag(tag: &str) -> Result<(), &'static str> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    match bytes.next() {
        Some(first) if word(first) => {}
        _ => return Err("a tag must start with a letter, digit or underscore"),
    }
    if tag.len() > MAX_TAG_LEN {
        return Err("tag longer than 128 characters");
    }
    if !bytes.all(|b| word(b) || b == b'.' || b == b'-') {
        return Err("a tag may only hold letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// `sha256:` + 64, `sha384:` + 96 or `sha512:` + 128 lowercase hex digits.
fn check_digest(digest: &str) -> Result<(), &'static str> {
    let (algorithm, hex) = digest.split_once(':').ok_or("a digest is algorithm:hex")?;
    let expected = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err("unsupported digest algorithm"),
    };
    if hex.len() != expected || !is_lower_hex(hex) {
        return Err("digest of the wrong length or not lowercase hex");
    }
    Ok(())
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:46645c0e0d402bbd22a3bfc26fcff23ba6b8f1f9bc6937eb08ae3575443fa8eb";
    const ID: &str = "sha256:f6a1e70bd9c172fa1d2bb569f98fc9e8f7bfe699d992fad5ed95eefcc2f996f5";

    fn canonical(text: &str) -> String {
        Reference::parse(text).unwrap().canonical()
    }

    #[test]
    fn short_names_normalise_like_docker_and_the_kubelet() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("team/app:v1", "docker.io/team/app:v1"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/busybox:1", "docker.io/library/busybox:1"),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/app", "localhost/app:latest"),
            ("a/b/c/d:e", "docker.io/a/b/c/d:e"),
        ];
        for (text, want) in cases {
            assert_eq!(canonical(text), want, "{text}");
        }
    }

    #[test]
    fn registries_with_ports_keep_them_and_are_not_tags() {
        let r = Reference::parse("127.0.0.1:5000/dockshim-test/busybox").unwrap();
        assert_eq!(r.repository(), "127.0.0.1:5000/dockshim-test/busybox");
        assert_eq!(r.tag(), None);
        assert_eq!(r.tag_or_digest(), "latest");
        assert_eq!(r.to_string(), "127.0.0.1:5000/dockshim-test/busybox:latest");
        assert_eq!(canonical("localhost:5000/app:v2"), "localhost:5000/app:v2");
        assert_eq!(canonical("[::1]:5000/app"), "[::1]:5000/app:latest");
        assert_eq!(
            canonical("Registry.Example/app"),
            "Registry.Example/app:latest"
        );
    }

    #[test]
    fn digests_pin_the_image_and_win_over_a_tag() {
        let by_digest = Reference::parse(&format!("busybox@{DIGEST}")).unwrap();
        assert_eq!(
            by_digest.canonical(),
            format!("docker.io/library/busybox@{DIGEST}")
        );
        assert_eq!(by_digest.tag_or_digest(), DIGEST);
        let both = Reference::parse(&format!("127.0.0.1:5000/x:1.0@{DIGEST}")).unwrap();
        assert_eq!(both.tag(), Some("1.0"));
        assert_eq!(both.tag_or_digest(), DIGEST);
        assert_eq!(both.canonical(), format!("127.0.0.1:5000/x@{DIGEST}"));
        assert_eq!(both.to_string(), format!("127.0.0.1:5000/x:1.0@{DIGEST}"));
    }

    #[test]
    fn malformed_references_are_refused() {
        let bad = [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox:a b",
            "busy box",
            "busybox@sha256:abc",
            "busybox@md5:0123456789abcdef0123456789abcdef",
            &format!("busybox@{}", DIGEST.to_uppercase()),
            "-x/app",
            "a..b",
            "a/-b",
            "registry:port/app",
            "reg_istry.io/app",
            "/app",
            "app/",
            "[::1/app",
            &format!("busybox:{}", "t".repeat(129)),
            &"a".repeat(256),
        ];
        for text in bad {
            assert!(Reference::parse(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            Reference::parse("docker.io/Library/busybox").unwrap_err(),
            ReferenceError::Uppercase("docker.io/Library/busybox".to_owned())
        );
    }

    #[test]
    fn path_separators_follow_dockers_grammar() {
        for good in ["a.b", "a_b", "a__b", "a-b", "a---b", "a1.b2_c3__d4-e5"] {
            assert!(is_path_component(good), "{good}");
        }
        for bad in ["", "a.", ".a", "a___b", "a._b", "a-", "A", "a+b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn ids_are_told_apart_from_references() {
        assert_eq!(
            ImageQuery::parse(ID).unwrap(),
            ImageQuery::Id(ID[7..].to_owned())
        );
        assert_eq!(
            ImageQuery::parse(&ID[7..]).unwrap(),
            ImageQuery::Id(ID[7..].to_owned())
        );
        assert_eq!(
            ImageQuery::parse("sha256:f6a1e7").unwrap(),
            ImageQuery::Id("f6a1e7".into())
        );
        assert_eq!(
            ImageQuery::parse(&format!("docker-pullable://busybox@{DIGEST}")).unwrap(),
            ImageQuery::Reference(Reference::parse(&format!("busybox@{DIGEST}")).unwrap())
        );
        assert_eq!(
            ImageQuery::parse(&format!("docker://{ID}")).unwrap(),
            ImageQuery::Id(ID[7..].into())
        );
        // A short hex string is a valid name first; the caller may retry it as an ID.
        assert!(matches!(
            ImageQuery::parse("f6a1e70bd9c1").unwrap(),
            ImageQuery::Reference(_)
        ));
        assert_eq!(
            ImageQuery::as_id_prefix("f6a1e70bd9c1"),
            Some(ImageQuery::Id("f6a1e70bd9c1".into()))
        );
        assert_eq!(ImageQuery::as_id_prefix("busybox"), None);
        assert_eq!(ImageQuery::parse(ID).unwrap().lookup_name(), ID);
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn queries_resolve_against_dockers_familiar_strings() {
        let tags = strings(&["busybox:latest", "127.0.0.1:5000/t/busybox:v1"]);
        let digests = strings(&[&format!("busybox@{DIGEST}")]);
        let resolve = |text: &str| {
            ImageQuery::parse(text)
                .unwrap()
                .resolve(ID, &tags, &digests)
        };
        assert_eq!(resolve("busybox"), Some(Match::Tag));
        assert_eq!(
            resolve("docker.io/library/busybox:latest"),
            Some(Match::Tag)
        );
        assert_eq!(resolve("127.0.0.1:5000/t/busybox:v1"), Some(Match::Tag));
        assert_eq!(
            resolve(&format!("docker.io/library/busybox@{DIGEST}")),
            Some(Match::Digest)
        );
        assert_eq!(
            resolve(&format!("busybox:other@{DIGEST}")),
            Some(Match::Digest)
        );
        assert_eq!(resolve(ID), Some(Match::Id));
        assert_eq!(resolve("sha256:f6a1"), Some(Match::Id));
        assert_eq!(resolve(&format!("busybox@{ID}")), Some(Match::Id));
        assert_eq!(resolve("busybox:v1"), None);
        assert_eq!(resolve("127.0.0.1:5000/t/busybox"), None);
        assert_eq!(resolve(&format!("other@{DIGEST}")), None);
        assert_eq!(resolve("sha256:0000"), None);
    }

    #[test]
    fn on_the_containerd_store_a_repository_digest_is_a_digest_not_the_id() {
        // Docker 29.7.2's answer for a pulled image: the ID is the
        // manifest digest, which its repository digest repeats.
        let id = "sha256:8970f662e85201ed2b4b90d675bcc553c39d9847ad2d0735251a2e428afdce5b";
        let tags = strings(&["127.0.0.1:5000/dockshim-test/busybox:latest"]);
        let digests = strings(&[&format!("127.0.0.1:5000/dockshim-test/busybox@{id}")]);
        let resolve = |text: &str| {
            ImageQuery::parse(text)
                .unwrap()
                .resolve(id, &tags, &digests)
        };
        assert_eq!(
            resolve(&format!("127.0.0.1:5000/dockshim-test/busybox@{id}")),
            Some(Match::Digest)
        );
        assert_eq!(resolve(&format!("elsewhere/busybox@{id}")), Some(Match::Id));
        assert_eq!(resolve(id), Some(Match::Id));
    }

    #[test]
    fn placeholders_never_match() {
        let tags = strings(&["<none>:<none>"]);
        let digests = strings(&["<none>@<none>"]);
        let query = ImageQuery::parse("busybox").unwrap();
        assert_eq!(query.resolve(ID, &tags, &digests), None);
        assert!(!query.filter_matches(ID, &tags, &digests));
    }

    #[test]
    fn a_bare_name_filter_matches_every_tag_of_the_repository() {
        let tags = strings(&["127.0.0.1:5000/t/busybox:v1"]);
        let digests = strings(&[&format!("127.0.0.1:5000/t/other@{DIGEST}")]);
        let matches = |text: &str| {
            ImageQuery::parse(text)
                .unwrap()
                .filter_matches(ID, &tags, &digests)
        };
        assert!(matches("127.0.0.1:5000/t/busybox"));
        assert!(matches("127.0.0.1:5000/t/other"));
        assert!(matches("127.0.0.1:5000/t/busybox:v1"));
        assert!(!matches("127.0.0.1:5000/t/busybox:v2"));
        assert!(!matches("busybox"));
        assert!(matches("sha256:f6a1e7"));
    }
}
