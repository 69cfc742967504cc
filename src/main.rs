//! The `dap-sidecar` command line. See the README for a walk-through.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dap_sidecar::config::{Config, ConfigErrors, Overrides};

/// EX_USAGE from sysexits.h: the configuration is invalid.
const EXIT_CONFIG: u8 = 64;

/// A Debug Adapter Protocol gateway for Python apps under debugpy in containers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// YAML or TOML config file.
    #[arg(long, global = true, env = "DAP_SIDECAR_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// DAP listen interface (`host`).
    #[arg(long, global = true)]
    host: Option<String>,
    /// DAP listen port (`port`).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// debugpy's address in the app container (`upstream`).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// HTTP port for health, readiness and metrics (`http.port`).
    #[arg(long, global = true)]
    http_port: Option<u16>,
    /// File holding the client token (`auth.token_file`).
    #[arg(long, global = true, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// The app waits for a debugger before it runs (`wait`).
    #[arg(long, global = true)]
    wait: bool,
    /// Log format, text or json (`log.format`).
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the sidecar (the default).
    Run,
    /// Validate the configuration and print a summary, without starting.
    Check,
    /// Start the app under debugpy as this configuration says (listen on `upstream`, wait
    /// for a debugger if `wait`), replacing this process: `launch -- python main.py`.
    Launch {
        /// The app's command line: the Python interpreter, its options, then a script,
        /// `-m module` or `-c code`, and their arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
    /// Exit 0 if this configuration's sidecar answers /healthz (for container HEALTHCHECKs
    /// in images without curl).
    Healthcheck,
    /// Print a VS Code launch.json attach configuration for this sidecar.
    LaunchJson {
        /// The host the IDE uses to reach the sidecar.
        #[arg(long, default_value = "localhost")]
        connect_host: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        host: cli.host.clone(),
        port: cli.port,
        upstream: cli.upstream.clone(),
        http_port: cli.http_port,
        token_file: cli.token_file.clone(),
        wait: cli.wait.then_some(true),
        log_format: cli.log_format.clone(),
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(errors) => return config_error(&errors),
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!("configuration is valid");
            println!("  dap:      {}", config.dap_addr());
            println!("  upstream: {}", config.upstream);
            println!("  http:     {}", config.http.addr());
            println!("  auth:     {}", config.auth.summary());
            if config.inject.mode == dap_sidecar::config::InjectMode::Auto {
                println!(
                    "  inject:   auto (debugpy from {}, {} to listen)",
                    config.inject.debugpy,
                    humantime::format_duration(config.inject.timeout)
                );
            }
            for m in &config.path_mappings {
                println!(
                    "  mapping:  {} <-> {}",
                    m.local_root.as_deref().unwrap_or("${workspaceFolder}"),
                    m.remote_root
                );
            }
            ExitCode::SUCCESS
        }
        Command::LaunchJson { connect_host } => {
            let doc = dap_sidecar::launch_json::render(&config, &connect_host);
            match serde_json::to_string_pretty(&doc) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("dap-sidecar: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Launch { argv } => launch(&config, &argv),
        Command::Healthcheck => healthcheck(&config),
        Command::Run => run(config),
    }
}

fn healthcheck(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{IpAddr, SocketAddr, TcpStream};
    use std::time::Duration;
    let host = match config.http.host {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(host, config.http.port);
    let check = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    match check() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("dap-sidecar: http://{addr}/healthz is not healthy");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("dap-sidecar: http://{addr}/healthz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn launch(config: &Config, argv: &[std::ffi::OsString]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let command = match dap_sidecar::launch::command(config, argv) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("dap-sidecar: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    eprintln!(
        "dap-sidecar: starting the app under debugpy on {}{}",
        config.upstream,
        if config.wait {
            "; it waits for a debugger to attach before running (wait: true)"
        } else {
            ""
        }
    );
    let Some((program, args)) = command.split_first() else {
        return ExitCode::FAILURE;
    };
    let error = std::process::Command::new(program).args(args).exec();
    eprintln!(
        "dap-sidecar: cannot start {}: {error}",
        program.to_string_lossy()
    );
    ExitCode::from(127)
}

fn config_error(errors: &ConfigErrors) -> ExitCode {
    eprintln!("dap-sidecar: {errors}");
    ExitCode::from(EXIT_CONFIG)
}

fn run(config: Config) -> ExitCode {
    dap_sidecar::server::init_logging(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dap-sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve_until_signal(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("dap-sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, serves until SIGTERM or SIGINT, then shuts down cleanly (see
/// [`dap_sidecar::server`]).
async fn serve_until_signal(config: Config) -> Result<(), String> {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let signals = watch_signals(shutdown.clone()).map_err(|e| format!("signals: {e}"))?;
    let server = dap_sidecar::server::Server::bind(config)
        .await
        .map_err(|e| e.to_string())?;
    server.serve(shutdown).await;
    signals.abort();
    Ok(())
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
fn watch_signals(
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        shutdown.cancel();
    }))
}
