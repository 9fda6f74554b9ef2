//! The checks that need more than one value, run once every key has been read: between keys
//! ([`Config::check_related_fields`]), on the files the config names
//! ([`Config::check_files`]), and the warnings ([`Config::warnings`]): what is allowed but
//! probably not meant.

use std::net::SocketAddr;

use super::backend::{check_backend_addr, Scheme};
use super::error::{invalid, ConfigError};
use super::groups::default_workers;
use super::names::HealthCheckMethod;
use super::values::check_file;
use super::Config;

impl Config {
    /// Things that are allowed but probably not meant, one line each, for the log at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let pool = &self.pool;
        if pool.backends.is_empty() && self.routes.is_empty() {
            warnings.push("no backends configured: every request will get 503".to_owned());
        }
        self.routing_warnings(&mut warnings);
        for (i, backend) in pool.backends.iter().enumerate() {
            if let Some(j) = pool.backends[..i]
                .iter()
                .position(|b| b.addr == backend.addr)
            {
                warnings.push(format!(
                    "backends[{i}] ({:?}) resolves to the same address as backends[{j}] ({}): \
                     that server gets both their shares",
                    backend.url, backend.addr
                ));
            }
            let tls = pool.tls_of_backend(i);
            if backend.scheme == Scheme::Http {
                for (key, set) in [
                    ("ca_file", tls.ca_file.is_some()),
                    ("tls_skip_verify", tls.tls_skip_verify),
                ] {
                    if set {
                        warnings.push(format!(
                            "backends[{i}]: {key} is not used: the backend's URL is http://"
                        ));
                    }
                }
            } else if tls.tls_skip_verify {
                warnings.push(format!(
                    "backends[{i}]: tls_skip_verify is on: the backend's certificate is not verified"
                ));
                if tls.ca_file.is_some() {
                    warnings.push(format!(
                        "backends[{i}]: ca_file is not used when tls_skip_verify is on"
                    ));
                }
            }
        }
        if pool.health.method != HealthCheckMethod::Http && pool.health.path != "/health" {
            warnings.push(format!(
                "health_check_path is not used when health_check_method is \"{}\"",
                pool.health.method
            ));
        }
        if self.identity.proxy_protocol && self.identity.trusted_proxies.is_empty() {
            warnings.push(
                "proxy_protocol is on but trusted_proxies is empty: every connection will be \
                 closed (list the balancers in front in trusted_proxies)"
                    .into(),
            );
        }
        if self.ssl.redirect_http_port.is_some() && !self.ssl.enabled {
            warnings.push("ssl.redirect_http_port is not used when ssl.enabled is false".into());
        }
        if self.ssl.hsts.is_some() && !self.ssl.enabled {
            warnings.push("ssl.hsts is not used when ssl.enabled is false".into());
        }
        let process = &self.process;
        if process.max_connections < process.workers {
            warnings.push(format!(
                "max_connections ({}) is below workers ({}): some workers will accept no connections",
                process.max_connections, process.workers
            ));
        }
        let cores = default_workers();
        if process.workers > cores {
            warnings.push(format!(
                "workers ({}) exceeds the {cores} CPU cores available: workers will compete for them",
                process.workers
            ));
        }
        warnings
    }

    /// Checks between fields, run once every field has been read (and again by a reload, once
    /// the keys that need a restart have their running values back).
    pub fn check_related_fields(&self) -> Result<(), ConfigError> {
        let (process, limits) = (&self.process, &self.limits);
        if !process.admin_bind.to_canonical().is_loopback() && self.admin.token.is_none() {
            let problem = format!(
                "{} is not a loopback address, so admin_token is required (without it, anyone \
                 who can reach port {} could change the backend pool)",
                process.admin_bind, process.admin_port
            );
            return Err(invalid("admin_bind", problem));
        }
        if process.admin_port == process.port && process.port != 0 {
            let problem = format!("must differ from port ({})", process.port);
            return Err(invalid("admin_port", problem));
        }
        if limits.max_request_head > limits.buffer_size {
            let problem = format!("must not exceed buffer_size ({})", limits.buffer_size);
            return Err(invalid("max_request_head", problem));
        }
        if limits.max_uri_length > limits.max_request_head {
            let problem = format!(
                "must not exceed max_request_head ({})",
                limits.max_request_head
            );
            return Err(invalid("max_uri_length", problem));
        }
        if let Some(redirect) = self.ssl.redirect_http_port {
            for (key, port) in [("port", process.port), ("admin_port", process.admin_port)] {
                if redirect == port {
                    let problem = format!("must differ from {key} ({port})");
                    return Err(invalid("ssl.redirect_http_port", problem));
                }
            }
        }
        Ok(())
    }

    /// The files the config names must be regular files that open (their contents are the TLS
    /// code's business). With TLS off, the certificates and keys are not looked at.
    pub(super) fn check_files(&self) -> Result<(), ConfigError> {
        self.check_ssl_files()?;
        for (name, pool) in self.all_pools() {
            let at = pool_path(name);
            if let Some(file) = &pool.upstream.ca_file {
                check_file(&format!("{at}backend_ca_file"), file)?;
            }
            for (i, tls) in pool.backend_tls.iter().enumerate() {
                if let Some(file) = &tls.ca_file {
                    check_file(&format!("{at}backends[{i}].ca_file"), file)?;
                }
            }
        }
        if let super::AccessLogTarget::File(path) = &self.logging.access_log {
            // opened for appending (created if missing), as the proxy will
            super::open_access_log(path)
                .map_err(|e| invalid("access_log", format!("cannot open {path:?}: {e}")))?;
        }
        Ok(())
    }

    /// With TLS on: at least one certificate, no half pair, every file openable.
    fn check_ssl_files(&self) -> Result<(), ConfigError> {
        let ssl = &self.ssl;
        if !ssl.enabled {
            return Ok(());
        }
        // Without `certificates`, cert_file and key_file are required; with it, they are
        // optional, but one without the other is still a mistake.
        let required = |field: &str, other: &str| {
            let problem = if ssl.certificates.is_empty() {
                "required when ssl.enabled is true".to_owned()
            } else {
                format!("required when ssl.{other} is set")
            };
            invalid(field, problem)
        };
        let single_given = !ssl.cert_file.is_empty() || !ssl.key_file.is_empty();
        if single_given || ssl.certificates.is_empty() {
            for (field, file, other) in [
                ("ssl.cert_file", &ssl.cert_file, "key_file"),
                ("ssl.key_file", &ssl.key_file, "cert_file"),
            ] {
                if file.is_empty() {
                    return Err(required(field, other));
                }
                check_file(field, file)?;
            }
        }
        for (i, pair) in ssl.certificates.iter().enumerate() {
            check_file(&format!("ssl.certificates[{i}].cert_file"), &pair.cert_file)?;
            check_file(&format!("ssl.certificates[{i}].key_file"), &pair.key_file)?;
        }
        Ok(())
    }
}

impl Config {
    /// ferrule's own listening sockets as the config gives them (a port 0, picked at start, is
    /// not known here): the proxy, the admin API, and the redirect listener with TLS on.
    pub fn own_listeners(&self) -> Vec<(&'static str, SocketAddr)> {
        let process = &self.process;
        let mut own = vec![
            ("proxy", SocketAddr::new(process.bind, process.port)),
            (
                "admin API",
                SocketAddr::new(process.admin_bind, process.admin_port),
            ),
        ];
        if let Some(port) = self.ssl.redirect_http_port.filter(|_| self.ssl.enabled) {
            own.push(("redirect", SocketAddr::new(process.bind, port)));
        }
        own.retain(|(_, a)| a.port() != 0);
        own
    }

    /// Every backend's address: not one of ferrule's own listeners, not link-local unless
    /// `allowed_backend_networks` says so (see [`check_backend_addr`]).
    pub(super) fn check_backend_addresses(&self) -> Result<(), ConfigError> {
        let own = self.own_listeners();
        for (name, pool) in self.all_pools() {
            for (i, b) in pool.backends.iter().enumerate() {
                check_backend_addr(&b.url, b.addr, &own, &self.admin.allowed_backend_networks)
                    .map_err(|p| invalid(&format!("{}backends[{i}].url", pool_path(name)), p))?;
            }
        }
        Ok(())
    }
}

/// The path a pool's keys are under: nothing for the default pool, `pools.NAME.` for the others.
fn pool_path(name: &str) -> String {
    if name == super::DEFAULT_POOL {
        String::new()
    } else {
        format!("pools.{}.", super::de::key_text(name))
    }
}
