//! Registry credentials: the CRI `AuthConfig` turned into the
//! `X-Registry-Auth` header dockerd reads, and the redaction that keeps
//! those credentials out of every message dockshim writes.
//!
//! It owns the secret strings of one pull and must never hand them to a
//! log or an error: its `Debug` is redacted, its descriptions name the user
//! only, and [`RegistryAuth::redact`] scrubs any text (dockerd's error
//! messages included) before it leaves the pull.

use std::fmt;

use super::error::AuthError;
use crate::api::v1;
use crate::codec::base64::{self, Alphabet};
use crate::codec::json::{unless_empty, OrderedObject};

/// What replaces a secret in any text dockshim passes on.
const REDACTED: &str = "<redacted>";

/// The credentials of one pull, in the JSON form of Docker's `AuthConfig`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    username: String,
    password: String,
    server_address: String,
    identity_token: String,
    registry_token: String,
    /// Other forms the secrets may take in a message (the CRI `auth`
    /// field, the Basic credentials a registry sees); never serialised.
    aliases: Vec<String>,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// Takes the CRI credentials. An explicit `username` wins over `auth`;
    /// otherwise `auth` (base64 of `user:password`, standard or URL-safe
    /// alphabet) supplies both.
    pub fn from_cri(auth: &v1::AuthConfig) -> Result<RegistryAuth, AuthError> {
        let (username, password) = if auth.username.is_empty() && !auth.auth.is_empty() {
            decode_user_password(&auth.auth)?
        } else {
            (auth.username.clone(), auth.password.clone())
        };
        let mut aliases = vec![auth.auth.clone()];
        if !password.is_empty() {
            let basic = format!("{username}:{password}");
            aliases.push(base64::encode(basic.as_bytes(), Alphabet::Standard));
        }
        aliases.retain(|alias| !alias.is_empty());
        Ok(RegistryAuth {
            username,
            password,
            server_address: auth.server_address.clone(),
            identity_token: auth.identity_token.clone(),
            registry_token: auth.registry_token.clone(),
            aliases,
        })
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }

    /// The `X-Registry-Auth` value: padded URL-safe base64 of the JSON
    /// object, which is how dockerd decodes it. `None` without credentials.
    pub fn header(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut json = OrderedObject::new();
        json.add_some("username", unless_empty(self.username.as_str()))
            .add_some("password", unless_empty(self.password.as_str()))
            .add_some("serveraddress", unless_empty(self.server_address.as_str()))
            .add_some("identitytoken", unless_empty(self.identity_token.as_str()))
            .add_some("registrytoken", unless_empty(self.registry_token.as_str()));
        Some(base64::encode(
            json.into_text().as_bytes(),
            Alphabet::UrlSafe,
        ))
    }

    /// Which credentials are used, for logs: the user name, or the kind of
    /// token; never a secret.
    pub fn describe(&self) -> String {
        if !self.registry_token.is_empty() {
            "a registry token".to_owned()
        } else if !self.identity_token.is_empty() {
            "an identity token".to_owned()
        } else if !self.username.is_empty() {
            format!("user {:?}", self.username)
        } else {
            "no credentials".to_owned()
        }
    }

    /// `text` with every secret, and every encoding of one this module
    /// produced or received, replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        let header = self.header();
        let candidates = [
            self.password.as_str(),
            self.identity_token.as_str(),
            self.registry_token.as_str(),
        ]
        .into_iter()
        .chain(self.aliases.iter().map(String::as_str))
        .filter(|secret| !secret.is_empty())
        .chain(header.as_deref());
        // Longest first, so a secret inside another one's encoding cannot
        // leave part of the longer one behind; each goes after those at
        // least as long, so secrets of one length keep their order.
        let mut secrets: Vec<&str> = Vec::new();
        for secret in candidates {
            let at = secrets.partition_point(|longer| longer.len() >= secret.len());
            secrets.insert(at, secret);
        }
        secrets.into_iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret, REDACTED)
        })
    }
}

fn decode_user_password(auth: &str) -> Result<(String, String), AuthError> {
    let bytes = base64::decode(auth, Alphabet::Standard)
        .or_else(|_| base64::decode(auth, Alphabet::UrlSafe))
        .map_err(AuthError::NotBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| AuthError::NotUserPassword)?;
    let (user, password) = text.split_once(':').ok_or(AuthError::NotUserPassword)?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header_json(auth: &RegistryAuth) -> serde_json::Value {
        let header = auth.header().unwrap();
        let json = base64::decode(&header, Alphabet::UrlSafe).unwrap();
        serde_json::from_slice(&json).unwrap()
    }

    #[test]
    fn username_and_password_become_dockers_auth_config() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            username: "alice".into(),
            password: "pa+ss/word?".into(),
            server_address: "127.0.0.1:5001".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        assert_eq!(
            header_json(&auth),
            serde_json::json!({
                "username": "alice",
                "password": "pa+ss/word?",
                "serveraddress": "127.0.0.1:5001",
            })
        );
        assert!(!auth.header().unwrap().contains(['+', '/']));
    }

    #[test]
    fn the_auth_field_supplies_user_and_password() {
        let encoded = base64::encode(b"bob:se:cret", Alphabet::Standard);
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            auth: encoded,
            ..v1::AuthConfig::default()
        })
        .unwrap();
        let json = header_json(&auth);
        assert_eq!(
            (json["username"].as_str(), json["password"].as_str()),
            (Some("bob"), Some("se:cret"))
        );
        let unpadded = RegistryAuth::from_cri(&v1::AuthConfig {
            auth: "Ym9iOng".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        assert_eq!(header_json(&unpadded)["password"], "x");
    }

    #[test]
    fn an_explicit_username_wins_over_the_auth_field() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            username: "carol".into(),
            password: "pw".into(),
            auth: base64::encode(b"bob:other", Alphabet::Standard),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        assert_eq!(header_json(&auth)["username"], "carol");
    }

    #[test]
    fn tokens_are_passed_through() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            identity_token: "refresh-token".into(),
            registry_token: "bearer-token".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        let json = header_json(&auth);
        assert_eq!(json["identitytoken"], "refresh-token");
        assert_eq!(json["registrytoken"], "bearer-token");
        assert_eq!(auth.describe(), "a registry token");
    }

    #[test]
    fn no_credentials_means_no_header() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            server_address: "registry.example".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        assert_eq!(auth.header(), None);
        assert_eq!(auth.describe(), "no credentials");
    }

    #[test]
    fn a_malformed_auth_field_is_refused_without_quoting_it() {
        for bad in [
            "c2VjcmV0!!",
            &base64::encode(b"no-colon-here", Alphabet::Standard),
        ] {
            let err = RegistryAuth::from_cri(&v1::AuthConfig {
                auth: bad.to_owned(),
                ..v1::AuthConfig::default()
            })
            .unwrap_err();
            assert!(!err.to_string().contains(bad), "{err}");
            assert!(!err.to_string().contains("no-colon-here"), "{err}");
        }
    }

    #[test]
    fn secrets_and_their_encodings_are_redacted() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            auth: base64::encode(b"dave:hunter2", Alphabet::Standard),
            identity_token: "tok-123".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        let basic = base64::encode(b"dave:hunter2", Alphabet::Standard);
        let header = auth.header().unwrap();
        let text =
            format!("bad password hunter2; sent Basic {basic}; token tok-123; header {header}");
        let clean = auth.redact(&text);
        for secret in ["hunter2", basic.as_str(), "tok-123", header.as_str()] {
            assert!(!clean.contains(secret), "{secret} left in {clean}");
        }
        assert!(clean.starts_with("bad password <redacted>;"), "{clean}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let auth = RegistryAuth::from_cri(&v1::AuthConfig {
            username: "erin".into(),
            password: "topsecret".into(),
            registry_token: "tok".into(),
            ..v1::AuthConfig::default()
        })
        .unwrap();
        let debug = format!("{auth:?}");
        assert!(debug.contains("erin"), "{debug}");
        assert!(
            !debug.contains("topsecret") && !debug.contains("tok\""),
            "{debug}"
        );
    }
}
