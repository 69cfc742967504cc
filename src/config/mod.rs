//! Layered configuration: built-in defaults, a YAML or TOML file, `DAP_SIDECAR_*`
//! environment variables, then command-line flags (later wins).
//!
//! Loading never stops at the first problem: every key is read on its own and every bad
//! value (and every unknown key, usually a typo) is collected into [`ConfigErrors`], so a
//! user fixes their file in one go. Each problem names the key path, the value, what is
//! allowed, and where the value came from.
//!
//! # Layout
//!
//! - `types.rs`: [`Config`] and its sections, their defaults, and what the rest of the
//!   sidecar asks of them ([`Config::dap_addr`], [`HttpConfig::addr`],
//!   [`AuthConfig::summary`]).
//! - `keys.rs`: [`KEYS`], the one table of keys: name, one-line description, and how
//!   each is read. A test holds it to the README's configuration table.
//! - `load.rs`: the layers ([`Config::load`], [`Overrides`] as command-line layers).
//! - `read.rs`: the reader that turns the merged layers into a [`Config`], key by key,
//!   collecting every problem.
//! - `parse.rs`: value parsers (ports, durations, sizes, CIDR ranges, [`token_strength`]).
//! - `errors.rs`: [`Problem`] and [`ConfigErrors`].

mod errors;
mod keys;
mod load;
mod parse;
mod read;
#[cfg(test)]
mod tests;
mod types;

pub use errors::{ConfigErrors, Problem};
pub use keys::{KEYS, Key};
pub use load::{ENV_PREFIX, Overrides};
pub use parse::{TOKEN_MIN_DISTINCT, TOKEN_MIN_LENGTH, parse_size, token_strength};
pub use types::{
    AuthConfig, Config, DEFAULT_REMOTE_ROOT, HttpConfig, InjectConfig, InjectMode, Limits,
    LogConfig, LogFormat, MappingConfig, MemoryConfig, OnLimit, TargetConfig, TargetPid,
};
