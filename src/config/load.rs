//! The layers: built-in defaults, a YAML or TOML file, `DAP_SIDECAR_*` environment
//! variables, then command-line flags ([`Overrides`]), merged by figment and handed to
//! the reader.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Value};

use super::errors::{ConfigErrors, Problem};
use super::read::Reader;
use super::types::Config;

/// Prefix of the environment variables that configure the sidecar.
pub const ENV_PREFIX: &str = "DAP_SIDECAR_";

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

        let mut reader = Reader::new(&figment, problems);
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
