//! [`KEYS`]: the one table of configuration keys. Each entry names a key, says in a line
//! what it sets, and reads it (with its parser) into the [`Config`] being built. The
//! loader reads exactly these keys, the unknown-key report allows exactly these, and a
//! test holds the table to the README's configuration table in both directions.

use super::parse::{
    backlog, boolean, cidr, duration, host_port, inject_mode, ip, log_format, non_empty_text,
    on_limit, port, positive_count, positive_duration, positive_size, size, target_pid,
    text_secret,
};
use super::read::Reader;
use super::types::Config;

/// One configuration key.
pub struct Key {
    /// Dotted path, e.g. `http.port`.
    pub name: &'static str,
    /// What it sets, in one line.
    pub doc: &'static str,
    /// Reads the key (the `&str` is [`Key::name`]) into the config under construction.
    pub(super) read: Read,
}

/// How a key is read: the reader, the key's name, the config being built (which holds
/// the defaults until a key overwrites them).
pub(super) type Read = fn(&mut Reader<'_>, &'static str, &mut Config);

const fn key(name: &'static str, doc: &'static str, read: Read) -> Key {
    Key { name, doc, read }
}

/// Every key, in the order of [`Config`]'s fields (which is the order unknown-key reports
/// list them in).
pub static KEYS: &[Key] = &[
    key(
        "host",
        "interface the DAP listener binds (an IP address, or `localhost`)",
        |r, k, c| r.set(k, &mut c.host, ip),
    ),
    key(
        "port",
        "port the DAP listener binds; 0 picks a free one",
        |r, k, c| r.set(k, &mut c.port, port),
    ),
    key(
        "wait",
        "the app waits for a debugger before running its code (`dap-sidecar launch`)",
        |r, k, c| r.set(k, &mut c.wait, boolean),
    ),
    key(
        "upstream",
        "`host:port` of debugpy's `--listen` in the app container",
        |r, k, c| r.set(k, &mut c.upstream, host_port),
    ),
    key(
        "upstream_timeout",
        "how long an attach waits for the upstream to accept",
        |r, k, c| r.set(k, &mut c.upstream_timeout, duration),
    ),
    key(
        "path_mappings",
        "IDE <-> container path mappings, `[{local_root, remote_root}]`",
        |r, k, c| c.path_mappings = r.mappings(k),
    ),
    key(
        "http.host",
        "interface the HTTP endpoint binds",
        |r, k, c| r.set(k, &mut c.http.host, ip),
    ),
    key(
        "http.port",
        "port the HTTP endpoint binds; 0 picks a free one",
        |r, k, c| r.set(k, &mut c.http.port, port),
    ),
    key(
        "http.max_connections",
        "most HTTP connections at once; a new one beyond it sheds the oldest",
        |r, k, c| r.set(k, &mut c.http.max_connections, positive_count),
    ),
    key(
        "http.header_timeout",
        "how long a client has to send a complete request header",
        |r, k, c| r.set(k, &mut c.http.header_timeout, positive_duration),
    ),
    key(
        "http.request_timeout",
        "how long one request may take to be answered",
        |r, k, c| r.set(k, &mut c.http.request_timeout, positive_duration),
    ),
    key(
        "auth.token",
        "the shared secret clients present as `token` in their `attach` arguments",
        |r, k, c| c.auth.token = r.secret(k, text_secret),
    ),
    key(
        "auth.token_file",
        "a file holding that secret instead (set one of the two)",
        // `auth.token` was read first: settle the token from both.
        |r, k, c| c.auth.token = r.token_file(k, c.auth.token.take()),
    ),
    key(
        "auth.allow_loopback_without_token",
        "without a token, accept clients connecting from a loopback address",
        |r, k, c| r.set(k, &mut c.auth.allow_loopback_without_token, boolean),
    ),
    key(
        "auth.allow",
        "client address allowlist (CIDR ranges); empty means any; checked at accept",
        |r, k, c| c.auth.allow = r.list(k, cidr),
    ),
    key(
        "auth.allow_exposed_upstream",
        "relay even when debugpy listens on a non-loopback address",
        |r, k, c| r.set(k, &mut c.auth.allow_exposed_upstream, boolean),
    ),
    key(
        "target.pid",
        "the app's process id, or `auto`",
        |r, k, c| r.set(k, &mut c.target.pid, target_pid),
    ),
    key(
        "target.match",
        "a substring of the app's command line that picks it",
        |r, k, c| c.target.r#match = r.opt(k, non_empty_text),
    ),
    key(
        "target.sample_interval",
        "how often the app's memory is sampled",
        |r, k, c| r.set(k, &mut c.target.sample_interval, positive_duration),
    ),
    key(
        "memory.window",
        "window of the growth figure, steps left out; shown once the history covers half of it (at least `target.sample_interval`)",
        |r, k, c| r.set(k, &mut c.memory.window, positive_duration),
    ),
    key(
        "memory.pss",
        "also read PSS from `smaps_rollup` (costly for the app)",
        |r, k, c| r.set(k, &mut c.memory.pss, boolean),
    ),
    key(
        "memory.max_growth_while_attached",
        "growth of the app's RSS since attach that triggers `memory.on_limit`",
        |r, k, c| c.memory.max_growth_while_attached = r.opt(k, size),
    ),
    key(
        "memory.on_limit",
        "`warn` or `detach` at the growth limit",
        |r, k, c| r.set(k, &mut c.memory.on_limit, on_limit),
    ),
    key(
        "log.format",
        "`text` or `json` lines on stderr",
        |r, k, c| r.set(k, &mut c.log.format, log_format),
    ),
    key(
        "log.level",
        "a `tracing` filter such as `info` or `dap_sidecar=debug`",
        |r, k, c| r.set(k, &mut c.log.level, non_empty_text),
    ),
    key(
        "limits.max_header_bytes",
        "largest accepted DAP header block",
        |r, k, c| r.set(k, &mut c.limits.max_header_bytes, positive_size),
    ),
    key(
        "limits.max_body_bytes",
        "largest accepted DAP message body once authenticated",
        |r, k, c| r.set(k, &mut c.limits.max_body_bytes, positive_size),
    ),
    key(
        "limits.max_handshake_bytes",
        "largest accepted DAP message body before `attach` succeeded",
        |r, k, c| r.set(k, &mut c.limits.max_handshake_bytes, positive_size),
    ),
    key(
        "limits.max_connections",
        "most authenticated DAP sessions at once",
        |r, k, c| r.set(k, &mut c.limits.max_connections, positive_count),
    ),
    key(
        "limits.max_unauthenticated",
        "most connections not authenticated yet; a new one beyond it sheds the oldest",
        |r, k, c| r.set(k, &mut c.limits.max_unauthenticated, positive_count),
    ),
    key(
        "limits.listen_backlog",
        "listen backlog of the DAP and HTTP sockets",
        |r, k, c| r.set(k, &mut c.limits.listen_backlog, backlog),
    ),
    key(
        "limits.auth_timeout",
        "time from connecting to a complete, valid `attach`",
        |r, k, c| r.set(k, &mut c.limits.auth_timeout, positive_duration),
    ),
    key(
        "limits.auth_failure_delay",
        "wait before a refused `attach` is answered",
        |r, k, c| r.set(k, &mut c.limits.auth_failure_delay, duration),
    ),
    key(
        "limits.frame_timeout",
        "time a started frame has to arrive completely",
        |r, k, c| r.set(k, &mut c.limits.frame_timeout, positive_duration),
    ),
    key(
        "limits.disconnect_timeout",
        "how long debugpy has to finish a session that ends",
        |r, k, c| r.set(k, &mut c.limits.disconnect_timeout, positive_duration),
    ),
    key(
        "inject.mode",
        "`auto`: start debugpy in a running Python 3.14+ app when a client attaches (PEP 768); `off`",
        |r, k, c| r.set(k, &mut c.inject.mode, inject_mode),
    ),
    key(
        "inject.debugpy",
        "the directory holding the unpacked debugpy wheel's `debugpy/` package",
        |r, k, c| r.set(k, &mut c.inject.debugpy, non_empty_text),
    ),
    key(
        "inject.timeout",
        "how long the app has to run the attach script and listen",
        |r, k, c| r.set(k, &mut c.inject.timeout, positive_duration),
    ),
    key(
        "tcp_nodelay",
        "set `TCP_NODELAY` on debugpy's sockets (pydevd's to the adapter, the adapter's to clients): no 40 ms wait per request",
        |r, k, c| r.set(k, &mut c.tcp_nodelay, boolean),
    ),
];

/// The names allowed at the top level: plain keys and section names, in table order.
pub(super) fn top_level() -> Vec<&'static str> {
    let mut names = Vec::new();
    for key in KEYS {
        let name = key
            .name
            .split_once('.')
            .map_or(key.name, |(section, _)| section);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The key an unknown `path` (dotted, as the layers spelled it) probably meant: one
/// whose last part is the same (`token` -> `auth.token`), or the same with a `_` for the
/// `.` (`auth_token` -> `auth.token`, as a single `_` in an environment variable reads).
pub(super) fn suggest(path: &str) -> Option<&'static str> {
    let last = path.rsplit('.').next().unwrap_or(path);
    let flat = path.replace('.', "_");
    KEYS.iter().map(|key| key.name).find(|name| {
        name.replace('.', "_") == flat
            || (name.contains('.') && name.rsplit('.').next() == Some(last))
    })
}

/// The environment variable that sets the dotted `key` (`auth.token` ->
/// `DAP_SIDECAR_AUTH__TOKEN`).
pub fn env_name(key: &str) -> String {
    format!(
        "{}{}",
        super::load::ENV_PREFIX,
        key.to_ascii_uppercase().replace('.', "__")
    )
}

/// The keys of section `name` (`http` gives `host`, `port`, ...), in table order; empty
/// when `name` is not a section.
pub(super) fn section(name: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter_map(|key| key.name.split_once('.'))
        .filter(|(section, _)| *section == name)
        .map(|(_, sub)| sub)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use figment::Figment;
    use figment::value::Dict;

    use super::super::read::Reader;
    use super::*;

    #[test]
    fn unknown_names_suggest_the_key_they_probably_meant() {
        assert_eq!(suggest("token"), Some("auth.token"));
        assert_eq!(suggest("auth_token"), Some("auth.token"));
        assert_eq!(
            suggest("limits_frame_timeout"),
            Some("limits.frame_timeout")
        );
        assert_eq!(suggest("http.auth_timeout"), Some("limits.auth_timeout"));
        assert_eq!(suggest("test_endings"), None);
        assert_eq!(env_name("auth.token"), "DAP_SIDECAR_AUTH__TOKEN");
    }

    /// The keys README.md documents: every backquoted name in the first column of the
    /// table under `| key | default | meaning |` (a row may name two keys).
    fn documented() -> BTreeSet<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("read README.md");
        readme
            .lines()
            .skip_while(|line| !line.starts_with("| key | default | meaning |"))
            .skip(2) // the header and the `| --- |` line
            .take_while(|line| line.starts_with('|'))
            .filter_map(|row| row.split('|').nth(1))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_key_is_documented_in_the_readme_and_read_by_the_loader() {
        let table: BTreeSet<String> = KEYS.iter().map(|k| k.name.to_owned()).collect();
        assert_eq!(table.len(), KEYS.len(), "a key is in the table twice");
        let documented = documented();
        assert!(
            !documented.is_empty(),
            "README.md has no `| key | default | meaning |` table"
        );
        let figment = Figment::new();
        let mut reader = Reader::new(&figment, Vec::new());
        reader.read(&Dict::new());
        assert!(reader.problems.is_empty(), "{:?}", reader.problems);
        let read: BTreeSet<String> = reader.looked_up.iter().map(|k| (*k).to_owned()).collect();

        let mut failures = Vec::new();
        for (what, a, b) in [
            (
                "in the key table (src/config/keys.rs) but not documented in README.md's configuration table",
                &table,
                &documented,
            ),
            (
                "documented in README.md's configuration table but not in the key table (src/config/keys.rs)",
                &documented,
                &table,
            ),
            (
                "in the key table but never read when loading the defaults",
                &table,
                &read,
            ),
            ("read by the loader but not in the key table", &read, &table),
        ] {
            let missing: Vec<&str> = a.difference(b).map(String::as_str).collect();
            if !missing.is_empty() {
                failures.push(format!("{what}: {}", missing.join(", ")));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn every_key_has_a_one_line_description() {
        for key in KEYS {
            assert!(
                !key.doc.is_empty() && !key.doc.contains('\n'),
                "{}: {:?}",
                key.name,
                key.doc
            );
        }
    }

    #[test]
    fn the_allowed_names_come_from_the_table_in_order() {
        assert_eq!(
            top_level().join(", "),
            "host, port, wait, upstream, upstream_timeout, path_mappings, http, auth, target, memory, log, limits, inject, tcp_nodelay"
        );
        assert_eq!(section("log"), ["format", "level"]);
        assert_eq!(
            section("auth"),
            [
                "token",
                "token_file",
                "allow_loopback_without_token",
                "allow",
                "allow_exposed_upstream"
            ]
        );
        assert!(section("port").is_empty());
    }
}
