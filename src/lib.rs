//! ferrule: a thread-per-core, load-balancing HTTP/1.1 reverse proxy.
//!
//! [`start`] brings a proxy up from a validated [`Config`] and returns a [`Handle`]; `main.rs`
//! uses it, and so do the integration tests, which start proxies in-process on port 0.
//!
//! Module map (the data path, top-down): `listener` binds one `SO_REUSEPORT` socket per worker;
//! `worker` runs a `mio` loop per core (`token` and `timer` type its poll tokens and timers);
//! `connection` is a client connection and its codec (HTTP/1.1), which hands each request to a
//! `stream` (the exchange with a backend: request, backend choice, retries, response, tunnel);
//! `context` is what both work with; `http` parses, checks and rewrites messages; `upstream`
//! keeps a worker's backend connections;
//! `balancer` holds the shared pool and picks backends (`backend`, `pool`, `picker`, `slots`,
//! one file per strategy, `sticky`); `buffer` and `timer` are the worker's memory and clock
//! (`timer` also holds the process's clock helpers); `transport` is one face over plain sockets
//! and rustls, `tls` makes the rustls configurations. Around it: `config`, `admin`, `health` (the
//! checker thread, and passive health, which the workers run), `redirect`, `stats`, `logging`,
//! `handover` (a new process takes the listening sockets of the running one: zero-downtime
//! restart). Before HTTP, pure helpers: `proxy_protocol` reads a load balancer's PROXY header,
//! `client_ip` finds the client behind trusted proxies, `hash` holds the fixed hashes (client
//! addresses, `hash_key`, sticky cookie values) that `http` and `balancer` share.

/// Declares a module that network input reaches on every line (`http`, `proxy_protocol`,
/// `connection::h2`): outside its tests, clippy warns on any indexing, slicing, `unwrap`,
/// `expect` or `panic!` that could fail on that input, and CI's clippy runs with `-D warnings`.
/// The one place this policy is written.
macro_rules! network_input_mod {
    ($vis:vis mod $name:ident;) => {
        #[cfg_attr(
            not(test),
            warn(
                clippy::indexing_slicing,
                clippy::unwrap_used,
                clippy::expect_used,
                clippy::panic
            )
        )]
        $vis mod $name;
    };
}

pub mod access_log;
pub mod admin;
pub mod balancer;
pub mod buffer;
pub mod client_ip;
pub mod config;
pub mod connection;
pub mod context;
pub mod dns;
pub mod handover;
pub mod hash;
pub mod health;
network_input_mod! { pub mod http; }
pub mod httpd;
pub mod limits;
pub mod listener;
pub mod logging;
pub mod per_ip;
pub mod pools;
network_input_mod! { pub mod proxy_protocol; }
pub mod redirect;
pub mod route;
pub mod stats;
pub mod stream;
pub mod timer;
pub mod tls;
pub mod token;
pub mod transport;
pub mod upstream;
pub mod worker;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::balancer::{Balancer, Pool};
pub use crate::config::Config;
use crate::context::Settings;
use crate::worker::{Control, Shared, WorkerHandle};

/// Starting the proxy failed; each variant names the step.
#[derive(Debug)]
pub enum StartError {
    /// The proxy port could not be bound.
    Bind { addr: SocketAddr, source: io::Error },
    /// The admin port could not be bound.
    Admin { addr: SocketAddr, source: io::Error },
    /// A thread or poll instance could not be created.
    Spawn(io::Error),
    /// A certificate, key or CA file could not be used (the message names the field and file).
    Tls(String),
    /// The access log file could not be opened.
    AccessLog { path: String, source: io::Error },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Admin { addr, source } => {
                write!(f, "cannot start the admin API on {addr}: {source}")
            }
            StartError::Spawn(e) => write!(f, "cannot start worker threads: {e}"),
            StartError::Tls(what) => f.write_str(what),
            StartError::AccessLog { path, source } => {
                write!(f, "access_log: cannot open {path:?}: {source}")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Bind { source, .. } | StartError::Admin { source, .. } => Some(source),
            StartError::Spawn(e) | StartError::AccessLog { source: e, .. } => Some(e),
            StartError::Tls(_) => None,
        }
    }
}

/// A running proxy. Dropping it stops the proxy at once (in-flight requests are cut); call
/// [`Handle::shutdown`] and [`Handle::wait`] to drain gracefully.
pub struct Handle {
    addr: SocketAddr,
    workers: Vec<WorkerHandle>,
    admin: admin::AdminHandle,
    /// The address of the plain-HTTP listener that redirects to https
    /// (`ssl.redirect_http_port`), which the workers serve.
    redirect: Option<SocketAddr>,
    pools: Arc<pools::Pools>,
    shutdown_timeout: Duration,
    /// Second descriptors of the listening sockets, for a successor (`handover.rs`).
    offer: handover::Offer,
    access_log: Arc<access_log::AccessLog>,
    /// The index of each worker that died (a panic, or an event loop that failed).
    died: crossbeam_channel::Receiver<usize>,
}

impl Handle {
    /// Receives the index of a worker that died (a panic or a failed poll): the proxy is then short of a worker
    /// and its connections; `main.rs` exits (code 70) rather than serve half-dead.
    pub fn worker_deaths(&self) -> &crossbeam_channel::Receiver<usize> {
        &self.died
    }

    /// The address the proxy accepts clients on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the plain-HTTP redirect listener, when there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect
    }

    /// The address of the admin API.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.addr()
    }

    /// The live `default` pool.
    pub fn balancer(&self) -> Arc<Balancer> {
        self.pools.default_balancer()
    }

    /// The live pools and routes.
    pub fn pools(&self) -> &Arc<pools::Pools> {
        &self.pools
    }

    /// Re-reads the config file given to [`start_file`] and applies what changed (see
    /// `admin/reload.rs`); the report, or the one-line reason nothing changed.
    pub fn reload(&self) -> Result<serde_json::Value, String> {
        self.admin.reload()
    }

    /// Opens the access log file again by its name (`SIGUSR1`, after logrotate moved it).
    pub fn reopen_logs(&self) -> Result<(), String> {
        self.access_log.reopen()
    }

    /// The access log (its counters, its flush).
    pub fn access_log(&self) -> &Arc<access_log::AccessLog> {
        &self.access_log
    }

    /// What another thread reloads with (`main.rs`'s `SIGHUP` thread).
    pub fn reloader(&self) -> admin::Reloader {
        self.admin.reloader()
    }

    /// Stops accepting; requests in flight may finish within `shutdown_timeout`.
    pub fn shutdown(&self) {
        self.shutdown_within(self.shutdown_timeout);
    }

    /// The listening sockets a successor may take over (see `handover.rs`).
    pub fn offer(&self) -> handover::Offer {
        Arc::clone(&self.offer)
    }

    /// A successor took the sockets over and serves the admin API (and redirects) now: stop
    /// ours at once rather than after the drain.
    pub fn stop_servers(&mut self) {
        self.offer.lock().clear();
        self.admin.stop();
    }

    /// Stops accepting; requests in flight may finish within `grace`.
    pub fn shutdown_within(&self, grace: Duration) {
        // the workers close their listeners; so do we (the proxy listeners' second
        // descriptors), so that without a successor the port refuses new connections at once
        self.offer
            .lock()
            .retain(|l| l.role != handover::Role::Proxy);
        let deadline = Instant::now() + grace;
        for w in &self.workers {
            w.send(Control::Shutdown { deadline });
        }
    }

    /// All workers have exited.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(WorkerHandle::is_finished)
    }

    /// Waits for the workers to exit (after [`Handle::shutdown`]), then stops the admin API.
    pub fn wait(mut self) {
        self.join();
    }

    fn join(&mut self) {
        for w in &mut self.workers {
            w.join();
        }
        // the health and DNS threads stop with the admin API
        self.offer.lock().clear();
        self.admin.stop();
        // every line of the requests served is written before the proxy is gone
        self.access_log.stop();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.is_finished() {
            self.shutdown_within(Duration::ZERO);
        }
        self.join();
    }
}

/// The certificates of `ssl` (the single `cert_file`/`key_file` first, then `certificates`).
pub fn cert_pairs(config: &Config) -> Vec<tls::CertPair> {
    config
        .ssl
        .cert_key_pairs()
        .map(|(cert, key)| tls::CertPair::new(cert, key))
        .collect()
}

/// Loads the certificates when `ssl.enabled`: the server side of TLS, and warnings (a
/// certificate that expired, say) for the log.
pub fn server_tls(config: &Config) -> Result<Option<(tls::ServerTls, Vec<String>)>, String> {
    if !config.ssl.enabled {
        return Ok(None);
    }
    tls::ServerTls::with_alpn(
        &cert_pairs(config),
        context::Settings::from_config(config).h2.enabled,
    )
    .map(Some)
    .map_err(|e| format!("ssl: {e}"))
}

/// The TLS client settings of every `https://` backend (`None` for `http://` ones), by index,
/// of every pool in [`Config::all_pools`]'s order (see [`client_tls_of`]).
pub fn backend_tls(
    config: &Config,
    configs: &tls::ClientConfigs,
) -> Result<Vec<Vec<Option<transport::ClientTls>>>, String> {
    config
        .all_pools()
        .map(|(name, pool)| {
            let at = pool_prefix(name);
            pool.backends
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let prefix = format!("{at}backends[{i}].");
                    client_tls_of(pool, &at, b, pool.tls_of_backend(i), configs, &prefix)
                })
                .collect()
        })
        .collect()
}

/// How messages name the keys of pool `name`: nothing for `default` (the top level),
/// `pools.NAME.` for the others.
pub fn pool_prefix(name: &str) -> String {
    if name == config::DEFAULT_POOL {
        String::new()
    } else {
        format!("pools.{name}.")
    }
}

/// The TLS client settings of one backend of `pool` (`None` for `http://`): its CA file (or the
/// pool's `backend_ca_file`, or the built-in roots), skip-verify, and the name its certificate
/// must carry (the URL's host). Configs are shared through `configs`, so resumption works.
/// `pool_at` is how messages name the pool's keys ([`pool_prefix`]); `prefix` the entry's
/// (`backends[2].` at start; empty for the admin API, whose body is the entry).
pub fn client_tls_of(
    pool: &config::PoolConfig,
    pool_at: &str,
    backend: &config::BackendConfig,
    settings: &config::BackendTls,
    configs: &tls::ClientConfigs,
    prefix: &str,
) -> Result<Option<transport::ClientTls>, String> {
    if backend.scheme != config::Scheme::Https {
        return Ok(None);
    }
    let ca_file = settings
        .ca_file
        .as_deref()
        .or(pool.upstream.ca_file.as_deref());
    let field = if settings.ca_file.is_some() {
        format!("{prefix}ca_file")
    } else {
        format!("{pool_at}backend_ca_file")
    };
    let client = configs
        .get(ca_file.map(std::path::Path::new), settings.tls_skip_verify)
        .map_err(|e| format!("{field}: {e}"))?;
    let name = tls::server_name(&backend.host).map_err(|e| format!("{prefix}url: {e}"))?;
    Ok(Some(transport::ClientTls {
        config: client,
        name,
    }))
}

/// What `ferrule --check` verifies beyond the config file: the certificates and keys load and
/// match, the CA files parse. Returns the warnings.
pub fn check_tls(config: &Config) -> Result<Vec<String>, String> {
    let warnings = match server_tls(config)? {
        Some((_, warnings)) => warnings,
        None => Vec::new(),
    };
    backend_tls(config, &tls::ClientConfigs::new())?;
    Ok(warnings)
}

/// How the open-file limit is shared out. Every client connection is a descriptor, and so is its
/// backend connection while a request is in flight; idle pooled backend connections are one each;
/// listeners, polls, wakers, the admin server and log files need a few more (`reserve`). The idle
/// pool is capped at a quarter of what is left, split over the workers, so that pooled connections
/// never crowd out clients; `warning` says when `max_connections` busy clients could still run
/// out (they then get a 503, or wait in the accept queue: never a crash, never a backend marked
/// down for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorBudget {
    pub idle_per_worker: usize,
    pub warning: Option<String>,
}

pub fn descriptor_budget(fd_limit: u64, config: &Config) -> DescriptorBudget {
    let workers = config.process.workers.max(1);
    let backends: usize = config.all_pools().map(|(_, p)| p.backends.len()).sum();
    let limit = usize::try_from(fd_limit).unwrap_or(usize::MAX);
    let reserve = 64 + 4 * workers + backends;
    let spare = limit.saturating_sub(reserve);
    let wanted = config.keepalive.connections.saturating_mul(backends.max(1));
    let idle_per_worker = (spare / 4 / workers).min(wanted);
    let need = config
        .process
        .max_connections
        .saturating_mul(2)
        .saturating_add(idle_per_worker * workers)
        .saturating_add(reserve);
    let warning = (need > limit).then(|| {
        format!(
            "the open-file limit ({limit}) is below what max_connections ({}) busy clients could \
             need ({need}: a descriptor for each client, one for its backend connection, up to {} \
             idle pooled ones and {reserve} for ferrule itself); raise it (ulimit -n, or \
             LimitNOFILE= in a systemd unit) or lower max_connections",
            config.process.max_connections,
            idle_per_worker * workers,
        )
    });
    DescriptorBudget {
        idle_per_worker,
        warning,
    }
}

/// Workers started by [`start`], stopped at once if `start` fails after them.
struct Workers(Vec<WorkerHandle>);

impl Drop for Workers {
    fn drop(&mut self) {
        let now = Instant::now();
        for w in &self.0 {
            w.send(Control::Shutdown { deadline: now });
        }
        for w in &mut self.0 {
            w.join();
        }
    }
}

/// What the workers run with, from `config` (at start, and again at each reload).
pub fn shared_for(
    config: &Config,
    pools: Arc<pools::Pools>,
    tls: Option<Arc<rustls::ServerConfig>>,
    idle_budget: usize,
    access_log: Arc<access_log::AccessLog>,
    per_ip: Arc<per_ip::PerIp>,
) -> Shared {
    let workers = config.process.workers.max(1);
    Shared {
        pools,
        settings: Settings::from_config(config),
        max_connections: config.process.max_connections.div_ceil(workers).max(1),
        buffer_size: config.limits.buffer_size,
        backend_keepalive: config.keepalive.connections,
        idle_budget,
        backend_keepalive_timeout: config.keepalive.timeout,
        tls,
        access_log,
        per_ip,
        redirect_to: None,
    }
}

/// The pools of `config` (`default` first), each backend with its TLS settings from `tls` (by
/// pool, then by index: [`backend_tls`]), routed by `config.routes`.
pub fn build_pools(
    config: &Config,
    tls: Vec<Vec<Option<transport::ClientTls>>>,
    workers: usize,
) -> pools::Pools {
    let common = balancer::Common::default();
    let mut tls = tls.into_iter();
    let mut members = config
        .all_pools()
        .map(|(name, pool)| pools::member(&common, name, pool, tls.next().unwrap_or_default()));
    let default = members
        .next()
        .unwrap_or_else(|| pools::member(&common, config::DEFAULT_POOL, &config.pool, Vec::new()));
    let others = members.collect();
    pools::Pools::new(
        common,
        workers,
        default,
        others,
        &config.routes,
        config.default_serves(),
        config.rate_limit_table.max_keys,
    )
}

/// Starts the proxy (see [`start_file`]) from a config that came from no file: there is nothing
/// to reload.
pub fn start(config: &Config) -> Result<Handle, StartError> {
    start_with(config, None, &mut handover::Takeover::none())
}

/// [`start_with`] from the file `config` was loaded from (which a reload reads again).
pub fn start_file(config: &Config, path: Option<std::path::PathBuf>) -> Result<Handle, StartError> {
    start_with(config, path, &mut handover::Takeover::none())
}

/// Starts the proxy: binds the listeners, starts one worker per `config.process.workers` and
/// the admin API. Returns once everything is listening. `path` is the file `config` was loaded
/// from, which a reload reads again. The listeners are the sockets an old process handed over
/// where they match the config (the rest are bound afresh); see `handover.rs`.
pub fn start_with(
    config: &Config,
    path: Option<std::path::PathBuf>,
    takeover: &mut handover::Takeover,
) -> Result<Handle, StartError> {
    let server_tls = server_tls(config).map_err(StartError::Tls)?;
    if let Some((_, warnings)) = &server_tls {
        for w in warnings {
            log::warn!("{w}");
        }
    }
    let server_tls = server_tls.map(|(tls, _)| Arc::new(tls));
    let client_configs = tls::ClientConfigs::new();
    let backend_tls = backend_tls(config, &client_configs).map_err(StartError::Tls)?;
    let access_log = start_access_log(&config.logging)?;
    let fd_limit = listener::raise_fd_limit();
    let budget = descriptor_budget(fd_limit, config);
    if let Some(warning) = &budget.warning {
        log::warn!("{warning}");
    }
    let process = &config.process;
    let pools = Arc::new(build_pools(config, backend_tls, process.workers.max(1)));
    let addr = SocketAddr::new(process.bind, process.port);
    let workers = process.workers.max(1);
    let listeners = takeover
        .proxy_listeners(addr, workers)
        .map_err(|source| StartError::Bind { addr, source })?;
    let local_addr = listeners
        .iter()
        .flatten()
        .next()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(addr);
    let dup_error = |source| StartError::Bind { addr, source };
    let mut offer = Vec::with_capacity(workers + 2);
    for l in listeners.iter().flatten() {
        offer.push(handover::Listening::dup(handover::Role::Proxy, l).map_err(dup_error)?);
    }
    let redirect = redirect_listener(config, takeover, &mut offer)?;
    let redirect_addr = redirect.as_ref().and_then(|l| l.local_addr().ok());
    let mut shared = shared_for(
        config,
        Arc::clone(&pools),
        server_tls.as_ref().map(|t| t.config()),
        budget.idle_per_worker,
        Arc::clone(&access_log),
        Arc::new(per_ip::PerIp::new(config.identity.ipv6_client_prefix)),
    );
    shared.redirect_to = redirect.as_ref().map(|_| local_addr.port());
    let shared = Arc::new(shared);
    // workers already running are stopped again if a later step fails: a failed start leaves
    // nothing serving
    let mut handles = Workers(Vec::with_capacity(workers));
    let (died_tx, died) = crossbeam_channel::bounded(workers);
    for (i, l) in listeners.into_iter().enumerate() {
        let own_redirect = match &redirect {
            Some(r) => Some(r.try_clone().map_err(StartError::Spawn)?),
            None => None,
        };
        let worker = worker::spawn(i, l, own_redirect, Arc::clone(&shared), died_tx.clone());
        handles.0.push(worker.map_err(StartError::Spawn)?);
    }
    drop(redirect);
    let admin_addr = SocketAddr::new(process.admin_bind, process.admin_port);
    let state = admin::AdminState {
        pools: Arc::clone(&pools),
        workers: handles.0.iter().map(|w| Arc::clone(&w.stats)).collect(),
        ports: handles.0.iter().map(WorkerHandle::port).collect(),
        tls: server_tls.clone(),
        config: Arc::new(parking_lot::RwLock::new(config.clone())),
        client_configs,
        proxy_addr: local_addr,
        live: admin::Live::new(path, Arc::clone(&shared), fd_limit),
    };
    let admin_error = |source| StartError::Admin {
        addr: admin_addr,
        source,
    };
    let admin_listener = takeover
        .single(handover::Role::Admin, admin_addr, httpd::bind)
        .map_err(admin_error)?;
    offer.push(
        handover::Listening::dup(handover::Role::Admin, &admin_listener).map_err(admin_error)?,
    );
    let admin = admin::start_on(admin_listener, state).map_err(admin_error)?;
    start_health_checks(config, &pools, &admin)?;
    Ok(Handle {
        addr: local_addr,
        workers: std::mem::take(&mut handles.0),
        admin,
        redirect: redirect_addr,
        pools,
        shutdown_timeout: process.shutdown_timeout,
        offer: Arc::new(parking_lot::Mutex::new(offer)),
        access_log,
        died,
    })
}

/// The access log's writer thread, for `logging`'s target and format.
fn start_access_log(logging: &config::Logging) -> Result<Arc<access_log::AccessLog>, StartError> {
    access_log::AccessLog::start(&logging.access_log, logging.access_log_format).map_err(|source| {
        StartError::AccessLog {
            path: match &logging.access_log {
                config::AccessLogTarget::File(path) => path.clone(),
                other => format!("{other:?}"),
            },
            source,
        }
    })
}

/// The https redirect listener (`ssl.redirect_http_port`, with TLS on): one socket, which every
/// worker accepts from (each with its own descriptor of it), taken over or bound, and offered
/// to a successor.
fn redirect_listener(
    config: &Config,
    takeover: &mut handover::Takeover,
    offer: &mut Vec<handover::Listening>,
) -> Result<Option<std::net::TcpListener>, StartError> {
    let Some(port) = config.ssl.redirect_http_port.filter(|_| config.ssl.enabled) else {
        return Ok(None);
    };
    let addr = SocketAddr::new(config.process.bind, port);
    let bind_error = |source| StartError::Bind { addr, source };
    let l = takeover
        .single(handover::Role::Redirect, addr, httpd::bind)
        .map_err(bind_error)?;
    l.set_nonblocking(true).map_err(bind_error)?;
    offer.push(handover::Listening::dup(handover::Role::Redirect, &l).map_err(bind_error)?);
    Ok(Some(l))
}

/// Starts the active health checks of every pool that has them, each reported to the admin API.
fn start_health_checks(
    config: &Config,
    pools: &pools::Pools,
    admin: &admin::AdminHandle,
) -> Result<(), StartError> {
    let table = pools.current();
    for (name, pool) in config.all_pools() {
        let Some(member) = table.by_name(name) else {
            continue;
        };
        if pool.health.active() {
            let settings = health::HealthSettings::from_pool(pool);
            let checks =
                health::start(Arc::clone(&member.balancer), settings).map_err(StartError::Spawn)?;
            admin.set_health(&member.name, checks);
        }
    }
    Ok(())
}
