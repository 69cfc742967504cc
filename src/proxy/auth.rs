//! Who may attach: the CIDR allowlist, the shared token, and the loopback rule.
//!
//! The token is compared in constant time and never logged or echoed. With a token
//! configured, every client must present it, loopback ones included (a `kubectl
//! port-forward` arrives on loopback, so loopback is no proof of who is asking). Without
//! one, only loopback clients are accepted, and only if `allow_loopback_without_token`.

use std::net::IpAddr;

use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::config::AuthConfig;

/// Why a client was refused; `Display` is the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The address is outside `auth.allow`.
    #[error(
        "dap-sidecar: connections from {0} are not allowed (auth.allow). Ask the operator to add your address range."
    )]
    NotAllowed(IpAddr),
    /// A token is configured and the attach has none.
    #[error(
        "dap-sidecar: a token is required. Add \"token\": \"<token>\" to your launch.json attach configuration (see `dap-sidecar launch-json`)."
    )]
    MissingToken,
    /// The token does not match.
    #[error(
        "dap-sidecar: the token is wrong. Check the \"token\" property of your launch.json attach configuration."
    )]
    WrongToken,
    /// No token is configured, and the client is not on loopback (or loopback is off).
    #[error(
        "dap-sidecar: no token is configured, so only local (loopback) clients may attach, and {0} is not one. Configure auth.token or auth.token_file on the sidecar and put the token in your launch.json."
    )]
    NoTokenConfigured(IpAddr),
}

impl Refusal {
    /// The `reason` label of `auth_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotAllowed(_) => "not_allowed",
            Refusal::MissingToken => "missing_token",
            Refusal::WrongToken => "wrong_token",
            Refusal::NoTokenConfigured(_) => "no_token_configured",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>, loopback: bool, allow: &[&str]) -> Auth {
        Auth::new(&AuthConfig {
            token: token.map(str::to_owned),
            allow_loopback_without_token: loopback,
            allow: allow.iter().map(|s| s.parse().unwrap()).collect(),
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
}
