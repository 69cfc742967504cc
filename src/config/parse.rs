//! Value parsers: each turns one figment [`Value`] into a typed setting, or says what is
//! allowed. Every kind also accepts its value written as text (as environment variables
//! and YAML strings give it).

use std::net::IpAddr;
use std::time::Duration;

use figment::value::Value;
use ipnet::IpNet;

use super::types::{InjectMode, LogFormat, OnLimit, TargetPid};

/// A parser as the key table uses it.
pub(super) type Parse<T> = fn(&Value) -> Result<T, String>;

pub(super) fn is_null(value: &Value) -> bool {
    matches!(value, Value::Empty(..))
}

/// A value as the user wrote it, for error messages.
pub(super) fn show(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// Text; numbers and booleans count too (the environment turns `TOKEN=1234` into a number).
pub(super) fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(_, s) => Ok(s.clone()),
        Value::Num(..) | Value::Bool(..) | Value::Char(..) => Ok(show(value)),
        _ => Err("must be a string".into()),
    }
}

pub(super) fn non_empty_text(value: &Value) -> Result<String, String> {
    let s = text(value)?;
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s)
    }
}

pub(super) fn text_secret(value: &Value) -> Result<String, String> {
    let s = non_empty_text(value)?;
    token_strength(&s)?;
    Ok(s)
}

/// Fewest characters a token may have.
pub const TOKEN_MIN_LENGTH: usize = 16;
/// Fewest different characters a token may have.
pub const TOKEN_MIN_DISTINCT: usize = 8;

/// The rule a token must meet: at least [`TOKEN_MIN_LENGTH`] characters, of which at
/// least [`TOKEN_MIN_DISTINCT`] different ones (so `aaaaaaaaaaaaaaaa` or `abababab...`
/// are refused; any random token of that length passes).
pub fn token_strength(token: &str) -> Result<(), String> {
    let length = token.chars().count();
    let distinct = token
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if length < TOKEN_MIN_LENGTH || distinct < TOKEN_MIN_DISTINCT {
        Err(format!(
            "must be at least {TOKEN_MIN_LENGTH} characters with at least {TOKEN_MIN_DISTINCT} different ones (this one has {length} characters, {distinct} different); generate one with `openssl rand -hex 24`"
        ))
    } else {
        Ok(())
    }
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(_, b) => Ok(*b),
        Value::String(_, s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("must be true or false".into()),
        },
        Value::Num(..) => match unsigned(value) {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err("must be true or false".into()),
        },
        _ => Err("must be true or false".into()),
    }
}

/// A whole number >= 0, from any integer type (TOML and YAML give signed ones) or text.
fn unsigned(value: &Value) -> Option<u128> {
    match value {
        Value::Num(..) => value
            .to_u128()
            .or_else(|| value.to_i128().and_then(|n| u128::try_from(n).ok())),
        Value::String(_, s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn port(value: &Value) -> Result<u16, String> {
    unsigned(value)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| "must be a TCP port number from 0 to 65535".into())
}

pub(super) fn positive_count(value: &Value) -> Result<usize, String> {
    unsigned(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a whole number greater than 0".into())
}

pub(super) fn backlog(value: &Value) -> Result<u32, String> {
    unsigned(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| "must be a whole number from 1 to 65535".into())
}

pub(super) fn ip(value: &Value) -> Result<IpAddr, String> {
    let s = text(value)?;
    if s == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse()
        .map_err(|_| "must be an IP address such as 0.0.0.0, ::, or 127.0.0.1".into())
}

pub(super) fn host_port(value: &Value) -> Result<String, String> {
    let s = text(value)?;
    let allowed = "must be host:port, e.g. 127.0.0.1:5679";
    let (host, port) = s.rsplit_once(':').ok_or(allowed)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(allowed.into());
    }
    Ok(s)
}

pub(super) fn duration(value: &Value) -> Result<Duration, String> {
    let allowed = "must be a duration such as 500ms, 30s or 10m";
    match value {
        Value::Num(..) => Err(format!("{allowed} (a unit is required)")),
        _ => humantime::parse_duration(text(value)?.trim()).map_err(|e| format!("{allowed} ({e})")),
    }
}

pub(super) fn positive_duration(value: &Value) -> Result<Duration, String> {
    let d = duration(value)?;
    if d.is_zero() {
        Err("must be longer than zero".into())
    } else {
        Ok(d)
    }
}

/// Parses a size: a number of bytes, or a number with B, KiB, MiB, GiB (or KB, MB, GB).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

pub(super) fn size(value: &Value) -> Result<u64, String> {
    let allowed = "must be a size such as 512MiB, 64KiB, 2GiB, or a number of bytes";
    match value {
        Value::Num(..) => unsigned(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| allowed.into()),
        _ => parse_size(&text(value)?).ok_or_else(|| allowed.into()),
    }
}

pub(super) fn positive_size(value: &Value) -> Result<usize, String> {
    size(value)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a size greater than 0 such as 64KiB or 16MiB".into())
}

pub(super) fn cidr(value: &Value) -> Result<IpNet, String> {
    let s = text(value)?;
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "must be an address or CIDR range such as 10.0.0.0/8 or ::1".into())
}

pub(super) fn target_pid(value: &Value) -> Result<TargetPid, String> {
    if let Value::String(_, s) = value
        && s == "auto"
    {
        return Ok(TargetPid::Auto);
    }
    unsigned(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(TargetPid::Pid)
        .ok_or_else(|| "must be auto or a process id".into())
}

pub(super) fn on_limit(value: &Value) -> Result<OnLimit, String> {
    match text(value)?.as_str() {
        "warn" => Ok(OnLimit::Warn),
        "detach" => Ok(OnLimit::Detach),
        _ => Err("must be warn or detach".into()),
    }
}

pub(super) fn log_format(value: &Value) -> Result<LogFormat, String> {
    match text(value)?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be text or json".into()),
    }
}

/// `auto` or `off`; YAML 1.1 reads a bare `off` (and `on`) as a boolean, so booleans
/// are taken too: false is `off`, true is `auto`.
pub(super) fn inject_mode(value: &Value) -> Result<InjectMode, String> {
    if let Value::Bool(_, on) = value {
        return Ok(if *on {
            InjectMode::Auto
        } else {
            InjectMode::Off
        });
    }
    match text(value)?.as_str() {
        "auto" => Ok(InjectMode::Auto),
        "off" => Ok(InjectMode::Off),
        _ => Err("must be auto or off".into()),
    }
}
