//! Attach on demand: debugpy started inside a running Python app that was not prepared
//! for debugging, through the remote debugging interface of Python 3.14 (PEP 768).
//!
//! When a client has authenticated, `inject.mode` is `auto` and nothing listens on
//! `upstream`, the session asks the [`Injector`] to make debugpy listen there:
//!
//! 1. [`target`] picks the app's process;
//! 2. [`elf`] finds its interpreter's `PyRuntime` section (`/proc/<pid>/maps`, the ELF
//!    section headers of the file through `/proc/<pid>/root`);
//! 3. [`offsets`] reads and checks `_Py_DebugOffsets` there (through [`memory`],
//!    `/proc/<pid>/mem`), refusing versions it does not know;
//! 4. [`remote`] checks that remote debugging is enabled and finds the main thread;
//! 5. [`bundle`] copies debugpy and a bootstrap script into a private directory of the
//!    app's filesystem;
//! 6. [`remote`] hands the script's path over and sets the eval-breaker bit; the app's
//!    main thread runs the script at its next bytecode boundary, and the injector waits
//!    (watching `/proc/net/tcp` through the upstream watch, never connecting) until
//!    debugpy listens, up to `inject.timeout`.
//!
//! Each process (pid and start time) is injected at most once; later sessions find
//! debugpy listening and attach as usual. Every refusal is an [`InjectError`] whose
//! message says what to do. Blocking `/proc` work runs on blocking threads.

pub mod bundle;
pub mod elf;
pub mod errors;
pub mod memory;
pub mod offsets;
pub mod remote;
pub mod target;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub use errors::InjectError;

use crate::config::Config;
use crate::state::Shared;
use elf::Found;
use memory::Memory;
use offsets::PyVersion;
use remote::Pending;
use target::Target;

/// How long one look at the upstream's listening socket may wait.
const LOOK: Duration = Duration::from_secs(1);

/// A look at the upstream this old is good enough to skip injecting.
const RECENT: Duration = Duration::from_secs(2);

/// What [`Injector::ensure`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensured {
    /// debugpy was listening already (another session injected it meanwhile, or the
    /// app runs under debugpy).
    Listening,
    /// This process was injected before; nothing is done again.
    AlreadyInjected {
        /// The app's pid.
        pid: i32,
    },
    /// debugpy was started in the app and listens now.
    Injected {
        /// The app's pid.
        pid: i32,
        /// Its Python version.
        version: String,
        /// From finding the target to debugpy listening.
        took: Duration,
    },
}

/// The mark of the latest injection, so that the memory it costs is visible from then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The app's pid.
    pub pid: i32,
    /// When debugpy was listening.
    pub at: SystemTime,
    /// The app's Python version.
    pub version: String,
    /// The app's resident set size just before the script was handed over.
    pub resident_before: Option<u64>,
}

/// The injections made by this sidecar, made one at a time.
#[derive(Default)]
pub struct Injector {
    /// Held for a whole injection, so that two sessions never inject twice.
    busy: tokio::sync::Mutex<()>,
    /// The processes injected, by (pid, start time). A std mutex: held only to look up
    /// or insert.
    done: Mutex<HashSet<(i32, u64)>>,
    /// The latest injection. A std mutex: held only to copy or replace.
    last: Mutex<Option<Mark>>,
}

/// A script handed over to a target, not yet known to have run.
struct Handover {
    /// The target's memory, kept open to look at the pending flag.
    memory: Memory,
    /// The pending flag.
    pending: Pending,
    /// Its Python version.
    version: PyVersion,
    /// Its resident set size just before the handover.
    resident_before: Option<u64>,
}

impl Injector {
    fn with_done<T>(&self, f: impl FnOnce(&mut HashSet<(i32, u64)>) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        let mut guard = self.done.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    /// The latest injection, if any.
    pub fn last(&self) -> Option<Mark> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Makes debugpy listen on `upstream`, injecting it into the app if needed. Counts
    /// the attempt in `injections_total` when an injection was tried.
    pub async fn ensure(&self, shared: &Shared) -> Result<Ensured, InjectError> {
        // The usual case, debugpy up, costs no fresh look when the watch's latest is
        // recent (the side-door check has just asked for one).
        let latest = shared.upstream.latest();
        if latest.listening && latest.age().is_some_and(|age| age <= RECENT) {
            return Ok(Ensured::Listening);
        }
        let _busy = self.busy.lock().await;
        if shared.upstream.fresh(LOOK).await.listening {
            return Ok(Ensured::Listening);
        }
        let result = self.inject(shared).await;
        let label = match &result {
            Ok(Ensured::Injected { .. }) => "injected",
            Ok(_) => return result,
            Err(e) => e.label(),
        };
        shared
            .metrics
            .injections_total
            .with_label_values(&[label])
            .inc();
        result
    }

    /// Keeps the mark and shows it in the metrics.
    fn mark(&self, shared: &Shared, mark: Mark) {
        let at = mark
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        shared.metrics.injection_timestamp_seconds.set(at);
        if let Some(rss) = mark.resident_before {
            shared
                .metrics
                .resident_at_injection
                .set(i64::try_from(rss).unwrap_or(i64::MAX));
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark);
    }

    async fn inject(&self, shared: &Shared) -> Result<Ensured, InjectError> {
        let started = Instant::now();
        let config = shared.config.clone();
        let target_config = config.target.clone();
        let target = blocking(move || target::find(&target_config))
            .await?
            .ok_or(InjectError::NoTarget)?;
        if self.with_done(|done| done.contains(&(target.pid, target.start))) {
            return Ok(Ensured::AlreadyInjected { pid: target.pid });
        }
        let handover = blocking(move || hand_over(&config, target)).await??;
        self.with_done(|done| done.insert((target.pid, target.start)));
        let pid = target.pid;
        let limit = shared.config.inject.timeout;
        let deadline = started + limit;
        loop {
            if shared.upstream.fresh(LOOK).await.listening {
                let mark = Mark {
                    pid,
                    at: SystemTime::now(),
                    version: handover.version.to_string(),
                    resident_before: handover.resident_before,
                };
                self.mark(shared, mark);
                return Ok(Ensured::Injected {
                    pid,
                    version: handover.version.to_string(),
                    took: started.elapsed(),
                });
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let waited = humantime::format_duration(limit).to_string();
        let Handover {
            memory, pending, ..
        } = handover;
        let still = blocking(move || pending.still_pending(&memory)).await?;
        Err(match still {
            Ok(true) => InjectError::ScriptNotRun { pid, waited },
            Ok(false) => InjectError::NotListening {
                pid,
                upstream: shared.config.upstream.clone(),
                waited,
            },
            Err(e) => InjectError::io(pid, "reading the pending flag", e),
        })
    }
}

/// Runs blocking `/proc` work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, InjectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| InjectError::Io {
            pid: 0,
            what: "a blocking thread".to_owned(),
            source: std::io::Error::other(e.to_string()),
        })
}

/// Everything up to the handover, blocking: the checks first, then the copy, then the
/// writes into the interpreter.
fn hand_over(config: &Config, target: Target) -> Result<Handover, InjectError> {
    let pid = target.pid;
    let debugpy = Path::new(&config.inject.debugpy);
    if !debugpy.join("debugpy/__init__.py").is_file() {
        return Err(InjectError::NoDebugpy {
            path: config.inject.debugpy.clone(),
        });
    }
    let Probe {
        runtime,
        offsets,
        memory,
    } = probe(pid)?;
    let thread = remote::main_thread(pid, &memory, &runtime, &offsets)?;
    let (host, port) = upstream_host_port(config);
    let bundle = bundle::prepare(pid, target.owner, debugpy, &host, port)
        .map_err(|e| InjectError::io(pid, "copying debugpy into the app's /tmp", e))?;
    let resident_before = crate::debuggee::memory::read(pid, false).map(|m| m.rss);
    let pending = remote::send_exec(pid, &memory, &offsets, thread, &bundle.script)?;
    Ok(Handover {
        memory,
        pending,
        version: offsets.version,
        resident_before,
    })
}

/// A running interpreter's runtime section, checked offsets, and open memory.
pub struct Probe {
    /// The `PyRuntime` section.
    pub runtime: elf::Runtime,
    /// The debug offsets read from it.
    pub offsets: offsets::DebugOffsets,
    /// The process's memory.
    pub memory: Memory,
}

/// Finds the interpreter of `pid` and reads its debug offsets, refusing what cannot be
/// injected (not Python, too old, an unknown version, no rights).
pub fn probe(pid: i32) -> Result<Probe, InjectError> {
    let runtime = match elf::find_runtime(pid)? {
        Found::Runtime(runtime) => runtime,
        Found::NoSection(version) => {
            return Err(InjectError::TooOld {
                pid,
                version: version.unwrap_or_else(|| "older than 3.11".to_owned()),
            });
        }
        Found::NotPython => return Err(InjectError::NoTarget),
    };
    let memory = Memory::open(pid).map_err(|e| InjectError::io(pid, "opening its memory", e))?;
    let offsets = remote::read_offsets(pid, &memory, &runtime)?;
    Ok(Probe {
        runtime,
        offsets,
        memory,
    })
}

/// `upstream`'s host (without IPv6 brackets) and port.
fn upstream_host_port(config: &Config) -> (String, u16) {
    let host = config
        .upstream
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or("127.0.0.1");
    (host.to_owned(), config.upstream_port())
}
