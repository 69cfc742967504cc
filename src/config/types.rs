//! The validated configuration: [`Config`], its sections, their defaults, and the
//! questions the rest of the sidecar asks of them (addresses to bind, the auth summary).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

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
    /// Set `TCP_NODELAY` on debugpy's sockets: pydevd's connection to the adapter, and
    /// the adapter's to its clients (`tcp_nodelay`; see [`crate::nodelay`]).
    pub tcp_nodelay: bool,
    /// Attach on demand (`inject.*`).
    pub inject: InjectConfig,
}

/// `inject.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectMode {
    /// Start debugpy in a running Python 3.14+ app when a client attaches and the
    /// upstream is not listening (PEP 768).
    Auto,
    /// Never: the app must run under debugpy already.
    Off,
}

/// `inject.*`: attach on demand (see `crate::inject`).
#[derive(Clone, Debug)]
pub struct InjectConfig {
    /// Whether to inject.
    pub mode: InjectMode,
    /// The directory holding the unpacked debugpy wheel's `debugpy/` package.
    pub debugpy: String,
    /// How long the app has to run the script and listen.
    pub timeout: Duration,
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
    /// How long debugpy has to finish a session that ends (answer `disconnect`): the
    /// sidecar keeps its connection to debugpy open that long whatever the client does,
    /// and a new attach waits that long for the previous session to finish.
    pub disconnect_timeout: Duration,
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
                disconnect_timeout: Duration::from_secs(10),
            },
            inject: InjectConfig {
                mode: InjectMode::Off,
                debugpy: "/usr/share/dap-sidecar/debugpy".to_owned(),
                timeout: Duration::from_secs(10),
            },
            tcp_nodelay: true,
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

    /// The address the DAP listener binds (`host`, `port`). Its `Display` brackets an
    /// IPv6 host (`[::]:5678`), which `format!("{}:{}", host, port)` does not.
    pub fn dap_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl HttpConfig {
    /// The address the HTTP endpoint binds (`http.host`, `http.port`), IPv6 bracketed
    /// when displayed.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl AuthConfig {
    /// Who may attach, in one phrase, for `check`, `/status` and the page.
    pub fn summary(&self) -> &'static str {
        if self.token.is_some() {
            "token required"
        } else if self.allow_loopback_without_token {
            "no token: loopback clients only"
        } else {
            "no token: nobody can attach"
        }
    }
}

/// The remote root used when neither the config nor the client gives mappings.
pub const DEFAULT_REMOTE_ROOT: &str = "/usr/src/app";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_bracket_ipv6_hosts() {
        let mut c = Config::default();
        assert_eq!(c.dap_addr().to_string(), "0.0.0.0:5678");
        assert_eq!(c.http.addr().to_string(), "0.0.0.0:5680");
        c.host = IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED);
        c.http.host = IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        assert_eq!(c.dap_addr().to_string(), "[::]:5678");
        assert_eq!(c.http.addr().to_string(), "[::1]:5680");
    }

    #[test]
    fn the_auth_summary_names_who_may_attach() {
        let mut auth = Config::default().auth;
        assert_eq!(auth.summary(), "no token: loopback clients only");
        auth.allow_loopback_without_token = false;
        assert_eq!(auth.summary(), "no token: nobody can attach");
        auth.token = Some("0123456789abcdef0123".into());
        assert_eq!(auth.summary(), "token required");
        auth.allow_loopback_without_token = true;
        assert_eq!(auth.summary(), "token required");
    }
}
