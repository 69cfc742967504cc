//! The three ways to reach an upstream: directly, through `socat` (the dumb relay), and
//! through dap-sidecar; plus what `/proc` says about the relay process.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::common::{Lines, SOON, Sidecar, TOKEN, free_port};

/// How a target is reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Straight to the upstream.
    Direct,
    /// Through `socat`.
    Socat,
    /// Through dap-sidecar.
    Sidecar,
}

/// The modes in the order the table shows them.
pub const MODES: [Mode; 3] = [Mode::Direct, Mode::Socat, Mode::Sidecar];

impl Mode {
    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::Socat => "socat",
            Mode::Sidecar => "sidecar",
        }
    }
}

/// A running way to the upstream.
pub struct Relay {
    /// Which one.
    pub mode: Mode,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The relay process (none for direct).
    process: Process,
}

enum Process {
    None,
    Socat(Child),
    Sidecar(Box<Sidecar>),
}

impl Relay {
    /// Starts `mode` in front of `upstream`. The sidecar maps `local_root` to
    /// `remote_root` and requires the token.
    pub fn start(mode: Mode, upstream: u16, local_root: &str, remote_root: &Path) -> Relay {
        match mode {
            Mode::Direct => Relay {
                mode,
                addr: SocketAddr::from(([127, 0, 0, 1], upstream)),
                process: Process::None,
            },
            Mode::Socat => {
                // socat at its best for this job: no Nagle either side, 64 KiB buffer, a listen
                // backlog that does not drop connections when many arrive at once.
                let port = free_port();
                let mut child = Command::new("socat")
                    .args(["-d", "-d", "-b", "65536"])
                    .arg(format!(
                        "TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay,backlog=1024"
                    ))
                    .arg(format!("TCP4:127.0.0.1:{upstream},nodelay"))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start socat (Debian package socat; scripts/setup.sh installs it)");
                let log = Lines::default();
                log.collect(child.stderr.take().expect("socat stderr"), "socat");
                log.wait("listening on", SOON)
                    .unwrap_or_else(|| panic!("socat did not listen:\n{}", log.all()));
                Relay {
                    mode,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    process: Process::Socat(child),
                }
            }
            Mode::Sidecar => {
                let sidecar = Sidecar::start(&format!(
                    "upstream: 127.0.0.1:{upstream}\nauth:\n  token: {TOKEN}\nlimits:\n  max_connections: 1024\n  max_unauthenticated: 1024\npath_mappings:\n  - local_root: '{local_root}'\n    remote_root: '{}'\n",
                    remote_root.display()
                ));
                Relay {
                    mode,
                    addr: sidecar.addr,
                    process: Process::Sidecar(Box::new(sidecar)),
                }
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        match &self.process {
            Process::None => None,
            Process::Socat(child) => Some(child.id()),
            Process::Sidecar(sidecar) => Some(sidecar.pid()),
        }
    }

    /// CPU time used so far by the relay (for socat including the children it forked
    /// and reaped, one per connection).
    pub fn cpu(&self) -> Option<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name: state is field 3; utime..cstime are 14..17.
        let fields: Vec<u64> = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let ticks: u64 = fields.iter().sum();
        Some(Duration::from_millis(ticks * 1000 / clock_ticks()))
    }

    /// A `VmRSS`/`VmHWM`-style field of the relay's `/proc/<pid>/status`, in bytes.
    pub fn status_bytes(&self, field: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Process::Socat(child) = &mut self.process {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}
