//! The [`Reader`]: turns the merged layers into a [`Config`], one key of [`KEYS`] at a
//! time, recording every problem instead of stopping at the first.

use figment::Figment;
use figment::value::{Dict, Value};

use super::errors::Problem;
use super::keys::{self, KEYS, Key};
use super::parse::{Parse, is_null, non_empty_text, show, text, token_strength};
use super::types::{Config, MappingConfig};

/// Reads one key at a time, collecting problems instead of stopping.
pub(super) struct Reader<'a> {
    /// The merged layers, for values and their provenance.
    figment: &'a Figment,
    /// Everything found wrong so far.
    pub(super) problems: Vec<Problem>,
    /// Every key looked up, in order (the key table's test compares it with the table).
    #[cfg(test)]
    pub(super) looked_up: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    /// A reader of `figment` that adds to the `problems` found so far.
    pub(super) fn new(figment: &'a Figment, problems: Vec<Problem>) -> Self {
        Reader {
            figment,
            problems,
            #[cfg(test)]
            looked_up: Vec::new(),
        }
    }

    /// Reports unknown keys in `root` (the merged layers), then reads every key of
    /// [`KEYS`] over the defaults, then checks the rules that span keys.
    pub(super) fn read(&mut self, root: &Dict) -> Config {
        self.unknown_keys(root);
        let mut config = Config::default();
        // The token keys go first, as they always have, so a token problem heads the list.
        let (token, rest): (Vec<&Key>, Vec<&Key>) = KEYS
            .iter()
            .partition(|key| key.name.starts_with("auth.token"));
        for key in token.into_iter().chain(rest) {
            (key.read)(self, key.name, &mut config);
        }
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

    /// The value of `key` in the merged layers, if it is there.
    fn lookup(&mut self, key: &'static str) -> Option<Value> {
        #[cfg(test)]
        self.looked_up.push(key);
        self.figment.find_value(key).ok()
    }

    /// Reads `key` with `parse` into `slot`; a missing, null or bad value leaves `slot`
    /// as it was (the default).
    pub(super) fn set<T>(&mut self, key: &'static str, slot: &mut T, parse: Parse<T>) {
        if let Some(value) = self.opt(key, parse) {
            *slot = value;
        }
    }

    /// Reads an optional `key`; missing or null is `None`.
    pub(super) fn opt<T>(&mut self, key: &'static str, parse: Parse<T>) -> Option<T> {
        self.parse(key, parse, false)
    }

    /// [`Reader::opt`] for a secret: a bad value is reported as `<redacted>`.
    pub(super) fn secret<T>(&mut self, key: &'static str, parse: Parse<T>) -> Option<T> {
        self.parse(key, parse, true)
    }

    fn parse<T>(&mut self, key: &'static str, parse: Parse<T>, redact: bool) -> Option<T> {
        let value = self.lookup(key)?;
        if is_null(&value) {
            return None;
        }
        match parse(&value) {
            Ok(v) => Some(v),
            Err(message) => {
                let shown = if redact {
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
    pub(super) fn list<T>(&mut self, key: &'static str, parse: Parse<T>) -> Vec<T> {
        let Some(value) = self.lookup(key) else {
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

    /// Reads the `path_mappings` list (named `key`).
    pub(super) fn mappings(&mut self, key: &'static str) -> Vec<MappingConfig> {
        let Some(value) = self.lookup(key) else {
            return Vec::new();
        };
        let items = match value {
            Value::Array(_, items) => items,
            v if is_null(&v) => return Vec::new(),
            other => {
                self.problem(
                    key,
                    Some(show(&other)),
                    "must be a list of {local_root, remote_root}".into(),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(mapping) = self.mapping(&format!("{key}[{i}]"), item) {
                out.push(mapping);
            }
        }
        out
    }

    /// One `path_mappings` entry, named `key` in problems.
    fn mapping(&mut self, key: &str, item: &Value) -> Option<MappingConfig> {
        let Value::Dict(_, dict) = item else {
            self.problem(
                key,
                Some(show(item)),
                "must be a map with local_root and remote_root".into(),
            );
            return None;
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
            Some(remote_root) if remote_root.starts_with('/') => Some(MappingConfig {
                local_root,
                remote_root,
            }),
            Some(other) => {
                self.problem(
                    &format!("{key}.remote_root"),
                    Some(other),
                    "must be an absolute container path (starting with /)".into(),
                );
                None
            }
            None => {
                self.problem(
                    &format!("{key}.remote_root"),
                    None,
                    "is required (the path inside the container, e.g. /usr/src/app)".into(),
                );
                None
            }
        }
    }

    /// Reads `auth.token_file` (named `key`) and settles the token with the `inline` one
    /// from `auth.token`: one of the two, and a file's token must be strong too.
    pub(super) fn token_file(
        &mut self,
        key: &'static str,
        inline: Option<String>,
    ) -> Option<String> {
        let file = self.opt(key, text);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    key,
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
                        self.problem(key, Some(path), "the file is empty".into());
                        None
                    } else if let Err(message) = token_strength(&token) {
                        self.problem(key, Some(path), format!("the token in this file {message}"));
                        None
                    } else {
                        Some(token)
                    }
                }
                Err(e) => {
                    self.problem(key, Some(path), format!("cannot read: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }

    /// Reports an unknown key at `path`. One that came from the environment is named by
    /// its variable, with the variable it probably meant: other programs' variables
    /// (a client-side `DAP_SIDECAR_TOKEN`, say) share the prefix by accident.
    fn unknown(&mut self, path: &str, allowed: &[&str]) {
        let suggestion = keys::suggest(path);
        let source = self.source(path);
        if source.as_deref().is_some_and(|s| s.contains("environment")) {
            let mut message = format!(
                "`{path}` is not a setting; every variable starting with {} configures dap-sidecar",
                super::load::ENV_PREFIX
            );
            match suggestion {
                Some(key) => message.push_str(&format!(
                    ". Did you mean {} ({key})? Otherwise rename or unset the variable",
                    keys::env_name(key)
                )),
                None => message.push_str(
                    ", so give variables meant for other programs a name outside that prefix",
                ),
            }
            self.problems.push(Problem {
                key: format!("environment variable {}", keys::env_name(path)),
                value: None,
                message,
                source: None,
            });
            return;
        }
        let mut message = format!("unknown key (allowed: {})", allowed.join(", "));
        if let Some(key) = suggestion {
            message.push_str(&format!("; did you mean `{key}`?"));
        }
        self.problem(path, None, message);
    }

    /// Reports every name in `root` that is not a key of [`KEYS`] (usually a typo).
    fn unknown_keys(&mut self, root: &Dict) {
        let top = keys::top_level();
        for (key, value) in root {
            if !top.contains(&key.as_str()) {
                self.unknown(key, &top);
                continue;
            }
            let allowed = keys::section(key);
            if allowed.is_empty() {
                continue;
            }
            match value {
                Value::Dict(_, section) => {
                    for sub in section.keys() {
                        if !allowed.contains(&sub.as_str()) {
                            self.unknown(&format!("{key}.{sub}"), &allowed);
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
