//! Layered configuration: built-in defaults, a YAML or TOML file, `DAP_SIDECAR_*`
//! environment variables, then command-line flags (later wins).
//!
//! Loading never stops at the first problem: every key is read on its own and every bad
//! value (and every unknown key, usually a typo) is collected into [`ConfigErrors`], so a
//! user fixes their file in one go. Each problem names the key path, the value, what is
//! allowed, and where the value came from.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};
use ipnet::IpNet;

/// Prefix of the environment variables that configure the sidecar.
pub const ENV_PREFIX: &str = "DAP_SIDECAR_";

/// The fully validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Interface the DAP listener binds (`host`).
    pub host: IpAddr,
    /// Port the DAP listener binds (`port`); 0 picks a free port.
    pub port: u16,
    /// Whether the app waits for a debugger before running (`wait`).
    pub wait: bool,
    /// `host:port` of the debug server in the app container (`upstream`).
    pub upstream: String,
    /// How long an attach waits for the upstream to accept (`upstream_timeout`).
    pub upstream_timeout: Duration,
    /// IDE <-> container path mappings (`path_mappings`).
    pub path_mappings: Vec<MappingConfig>,
    /// The HTTP endpoint (`http.*`).
    pub http: HttpConfig,
    /// Who may attach (`auth.*`).
    pub auth: AuthConfig,
    /// Which process is the app (`target.*`).
    pub target: TargetConfig,
    /// Memory watching (`memory.*`).
    pub memory: MemoryConfig,
    /// Logging (`log.*`).
    pub log: LogConfig,
    /// Protocol limits (`limits.*`).
    pub limits: Limits,
}

/// One `path_mappings` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingConfig {
    /// The root in the IDE's checkout; `None` means "the client's `workspaceFolder`".
    pub local_root: Option<String>,
    /// The root inside the container.
    pub remote_root: String,
}

/// `http.*`: where `/healthz`, `/readyz`, `/metrics`, `/status` and `/` are served.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Interface to bind.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free port.
    pub port: u16,
    /// Most HTTP connections open at once; a new one beyond it sheds the oldest.
    pub max_connections: usize,
    /// How long a client has to send a complete request header.
    pub header_timeout: Duration,
    /// How long one request may take to be answered.
    pub request_timeout: Duration,
}

/// `auth.*`, with `token_file` already read.
#[derive(Clone)]
pub struct AuthConfig {
    /// The shared secret clients present as `"token"` in their attach arguments.
    pub token: Option<String>,
    /// Without a token, accept clients connecting from a loopback address.
    pub allow_loopback_without_token: bool,
    /// Client address allowlist; empty means any address. Applied at accept.
    pub allow: Vec<IpNet>,
    /// Relay even when debugpy itself listens on a non-loopback address, where anyone
    /// who reaches it bypasses the token.
    pub allow_exposed_upstream: bool,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field(
                "allow_loopback_without_token",
                &self.allow_loopback_without_token,
            )
            .field("allow", &self.allow)
            .field("allow_exposed_upstream", &self.allow_exposed_upstream)
            .finish()
    }
}

/// `target.pid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetPid {
    /// Find the app from the upstream's listening socket and command lines.
    Auto,
    /// A fixed process id.
    Pid(u32),
}

/// `target.*`: which process is the debugged app.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    /// `auto` or a fixed pid.
    pub pid: TargetPid,
    /// Optional substring of the app's command line.
    pub r#match: Option<String>,
    /// How often memory is sampled.
    pub sample_interval: Duration,
}

/// `memory.on_limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnLimit {
    /// Tell the IDE and the logs, count it in a metric.
    Warn,
    /// End the session cleanly; the app resumes.
    Detach,
}

/// `memory.*`.
#[derive(Clone, Debug)]
pub struct MemoryConfig {
    /// Window of the growth-rate fit.
    pub window: Duration,
    /// Read PSS from `smaps_rollup` (costly for the app).
    pub pss: bool,
    /// Growth of the debuggee's RSS since attach that triggers `on_limit`.
    pub max_growth_while_attached: Option<u64>,
    /// What happens at the limit.
    pub on_limit: OnLimit,
}

/// `log.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `log.*`.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `dap_sidecar=debug`.
    pub level: String,
}

/// `limits.*`: protection against broken or hostile clients.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest accepted DAP header block, in bytes.
    pub max_header_bytes: usize,
    /// Largest accepted DAP message body, in bytes, once authenticated.
    pub max_body_bytes: usize,
    /// Largest accepted DAP message body before `attach` succeeded.
    pub max_handshake_bytes: usize,
    /// Most authenticated DAP sessions open at once.
    pub max_connections: usize,
    /// Most connections that have not authenticated yet; a new one beyond it sheds the
    /// oldest.
    pub max_unauthenticated: usize,
    /// The listen backlog of the DAP and HTTP sockets.
    pub listen_backlog: u32,
    /// How long a client has, from connecting, to complete a valid `attach`.
    pub auth_timeout: Duration,
    /// How long a refused `attach` waits before its answer.
    pub auth_failure_delay: Duration,
    /// How long a started frame may take to arrive completely.
    pub frame_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 5678,
            wait: false,
            upstream: "127.0.0.1:5679".to_owned(),
            upstream_timeout: Duration::from_secs(30),
            path_mappings: Vec::new(),
            http: HttpConfig {
                host: IpAddr::from([0, 0, 0, 0]),
                port: 5680,
                max_connections: 512,
                header_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(10),
            },
            auth: AuthConfig {
                token: None,
                allow_loopback_without_token: true,
                allow: Vec::new(),
                allow_exposed_upstream: false,
            },
            target: TargetConfig {
                pid: TargetPid::Auto,
                r#match: None,
                sample_interval: Duration::from_secs(5),
            },
            memory: MemoryConfig {
                window: Duration::from_secs(600),
                pss: false,
                max_growth_while_attached: None,
                on_limit: OnLimit::Warn,
            },
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".to_owned(),
            },
            limits: Limits {
                max_header_bytes: 4096,
                max_body_bytes: 64 * 1024 * 1024,
                max_handshake_bytes: 64 * 1024,
                max_connections: 32,
                max_unauthenticated: 128,
                listen_backlog: 1024,
                auth_timeout: Duration::from_secs(10),
                auth_failure_delay: Duration::from_secs(1),
                frame_timeout: Duration::from_secs(30),
            },
        }
    }
}

impl Config {
    /// The port of `upstream` (validated to exist when the config was loaded).
    pub fn upstream_port(&self) -> u16 {
        self.upstream
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(0)
    }
}

/// The remote root used when neither the config nor the client gives mappings.
pub const DEFAULT_REMOTE_ROOT: &str = "/usr/src/app";

/// Command-line values that override every other layer.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--host`
    pub host: Option<String>,
    /// `--port`
    pub port: Option<u16>,
    /// `--upstream`
    pub upstream: Option<String>,
    /// `--http-port`
    pub http_port: Option<u16>,
    /// `--token-file`
    pub token_file: Option<PathBuf>,
    /// `--wait`
    pub wait: Option<bool>,
    /// `--log-format`
    pub log_format: Option<String>,
}

/// One problem in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `auth.allow[1]`.
    pub key: String,
    /// The offending value as written (secrets redacted), if there is one.
    pub value: Option<String>,
    /// What is allowed, or what went wrong.
    pub message: String,
    /// Where the value came from (file, environment, flag), when known.
    pub source: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(source) = &self.source {
            write!(f, " (from {source})")?;
        }
        Ok(())
    }
}

/// Every problem found while loading the configuration.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// YAML for figment, parsed with the maintained pure-Rust `serde-saphyr`.
struct Yaml;

impl Format for Yaml {
    type Error = serde_saphyr::Error;
    const NAME: &'static str = "YAML";

    fn from_str<T: serde::de::DeserializeOwned>(string: &str) -> Result<T, Self::Error> {
        serde_saphyr::from_str(string)
    }
}

impl Config {
    /// Loads defaults, then `file` (YAML or TOML by extension), then the environment,
    /// then `overrides`; validates everything and reports every problem at once.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigErrors> {
        Self::load_with_env(file, overrides, Env::prefixed(ENV_PREFIX))
    }

    /// [`Config::load`] with an explicit environment provider (tests use this).
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<Config, ConfigErrors> {
        let mut problems = Vec::new();
        let mut figment = Figment::new();
        if let Some(path) = file {
            let shown = path.display().to_string();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if !path.is_file() {
                problems.push(Problem {
                    key: "--config".into(),
                    value: Some(shown),
                    message: "no such file".into(),
                    source: None,
                });
            } else {
                match ext.as_deref() {
                    Some("yaml" | "yml") => figment = figment.merge(Yaml::file_exact(path)),
                    Some("toml") => figment = figment.merge(Toml::file_exact(path)),
                    _ => problems.push(Problem {
                        key: "--config".into(),
                        value: Some(shown),
                        message: "the file name must end in .yaml, .yml or .toml".into(),
                        source: None,
                    }),
                }
            }
        }
        figment = figment.merge(env.split("__").ignore(&["config"]));
        figment = merge_overrides(figment, overrides);

        let root: Dict = match figment.extract() {
            Ok(root) => root,
            Err(errors) => {
                for error in errors {
                    problems.push(Problem {
                        key: if error.path.is_empty() {
                            "(file)".into()
                        } else {
                            error.path.join(".")
                        },
                        value: None,
                        message: error.kind.to_string(),
                        source: error.metadata.as_ref().map(|m| m.name.to_string()),
                    });
                }
                return Err(ConfigErrors(problems));
            }
        };

        let mut reader = Reader {
            figment: &figment,
            problems,
        };
        let config = reader.read(&root);
        if reader.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(reader.problems))
        }
    }
}

/// One command-line flag as a figment layer, so errors can say where a value came from.
struct Flag {
    /// The dotted config key.
    key: &'static str,
    /// The flag's value.
    value: Value,
}

impl figment::Provider for Flag {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("command-line flag for {}", self.key))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        let dict = figment::util::nest(self.key, self.value.clone())
            .into_dict()
            .unwrap_or_default();
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn merge_overrides(mut figment: Figment, o: &Overrides) -> Figment {
    fn set<T: serde::Serialize>(figment: Figment, key: &'static str, value: &Option<T>) -> Figment {
        match value.as_ref().and_then(|v| Value::serialize(v).ok()) {
            Some(value) => figment.merge(Flag { key, value }),
            None => figment,
        }
    }
    figment = set(figment, "host", &o.host);
    figment = set(figment, "port", &o.port);
    figment = set(figment, "upstream", &o.upstream);
    figment = set(figment, "http.port", &o.http_port);
    figment = set(figment, "auth.token_file", &o.token_file);
    figment = set(figment, "wait", &o.wait);
    set(figment, "log.format", &o.log_format)
}

/// The keys each section accepts, for unknown-key reports.
const TOP_KEYS: &[&str] = &[
    "host",
    "port",
    "wait",
    "upstream",
    "upstream_timeout",
    "path_mappings",
    "http",
    "auth",
    "target",
    "memory",
    "log",
    "limits",
];
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "http",
        &[
            "host",
            "port",
            "max_connections",
            "header_timeout",
            "request_timeout",
        ],
    ),
    (
        "auth",
        &[
            "token",
            "token_file",
            "allow_loopback_without_token",
            "allow",
            "allow_exposed_upstream",
        ],
    ),
    ("target", &["pid", "match", "sample_interval"]),
    (
        "memory",
        &["window", "pss", "max_growth_while_attached", "on_limit"],
    ),
    ("log", &["format", "level"]),
    (
        "limits",
        &[
            "max_header_bytes",
            "max_body_bytes",
            "max_handshake_bytes",
            "max_connections",
            "max_unauthenticated",
            "listen_backlog",
            "auth_timeout",
            "auth_failure_delay",
            "frame_timeout",
        ],
    ),
];

/// Reads one key at a time, collecting problems instead of stopping.
struct Reader<'a> {
    /// The merged layers, for values and their provenance.
    figment: &'a Figment,
    /// Everything found wrong so far.
    problems: Vec<Problem>,
}

type Parse<T> = fn(&Value) -> Result<T, String>;

impl Reader<'_> {
    fn read(&mut self, root: &Dict) -> Config {
        self.unknown_keys(root);
        let d = Config::default();
        let token_inline: Option<String> = self.opt("auth.token", text_secret);
        let token_file: Option<String> = self.opt("auth.token_file", text);
        let token = self.token(token_inline, token_file);
        let config = Config {
            host: self.get("host", d.host, ip),
            port: self.get("port", d.port, port),
            wait: self.get("wait", d.wait, boolean),
            upstream: self.get("upstream", d.upstream, host_port),
            upstream_timeout: self.get("upstream_timeout", d.upstream_timeout, duration),
            path_mappings: self.mappings(),
            http: HttpConfig {
                host: self.get("http.host", d.http.host, ip),
                port: self.get("http.port", d.http.port, port),
                max_connections: self.get(
                    "http.max_connections",
                    d.http.max_connections,
                    positive_count,
                ),
                header_timeout: self.get(
                    "http.header_timeout",
                    d.http.header_timeout,
                    positive_duration,
                ),
                request_timeout: self.get(
                    "http.request_timeout",
                    d.http.request_timeout,
                    positive_duration,
                ),
            },
            auth: AuthConfig {
                token,
                allow_loopback_without_token: self.get(
                    "auth.allow_loopback_without_token",
                    d.auth.allow_loopback_without_token,
                    boolean,
                ),
                allow: self.list("auth.allow", cidr),
                allow_exposed_upstream: self.get(
                    "auth.allow_exposed_upstream",
                    d.auth.allow_exposed_upstream,
                    boolean,
                ),
            },
            target: TargetConfig {
                pid: self.get("target.pid", d.target.pid, target_pid),
                r#match: self.opt("target.match", non_empty_text),
                sample_interval: self.get(
                    "target.sample_interval",
                    d.target.sample_interval,
                    positive_duration,
                ),
            },
            memory: MemoryConfig {
                window: self.get("memory.window", d.memory.window, positive_duration),
                pss: self.get("memory.pss", d.memory.pss, boolean),
                max_growth_while_attached: self.opt("memory.max_growth_while_attached", size),
                on_limit: self.get("memory.on_limit", d.memory.on_limit, on_limit),
            },
            log: LogConfig {
                format: self.get("log.format", d.log.format, log_format),
                level: self.get("log.level", d.log.level, non_empty_text),
            },
            limits: Limits {
                max_header_bytes: self.get(
                    "limits.max_header_bytes",
                    d.limits.max_header_bytes,
                    positive_size,
                ),
                max_body_bytes: self.get(
                    "limits.max_body_bytes",
                    d.limits.max_body_bytes,
                    positive_size,
                ),
                max_handshake_bytes: self.get(
                    "limits.max_handshake_bytes",
                    d.limits.max_handshake_bytes,
                    positive_size,
                ),
                max_connections: self.get(
                    "limits.max_connections",
                    d.limits.max_connections,
                    positive_count,
                ),
                max_unauthenticated: self.get(
                    "limits.max_unauthenticated",
                    d.limits.max_unauthenticated,
                    positive_count,
                ),
                listen_backlog: self.get("limits.listen_backlog", d.limits.listen_backlog, backlog),
                auth_timeout: self.get(
                    "limits.auth_timeout",
                    d.limits.auth_timeout,
                    positive_duration,
                ),
                auth_failure_delay: self.get(
                    "limits.auth_failure_delay",
                    d.limits.auth_failure_delay,
                    duration,
                ),
                frame_timeout: self.get(
                    "limits.frame_timeout",
                    d.limits.frame_timeout,
                    positive_duration,
                ),
            },
        };
        if config.target.sample_interval > config.memory.window {
            self.problems.push(Problem {
                key: "memory.window".into(),
                value: Some(humantime::format_duration(config.memory.window).to_string()),
                message: "must be at least target.sample_interval".into(),
                source: self.source("memory.window"),
            });
        }
        config
    }

    fn source(&self, key: &str) -> Option<String> {
        let meta = self.figment.find_metadata(key)?;
        let mut name = meta.name.to_string();
        if let Some(source) = &meta.source {
            name = format!("{name} {source}");
        }
        Some(name)
    }

    fn problem(&mut self, key: &str, value: Option<String>, message: String) {
        let source = self.source(key);
        self.problems.push(Problem {
            key: key.to_owned(),
            value,
            message,
            source,
        });
    }

    /// Reads `key` with `parse`; a missing or null key keeps `default`.
    fn get<T>(&mut self, key: &str, default: T, parse: Parse<T>) -> T {
        self.opt(key, parse).unwrap_or(default)
    }

    /// Reads an optional `key`; missing or null is `None`.
    fn opt<T>(&mut self, key: &str, parse: Parse<T>) -> Option<T> {
        let value = self.figment.find_value(key).ok()?;
        if is_null(&value) {
            return None;
        }
        match parse(&value) {
            Ok(v) => Some(v),
            Err(message) => {
                let shown = if key == "auth.token" {
                    "<redacted>".to_owned()
                } else {
                    show(&value)
                };
                self.problem(key, Some(shown), message);
                None
            }
        }
    }

    /// Reads a list; each bad item is reported with its index.
    fn list<T>(&mut self, key: &str, parse: Parse<T>) -> Vec<T> {
        let Ok(value) = self.figment.find_value(key) else {
            return Vec::new();
        };
        let items = match value {
            Value::Array(_, items) => items,
            v if is_null(&v) => return Vec::new(),
            // A single string (handy from the environment) is a list of one.
            v @ Value::String(..) => vec![v],
            other => {
                self.problem(key, Some(show(&other)), "must be a list".into());
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match parse(item) {
                Ok(v) => out.push(v),
                Err(message) => self.problem(&format!("{key}[{i}]"), Some(show(item)), message),
            }
        }
        out
    }

    fn mappings(&mut self) -> Vec<MappingConfig> {
        let Ok(value) = self.figment.find_value("path_mappings") else {
            return Vec::new();
        };
        let items = match value {
            Value::Array(_, items) => items,
            v if is_null(&v) => return Vec::new(),
            other => {
                self.problem(
                    "path_mappings",
                    Some(show(&other)),
                    "must be a list of {local_root, remote_root}".into(),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("path_mappings[{i}]");
            let Value::Dict(_, dict) = item else {
                self.problem(
                    &key,
                    Some(show(item)),
                    "must be a map with local_root and remote_root".into(),
                );
                continue;
            };
            let mut local_root = None;
            let mut remote_root = None;
            for (name, v) in dict {
                let slot = match name.as_str() {
                    "local_root" | "localRoot" => &mut local_root,
                    "remote_root" | "remoteRoot" => &mut remote_root,
                    other => {
                        self.problem(
                            &format!("{key}.{other}"),
                            None,
                            "unknown key (allowed: local_root, remote_root)".into(),
                        );
                        continue;
                    }
                };
                if is_null(v) {
                    continue;
                }
                match non_empty_text(v) {
                    Ok(s) => *slot = Some(s),
                    Err(m) => self.problem(&format!("{key}.{name}"), Some(show(v)), m),
                }
            }
            match remote_root {
                Some(remote_root) if remote_root.starts_with('/') => out.push(MappingConfig {
                    local_root,
                    remote_root,
                }),
                Some(other) => self.problem(
                    &format!("{key}.remote_root"),
                    Some(other),
                    "must be an absolute container path (starting with /)".into(),
                ),
                None => self.problem(
                    &format!("{key}.remote_root"),
                    None,
                    "is required (the path inside the container, e.g. /usr/src/app)".into(),
                ),
            }
        }
        out
    }

    fn token(&mut self, inline: Option<String>, file: Option<String>) -> Option<String> {
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    "auth.token_file",
                    None,
                    "set either auth.token or auth.token_file, not both".into(),
                );
                None
            }
            (Some(token), None) => Some(token),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(content) => {
                    let token = content.trim_end_matches(['\r', '\n']).to_owned();
                    if token.is_empty() {
                        self.problem("auth.token_file", Some(path), "the file is empty".into());
                        None
                    } else if let Err(message) = token_strength(&token) {
                        self.problem(
                            "auth.token_file",
                            Some(path),
                            format!("the token in this file {message}"),
                        );
                        None
                    } else {
                        Some(token)
                    }
                }
                Err(e) => {
                    self.problem("auth.token_file", Some(path), format!("cannot read: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn unknown_keys(&mut self, root: &Dict) {
        for (key, value) in root {
            if !TOP_KEYS.contains(&key.as_str()) {
                self.problem(
                    key,
                    None,
                    format!("unknown key (allowed: {})", TOP_KEYS.join(", ")),
                );
                continue;
            }
            let Some((_, allowed)) = SECTIONS.iter().find(|(name, _)| name == key) else {
                continue;
            };
            match value {
                Value::Dict(_, section) => {
                    for sub in section.keys() {
                        if !allowed.contains(&sub.as_str()) {
                            self.problem(
                                &format!("{key}.{sub}"),
                                None,
                                format!("unknown key (allowed: {})", allowed.join(", ")),
                            );
                        }
                    }
                }
                v if is_null(v) => {}
                other => self.problem(
                    key,
                    Some(show(other)),
                    format!("must be a map with keys {}", allowed.join(", ")),
                ),
            }
        }
    }
}

fn is_null(value: &Value) -> bool {
    matches!(value, Value::Empty(..))
}

/// A value as the user wrote it, for error messages.
fn show(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

/// Text; numbers and booleans count too (the environment turns `TOKEN=1234` into a number).
fn text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(_, s) => Ok(s.clone()),
        Value::Num(..) | Value::Bool(..) | Value::Char(..) => Ok(show(value)),
        _ => Err("must be a string".into()),
    }
}

fn non_empty_text(value: &Value) -> Result<String, String> {
    let s = text(value)?;
    if s.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(s)
    }
}

fn text_secret(value: &Value) -> Result<String, String> {
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

fn boolean(value: &Value) -> Result<bool, String> {
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

fn port(value: &Value) -> Result<u16, String> {
    unsigned(value)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| "must be a TCP port number from 0 to 65535".into())
}

fn positive_count(value: &Value) -> Result<usize, String> {
    unsigned(value)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a whole number greater than 0".into())
}

fn backlog(value: &Value) -> Result<u32, String> {
    unsigned(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| "must be a whole number from 1 to 65535".into())
}

fn ip(value: &Value) -> Result<IpAddr, String> {
    let s = text(value)?;
    if s == "localhost" {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    s.parse()
        .map_err(|_| "must be an IP address such as 0.0.0.0, ::, or 127.0.0.1".into())
}

fn host_port(value: &Value) -> Result<String, String> {
    let s = text(value)?;
    let allowed = "must be host:port, e.g. 127.0.0.1:5679";
    let (host, port) = s.rsplit_once(':').ok_or(allowed)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(allowed.into());
    }
    Ok(s)
}

fn duration(value: &Value) -> Result<Duration, String> {
    let allowed = "must be a duration such as 500ms, 30s or 10m";
    match value {
        Value::Num(..) => Err(format!("{allowed} (a unit is required)")),
        _ => humantime::parse_duration(text(value)?.trim()).map_err(|e| format!("{allowed} ({e})")),
    }
}

fn positive_duration(value: &Value) -> Result<Duration, String> {
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

fn size(value: &Value) -> Result<u64, String> {
    let allowed = "must be a size such as 512MiB, 64KiB, 2GiB, or a number of bytes";
    match value {
        Value::Num(..) => unsigned(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| allowed.into()),
        _ => parse_size(&text(value)?).ok_or_else(|| allowed.into()),
    }
}

fn positive_size(value: &Value) -> Result<usize, String> {
    size(value)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| "must be a size greater than 0 such as 64KiB or 16MiB".into())
}

fn cidr(value: &Value) -> Result<IpNet, String> {
    let s = text(value)?;
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| "must be an address or CIDR range such as 10.0.0.0/8 or ::1".into())
}

fn target_pid(value: &Value) -> Result<TargetPid, String> {
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

fn on_limit(value: &Value) -> Result<OnLimit, String> {
    match text(value)?.as_str() {
        "warn" => Ok(OnLimit::Warn),
        "detach" => Ok(OnLimit::Detach),
        _ => Err("must be warn or detach".into()),
    }
}

fn log_format(value: &Value) -> Result<LogFormat, String> {
    match text(value)?.as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be text or json".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_env() -> Env {
        Env::prefixed("DAP_SIDECAR_TEST_UNSET_PREFIX_")
    }

    fn file(ext: &str, content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(ext)
            .tempfile()
            .expect("temp file");
        f.write_all(content.as_bytes()).expect("write");
        f
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::load_with_env(None, &Overrides::default(), no_env()).expect("valid");
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.port, 5678);
        assert_eq!(c.upstream, "127.0.0.1:5679");
        assert_eq!(c.upstream_timeout, Duration::from_secs(30));
        assert_eq!(c.http.port, 5680);
        assert!(c.auth.allow_loopback_without_token);
        assert_eq!(c.target.pid, TargetPid::Auto);
        assert_eq!(c.memory.on_limit, OnLimit::Warn);
    }

    #[test]
    fn seed_yaml_loads() {
        let f = file(
            ".yaml",
            r#"
host: 0.0.0.0
port: 5678
wait: true
path_mappings:
  - local_root: 'c:\Users\Penny\Documents\Software\home-assistant\'
    remote_root: /usr/src/app
auth:
  token: 0123456789abcdef0123
  allow: [10.0.0.0/8, "::1"]
memory:
  max_growth_while_attached: 512MiB
  on_limit: detach
"#,
        );
        let c =
            Config::load_with_env(Some(f.path()), &Overrides::default(), no_env()).expect("valid");
        assert!(c.wait);
        assert_eq!(
            c.path_mappings[0].local_root.as_deref(),
            Some(r"c:\Users\Penny\Documents\Software\home-assistant\")
        );
        assert_eq!(c.auth.allow.len(), 2);
        assert_eq!(c.memory.max_growth_while_attached, Some(512 << 20));
        assert_eq!(c.memory.on_limit, OnLimit::Detach);
    }

    #[test]
    fn toml_loads_and_flags_win() {
        let f = file(".toml", "port = 7000\n[http]\nport = 7001\n");
        let o = Overrides {
            port: Some(7100),
            ..Overrides::default()
        };
        let c = Config::load_with_env(Some(f.path()), &o, no_env()).expect("valid");
        assert_eq!(c.port, 7100);
        assert_eq!(c.http.port, 7001);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let f = file(
            ".yaml",
            r#"
port: 70000
upstream_timeout: soon
prot: 1
auth:
  allow: [10.0.0.0/8, 10.0.0.0/33]
  token: short
memory:
  on_limit: explode
"#,
        );
        let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
            .expect_err("invalid");
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "port",
            "upstream_timeout",
            "prot",
            "auth.allow[1]",
            "auth.token",
            "memory.on_limit",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let text = err.to_string();
        assert!(!text.contains("short"), "token leaked: {text}");
        assert!(text.contains("70000") && text.contains("YAML"), "{text}");
    }

    #[test]
    fn missing_file_and_bad_extension_are_problems() {
        let err = Config::load_with_env(
            Some(Path::new("/nonexistent/x.yaml")),
            &Overrides::default(),
            no_env(),
        )
        .expect_err("invalid");
        assert_eq!(err.0[0].message, "no such file");
        let f = file(".ini", "port=1");
        let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
            .expect_err("invalid");
        assert!(err.0[0].message.contains(".yaml"));
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let secret = file(".txt", "0123456789abcdef0123\n");
        let o = Overrides {
            token_file: Some(secret.path().to_path_buf()),
            ..Overrides::default()
        };
        let c = Config::load_with_env(None, &o, no_env()).expect("valid");
        assert_eq!(c.auth.token.as_deref(), Some("0123456789abcdef0123"));
        assert!(!format!("{:?}", c.auth).contains("0123456789"));
    }

    #[test]
    fn tokens_with_too_little_variety_are_refused() {
        for (weak, why) in [
            ("aaaaaaaaaaaaaaaa", "1 different"),
            ("abababababababababababab", "2 different"),
            ("abcdefg", "7 characters"),
        ] {
            let f = file(".yaml", &format!("auth:\n  token: {weak}\n"));
            let err = Config::load_with_env(Some(f.path()), &Overrides::default(), no_env())
                .expect_err("weak token accepted");
            let text = err.to_string();
            assert!(text.contains("auth.token") && text.contains(why), "{text}");
            assert!(!text.contains(weak), "token leaked: {text}");
        }
        let weak_file = file(".txt", "xyxyxyxyxyxyxyxyxyxy\n");
        let o = Overrides {
            token_file: Some(weak_file.path().to_path_buf()),
            ..Overrides::default()
        };
        let err = Config::load_with_env(None, &o, no_env()).expect_err("weak token file");
        assert!(err.to_string().contains("auth.token_file"), "{err}");
        assert!(
            token_strength("4f9c2a7e1b3d8f60").is_ok(),
            "a random hex token passes"
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999999999999GiB"), None);
    }
}
