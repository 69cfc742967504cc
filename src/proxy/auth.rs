//! Who may attach: the CIDR allowlist, the shared token, and the loopback rule.
//!
//! The token is compared in constant time and never logged or echoed. With a token
//! configured, every client must present it, loopback ones included (a `kubectl
//! port-forward` arrives on loopback, so loopback is no proof of who is asking). Without
//! one, only loopback clients are accepted, and only if `allow_loopback_without_token`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use subtle::ConstantTimeEq;

use crate::config::AuthConfig;
use crate::proxy::client::{ClientInfo, Editor};

/// Why a client was refused. [`Refusal::message`] is the message the client sees,
/// worded for its editor; `Display` is the neutral wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The address is outside `auth.allow`.
    NotAllowed(IpAddr),
    /// A token is configured and the attach has none.
    MissingToken,
    /// The token does not match.
    WrongToken,
    /// No token is configured, and the client is not on loopback (or loopback is off).
    NoTokenConfigured(IpAddr),
    /// Every session slot is taken.
    TooManySessions(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message(&ClientInfo::default()))
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// The message for a client, naming where its users put the token.
    pub fn message(&self, client: &ClientInfo) -> String {
        let place = client.config_place();
        let vscode_note = if client.editor == Editor::VsCode {
            " (`dap-sidecar launch-json` prints one)"
        } else {
            ""
        };
        match self {
            Refusal::NotAllowed(ip) => format!(
                "dap-sidecar: connections from {ip} are not allowed (auth.allow). Ask the operator to add your address range."
            ),
            Refusal::MissingToken => format!(
                "dap-sidecar: a token is required. Add {} to {place}{vscode_note}.",
                client.token_property()
            ),
            Refusal::WrongToken => {
                format!("dap-sidecar: the token is wrong. Check the token property of {place}.")
            }
            Refusal::NoTokenConfigured(ip) => format!(
                "dap-sidecar: no token is configured, so only local (loopback) clients may attach, and {ip} is not one. Configure auth.token or auth.token_file on the sidecar and put the token in {place}."
            ),
            Refusal::TooManySessions(n) => format!(
                "dap-sidecar: {n} debugging sessions are open already, the most limits.max_connections allows. End one, or ask the operator to raise the limit."
            ),
        }
    }

    /// The `reason` label of `auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotAllowed(_) => "not_allowed",
            Refusal::MissingToken => "missing_token",
            Refusal::WrongToken => "wrong_token",
            Refusal::NoTokenConfigured(_) => "no_token_configured",
            Refusal::TooManySessions(_) => "too_many_sessions",
        }
    }
}

/// The authentication policy.
#[derive(Clone)]
pub struct Auth {
    /// The expected token, if any.
    token: Option<Vec<u8>>,
    /// Without a token, accept loopback clients.
    allow_loopback_without_token: bool,
    /// Allowed client ranges; empty means any.
    allow: Vec<IpNet>,
}

impl Auth {
    /// The policy of `config`.
    pub fn new(config: &AuthConfig) -> Self {
        Auth {
            token: config.token.as_ref().map(|t| t.as_bytes().to_vec()),
            allow_loopback_without_token: config.allow_loopback_without_token,
            allow: config.allow.clone(),
        }
    }

    /// Whether a token is configured.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Checks the address before anything else is read.
    pub fn check_address(&self, peer: IpAddr) -> Result<(), Refusal> {
        let peer = peer.to_canonical();
        if self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&peer)) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed(peer))
        }
    }

    /// Checks a client at `peer` presenting `token` in its attach.
    pub fn check(&self, peer: IpAddr, token: Option<&str>) -> Result<(), Refusal> {
        self.check_address(peer)?;
        let peer = peer.to_canonical();
        match (&self.token, token) {
            (Some(expected), Some(given)) => {
                if bool::from(expected.as_slice().ct_eq(given.as_bytes())) {
                    Ok(())
                } else {
                    Err(Refusal::WrongToken)
                }
            }
            (Some(_), None) => Err(Refusal::MissingToken),
            (None, _) if self.allow_loopback_without_token && peer.is_loopback() => Ok(()),
            (None, _) => Err(Refusal::NoTokenConfigured(peer)),
        }
    }
}

/// The `token` an `attach` request presents (`arguments.token`), read without building
/// a tree of the message: everything else is skipped as it is read, so checking a
/// token costs no more memory than the token. A string token is unescaped; any other
/// JSON value is presented as its text (so it can only be wrong). When a key appears
/// twice, the last one counts, as it does for the forwarded message.
pub fn presented_token(body: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let token = TopSeed.deserialize(&mut de)?;
    de.end()?;
    Ok(token)
}

/// Reads the top-level object, keeping `arguments.token`.
struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a DAP message")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut token = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "arguments" {
                token = map.next_value_seed(ArgumentsSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(token)
    }
}

/// Reads `arguments`, keeping `token`.
struct ArgumentsSeed;

impl<'de> DeserializeSeed<'de> for ArgumentsSeed {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ArgumentsSeed {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("attach arguments")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut token = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "token" {
                let raw: &'de RawValue = map.next_value()?;
                token = Some(if raw.get().starts_with('"') {
                    serde_json::from_str::<String>(raw.get()).map_err(de::Error::custom)?
                } else {
                    raw.get().to_owned()
                });
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(token)
    }

    // `arguments` that is not an object carries no token.
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>, loopback: bool, allow: &[&str]) -> Auth {
        Auth::new(&AuthConfig {
            token: token.map(str::to_owned),
            allow_loopback_without_token: loopback,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
            allow_exposed_upstream: false,
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_token_only_loopback() {
        let a = auth(None, true, &[]);
        assert_eq!(a.check(ip("127.0.0.1"), None), Ok(()));
        assert_eq!(a.check(ip("::ffff:127.0.0.1"), None), Ok(()));
        assert_eq!(
            a.check(ip("10.1.2.3"), Some("x")),
            Err(Refusal::NoTokenConfigured(ip("10.1.2.3")))
        );
        let a = auth(None, false, &[]);
        assert!(a.check(ip("127.0.0.1"), None).is_err());
    }

    #[test]
    fn with_token_everyone_needs_it() {
        let a = auth(Some("sekrit-sekrit-sekrit"), true, &[]);
        assert_eq!(a.check(ip("127.0.0.1"), None), Err(Refusal::MissingToken));
        assert_eq!(
            a.check(ip("10.0.0.1"), Some("sekrit-sekrit-sekriT")),
            Err(Refusal::WrongToken)
        );
        assert_eq!(
            a.check(ip("10.0.0.1"), Some("sekrit")),
            Err(Refusal::WrongToken)
        );
        assert_eq!(
            a.check(ip("10.0.0.1"), Some("sekrit-sekrit-sekrit")),
            Ok(())
        );
    }

    #[test]
    fn allowlist_comes_first() {
        let a = auth(Some("sekrit-sekrit-sekrit"), true, &["10.0.0.0/8"]);
        assert_eq!(
            a.check(ip("192.0.2.1"), Some("sekrit-sekrit-sekrit")),
            Err(Refusal::NotAllowed(ip("192.0.2.1")))
        );
        assert_eq!(
            a.check(ip("10.9.9.9"), Some("sekrit-sekrit-sekrit")),
            Ok(())
        );
    }

    #[test]
    fn messages_never_contain_the_token() {
        for r in [
            Refusal::MissingToken,
            Refusal::WrongToken,
            Refusal::NotAllowed(ip("1.2.3.4")),
            Refusal::NoTokenConfigured(ip("1.2.3.4")),
        ] {
            assert!(!r.to_string().contains("sekrit"));
            assert!(r.to_string().starts_with("dap-sidecar:"));
        }
    }

    #[test]
    fn the_token_is_found_without_a_tree() {
        let t = |json: &str| presented_token(json.as_bytes());
        let attach = r#"{"seq":2,"type":"request","command":"attach","arguments":{"connect":{"host":"h","port":1},"pathMappings":[{"localRoot":"/a","remoteRoot":"/b"}],"token":"s\u0065krit","x":[1,{"token":"inner"}]}}"#;
        assert_eq!(t(attach).unwrap().as_deref(), Some("sekrit"));
        assert_eq!(
            t(r#"{"arguments":{"token":12345}}"#).unwrap().as_deref(),
            Some("12345")
        );
        assert_eq!(t(r#"{"arguments":{"x":{"token":"no"}}}"#).unwrap(), None);
        assert_eq!(t(r#"{"token":"top","arguments":[]}"#).unwrap(), None);
        assert_eq!(
            t(r#"{"arguments":{"token":"a"},"arguments":{"token":"b"}}"#)
                .unwrap()
                .as_deref(),
            Some("b"),
            "the last key counts, as in the forwarded message"
        );
        for bad in [
            r#"{"arguments":{"token":"a"}"#,
            "[]",
            r#"{"a":1} x"#,
            "\u{ff}",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }
}
