//! The proxy's configuration file: routes, the egress allowlist by name, and limits.
//!
//! `host proxy --config FILE` reads one TOML document; every destination the enclave may
//! reach is listed here by name, port and address, and nothing else gets a listener.
//! Unknown keys are errors (a misspelt limit must not silently fall back to its default),
//! and every error names the key that was wrong.
//!
//! ```toml
//! listen = "unix:/run/k1/public.sock"           # frame clients
//! enclave = "hybrid:/run/k1/enclave.sock:5000"   # or "vsock:7:5000"
//! allow = ["health", "manifest", "evaluate"]     # optional, default: the client methods
//! metrics_listen = "tcp:127.0.0.1:9464"          # optional Prometheus endpoint
//! metrics_file = "/run/k1/metrics.json"          # optional
//!
//! [tls]                                          # optional: the attested-TLS route
//! listen = "unix:/run/k1/tls.sock"
//! enclave = "hybrid:/run/k1/enclave.sock:5443"
//!
//! [[egress]]
//! name = "verifier"
//! port = 5100
//! destination = "dns:verifier.internal:7000"
//! carry = "tls"                                  # kernels speak TLS to the verifier
//!
//! [[egress]]
//! name = "peer-k2"
//! port = 5201
//! destination = "unix:/run/k2/tls.sock"
//! carry = "tls"                                  # records, not frames (default "frames")
//!
//! [[egress]]
//! name = "otlp"
//! port = 5300
//! destination = "tcp:10.0.0.9:4318"
//! carry = "http"                                 # OTLP/HTTP exports to a collector
//!
//! [limits]                                       # any subset; the rest keep their defaults
//! max_connections_per_peer = 16
//! handshake_timeout_ms = 5000
//! ```

use super::egress::EgressRule;
use super::inbound::{Allowlist, AllowlistError};
use super::limits::Limits;
use super::{ProxyConfig, TlsRoute};
use crate::transport::{Endpoint, ParseEndpointError, VsockPort};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Longest egress rule name.
pub const MAX_NAME_CHARS: usize = 32;

/// How an egress route carries bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Carry {
    /// CBOR frames, one request and one response at a time (the verifier's protocol).
    #[default]
    Frames,
    /// TLS records (a mutually attested link to a peer kernel's TLS route).
    Tls,
    /// HTTP/1.1 OTLP exports (`POST /v1/traces`) to an OpenTelemetry collector's OTLP/HTTP
    /// port (see [`super::http`]).
    Http,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    listen: String,
    enclave: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    name: String,
    port: u32,
    destination: String,
    #[serde(default)]
    carry: Carry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: String,
    enclave: String,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    metrics_listen: Option<String>,
    #[serde(default)]
    metrics_file: Option<PathBuf>,
    #[serde(default)]
    tls: Option<RawTls>,
    #[serde(default)]
    egress: Vec<RawEgress>,
    #[serde(default)]
    limits: Limits,
}

/// Errors reading a configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// "could not read `{path}`".
    #[error("could not read `{path}`")]
    Read {
        /// The file.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "`{0}` is larger than 1 MiB".
    #[error("`{0}` is larger than 1 MiB")]
    TooLarge(String),
    /// "not a valid proxy configuration".
    #[error("not a valid proxy configuration")]
    Toml(#[source] toml::de::Error),
    /// "`{key}` is not a valid endpoint".
    #[error("`{key}` is not a valid endpoint")]
    Endpoint {
        /// The key, e.g. `egress[1].destination`.
        key: String,
        /// Cause.
        #[source]
        source: ParseEndpointError,
    },
    /// "`allow` names a method the enclave does not serve".
    #[error("`allow` names a method the enclave does not serve")]
    Allow(#[source] AllowlistError),
    /// "egress name `{0}` is not 1-32 lowercase letters, digits and dashes".
    #[error("egress name `{0}` is not 1-32 lowercase letters, digits and dashes")]
    BadName(String),
    /// "egress name `{0}` is used twice".
    #[error("egress name `{0}` is used twice")]
    DuplicateName(String),
}

fn endpoint(key: impl Into<String>, text: &str) -> Result<Endpoint, ConfigError> {
    text.parse().map_err(|source| ConfigError::Endpoint {
        key: key.into(),
        source,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses a configuration document. Duplicate ports and impossible limits are caught by
/// [`super::Proxy::bind`], which every configuration passes through.
pub fn from_toml_str(text: &str) -> Result<ProxyConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(ConfigError::Toml)?;
    let mut config = ProxyConfig::new(
        endpoint("listen", &raw.listen)?,
        endpoint("enclave", &raw.enclave)?,
    );
    if let Some(allow) = &raw.allow {
        config.allow = Allowlist::new(allow).map_err(ConfigError::Allow)?;
    }
    if let Some(m) = &raw.metrics_listen {
        config.metrics_listen = Some(endpoint("metrics_listen", m)?);
    }
    config.metrics_file = raw.metrics_file;
    if let Some(tls) = &raw.tls {
        config.tls = Some(TlsRoute {
            listen: endpoint("tls.listen", &tls.listen)?,
            enclave: endpoint("tls.enclave", &tls.enclave)?,
        });
    }
    let mut names = BTreeSet::new();
    for (i, e) in raw.egress.iter().enumerate() {
        if !valid_name(&e.name) {
            return Err(ConfigError::BadName(e.name.clone()));
        }
        if !names.insert(e.name.as_str()) {
            return Err(ConfigError::DuplicateName(e.name.clone()));
        }
        let rule = EgressRule {
            port: VsockPort(e.port),
            destination: endpoint(format!("egress[{i}].destination"), &e.destination)?,
        };
        config.egress_names.insert(rule.port, e.name.clone());
        match e.carry {
            Carry::Frames => config.egress.push(rule),
            Carry::Tls => config.egress_tls.push(rule),
            Carry::Http => config.egress_http.push(rule),
        }
    }
    config.limits = raw.limits;
    Ok(config)
}

/// Reads and parses the configuration file at `path`.
pub fn load(path: &Path) -> Result<ProxyConfig, ConfigError> {
    use std::io::Read;
    let read_err = |source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge(path.display().to_string()));
    }
    from_toml_str(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
listen = "unix:/run/k1/public.sock"
enclave = "hybrid:/run/k1/enclave.sock:5000"
allow = ["health", "evaluate"]
metrics_listen = "tcp:127.0.0.1:9464"
metrics_file = "/run/k1/metrics.json"

[tls]
listen = "unix:/run/k1/tls.sock"
enclave = "hybrid:/run/k1/enclave.sock:5443"

[[egress]]
name = "verifier"
port = 5100
destination = "dns:verifier.internal:7000"

[[egress]]
name = "peer-k2"
port = 5201
destination = "unix:/run/k2/tls.sock"
carry = "tls"

[limits]
max_connections_per_peer = 16
handshake_timeout_ms = 5000
"#;

    #[test]
    fn a_full_file_reads_into_a_config() {
        let c = from_toml_str(FULL).unwrap();
        assert_eq!(c.listen, "unix:/run/k1/public.sock".parse().unwrap());
        assert_eq!(
            c.allow.methods().collect::<Vec<_>>(),
            ["evaluate", "health"]
        );
        assert_eq!(
            c.tls.unwrap().enclave,
            "hybrid:/run/k1/enclave.sock:5443".parse().unwrap()
        );
        assert_eq!(c.egress.len(), 1);
        assert_eq!(c.egress_tls.len(), 1);
        assert_eq!(c.egress_names.get(&VsockPort(5100)).unwrap(), "verifier");
        assert_eq!(c.egress_tls[0].port, VsockPort(5201));
        assert_eq!(c.limits.max_connections_per_peer, 16);
        assert_eq!(c.limits.handshake_timeout_ms, 5000);
        // Unnamed limits keep their defaults.
        assert_eq!(c.limits.idle_timeout_ms, Limits::default().idle_timeout_ms);
        assert_eq!(
            c.metrics_listen.unwrap(),
            "tcp:127.0.0.1:9464".parse().unwrap()
        );
    }

    #[test]
    fn a_minimal_file_has_defaults() {
        let c =
            from_toml_str("listen = \"tcp:127.0.0.1:0\"\nenclave = \"vsock:3:5000\"\n").unwrap();
        assert!(c.egress.is_empty() && c.egress_tls.is_empty() && c.tls.is_none());
        assert_eq!(c.allow, Allowlist::default());
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn mistakes_name_the_key() {
        let base = "listen = \"tcp:127.0.0.1:0\"\nenclave = \"vsock:3:5000\"\n";
        let with = |extra: &str| from_toml_str(&format!("{base}{extra}")).unwrap_err();
        assert!(matches!(
            with("[limits]\nmax_conections = 3\n"),
            ConfigError::Toml(_)
        ));
        assert!(matches!(with("colour = 1\n"), ConfigError::Toml(_)));
        assert!(matches!(
            with("allow = [\"helth\"]\n"),
            ConfigError::Allow(_)
        ));
        let e = with("[[egress]]\nname = \"v\"\nport = 1\ndestination = \"example.org:443\"\n");
        assert!(
            matches!(&e, ConfigError::Endpoint { key, .. } if key == "egress[0].destination"),
            "{e:?}"
        );
        assert!(matches!(
            with("[[egress]]\nname = \"Verifier\"\nport = 1\ndestination = \"tcp:127.0.0.1:1\"\n"),
            ConfigError::BadName(_)
        ));
        let twice = "[[egress]]\nname = \"v\"\nport = 1\ndestination = \"tcp:127.0.0.1:1\"\n\
                     [[egress]]\nname = \"v\"\nport = 2\ndestination = \"tcp:127.0.0.1:1\"\n";
        assert!(matches!(with(twice), ConfigError::DuplicateName(_)));
        assert!(matches!(
            with("[[egress]]\nname = \"v\"\nport = 1\ndestination = \"tcp:127.0.0.1:1\"\ncarry = \"udp\"\n"),
            ConfigError::Toml(_)
        ));
        assert!(matches!(
            from_toml_str("listen = \"tcp:127.0.0.1:0\"\n"),
            Err(ConfigError::Toml(_))
        ));
    }

    #[test]
    fn the_operator_guide_example_parses() {
        let guide = include_str!("../../../docs/operator.md");
        let start = guide
            .find("**The configuration file**")
            .and_then(|i| guide[i..].find("```toml").map(|j| i + j + "```toml".len()))
            .unwrap();
        let end = start + guide[start..].find("```").unwrap();
        let c = from_toml_str(&guide[start..end]).unwrap();
        assert_eq!(c.egress_names.get(&VsockPort(5300)).unwrap(), "otlp");
        assert_eq!(c.egress_http.len(), 1);
        assert_eq!(c.egress_http[0].port, VsockPort(5300));
        assert!(c.tls.is_some() && c.metrics_listen.is_some());
        assert_eq!(c.limits.record_limit_bytes, 16640);
    }

    #[test]
    fn files_are_read_with_a_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, FULL).unwrap();
        assert!(load(&path).is_ok());
        assert!(matches!(
            load(&dir.path().join("missing.toml")),
            Err(ConfigError::Read { .. })
        ));
        let huge = format!("{FULL}\n#{}\n", "x".repeat(1024 * 1024));
        std::fs::write(&path, huge).unwrap();
        assert!(matches!(load(&path), Err(ConfigError::TooLarge(_))));
    }
}
