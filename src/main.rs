//! The `ferrule` command: parse arguments, load the config, start the proxy, wait for a signal.
//!
//! `main` only maps `run`'s result to an exit code; every error is printed once, on one line.
//! `run` parses the arguments and goes to `check` (`--check`) or `serve`, which starts the proxy
//! and ends in `wait_for_stop`.
//! First Ctrl+C / SIGTERM: stop accepting and let requests in flight finish (up to
//! `shutdown_timeout`); a second one exits at once. Started while another ferrule runs with the
//! same `upgrade_socket`, it takes that one's listening sockets over, and the old one drains as
//! on SIGTERM (`handover.rs`); a SIGTERM to the old one after that changes nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrule::config::{format_duration, Config};

const USAGE: &str = "\
usage: ferrule [--check] CONFIG.json
       ferrule --help | --version

  CONFIG.json   the configuration file (see README.md for every option)
  --check       validate the configuration, print a one-line verdict and exit (0: valid)
  --help        print this help
  --version     print the version";

enum Command {
    Run(PathBuf),
    Check(PathBuf),
    Help,
    Version,
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let mut check = false;
    let mut path = None;
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "-t" | "--check" => check = true,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s:?} (try --help)"))
            }
            s => {
                if path.replace(PathBuf::from(s)).is_some() {
                    return Err("more than one config file given (try --help)".into());
                }
            }
        }
    }
    let path = path.ok_or("no config file given (usage: ferrule [--check] CONFIG.json)")?;
    Ok(if check {
        Command::Check(path)
    } else {
        Command::Run(path)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            ferrule::logging::flush();
            eprintln!("ferrule: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let command = parse_args(args)?;
    match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Version => {
            println!("ferrule {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Check(path) => check(&path),
        Command::Run(path) => serve(path),
    }
}

/// `--check`: loads and checks the config (TLS files included), and says what it holds.
fn check(path: &Path) -> Result<(), String> {
    let config = Config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let tls_warnings =
        ferrule::check_tls(&config).map_err(|e| format!("{}: {e}", path.display()))?;
    let n = config.pool.backends.len();
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let (pools, routes) = (config.pools.len(), config.routes.len());
    let routing = if pools + routes > 0 {
        format!(
            ", {pools} more pool{}, {routes} route{}",
            plural(pools),
            plural(routes)
        )
    } else {
        String::new()
    };
    println!(
        "ferrule: {} is valid ({n} backend{}, strategy {}, port {}{routing})",
        path.display(),
        plural(n),
        config.pool.balance.strategy,
        config.process.port
    );
    for w in config.warnings().into_iter().chain(tls_warnings) {
        println!("ferrule: warning: {w}");
    }
    Ok(())
}

/// Starts the proxy from the config at `path` (taking the sockets of an old ferrule over when
/// one hands them on), installs the signal handling and the upgrade socket, then waits for the
/// stop.
fn serve(path: PathBuf) -> Result<(), String> {
    // before any thread starts (the logger's too), so that every thread inherits the mask: the
    // signals then only ever reach the signal thread's sigwait (ctrlc's handler, which with its
    // `termination` feature would also take SIGTERM and SIGHUP, keeps only SIGINT)
    let blocked = block_signals();
    let config = Config::load(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let level = match ferrule::logging::env_level() {
        Some(Ok(level)) => level,
        Some(Err(_)) | None => config.logging.level.filter(),
    };
    ferrule::logging::init(level)?;
    if let Some(Err(e)) = ferrule::logging::env_level() {
        log::warn!("{e}: log_level {} applies", config.logging.level);
    }
    let upgrade_path = config
        .process
        .upgrade_socket
        .as_deref()
        .map(std::path::Path::new);
    let mut takeover = take_over(&config, upgrade_path)?;
    // a start that fails is one line on stderr: the log lines about the config come after it
    let handle = ferrule::start_with(&config, Some(path.clone()), &mut takeover)
        .map_err(|e| e.to_string())?;
    for w in config.warnings() {
        log::warn!("{w}");
    }
    for b in &config.pool.backends {
        log::info!("backend {} (weight {})", b.url, b.weight);
    }
    log::info!("strategy: {}", config.pool.balance.strategy);
    let scheme = if config.ssl.enabled { "https" } else { "http" };
    log::info!(
        "listening on {scheme}://{} with {} workers",
        handle.local_addr(),
        config.process.workers
    );
    log::info!("admin API on http://{}", handle.admin_addr());

    let (tx, rx) = crossbeam_channel::bounded::<Event>(4);
    let signals = tx.clone();
    let term = tx.clone();
    ctrlc::set_handler(move || {
        let _ = signals.try_send(Event::Signal);
    })
    .map_err(|e| format!("cannot install the signal handler: {e}"))?;
    if blocked {
        signal_thread(
            handle.reloader(),
            std::sync::Arc::clone(handle.access_log()),
            term,
        )
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    }
    // serve the next upgrade, then tell the old process (if any) that this one listens
    let _upgrade = upgrade_path.and_then(|p| {
        let started = ferrule::handover::UpgradeServer::start(p, handle.offer(), move |pid| {
            let _ = tx.try_send(Event::Upgraded(pid));
        });
        match started {
            Ok(server) => {
                log::info!("upgrade socket on {} (zero-downtime restart)", p.display());
                Some(server)
            }
            Err(e) => {
                log::warn!(
                    "upgrade socket {}: {e}; no zero-downtime restart",
                    p.display()
                );
                None
            }
        }
    });
    takeover.ready();
    ferrule::handover::notify_ready();
    wait_for_stop(handle, &rx, config.process.shutdown_timeout)
}

/// Waits for the first signal (or a successor), then drains; a second signal exits at once.
fn wait_for_stop(
    mut handle: ferrule::Handle,
    rx: &crossbeam_channel::Receiver<Event>,
    shutdown_timeout: std::time::Duration,
) -> Result<(), String> {
    let mut signals = 0;
    let deaths = handle.worker_deaths().clone();
    let event = crossbeam_channel::select! {
        recv(rx) -> event => event.ok(),
        recv(deaths) -> index => worker_died(index.ok()),
    };
    match event {
        Some(Event::Upgraded(pid)) => {
            log::info!("pid {pid} took over the listening sockets: draining as on SIGTERM");
            handle.stop_servers();
        }
        _ => {
            signals += 1;
            log::info!("Shutdown signal received");
        }
    }
    log::info!(
        "shutting down: no new connections, finishing requests in flight (up to {})",
        format_duration(shutdown_timeout)
    );
    handle.shutdown();
    let waited = std::time::Instant::now();
    while !handle.is_finished() {
        if let Ok(index) = deaths.try_recv() {
            worker_died(Some(index));
        }
        match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(Event::Signal) if signals == 0 => {
                // after a handover: SIGTERM only confirms the drain under way
                signals += 1;
                log::info!("Shutdown signal received (already draining)");
            }
            Ok(Event::Signal) => {
                log::warn!("second signal: exiting now");
                ferrule::logging::flush();
                std::process::exit(130);
            }
            Ok(Event::Upgraded(pid)) => {
                log::info!("pid {pid} took over the listening sockets");
                handle.stop_servers();
            }
            Err(_) => {}
        }
    }
    log::info!(
        "Proxy server stopped gracefully (after {})",
        format_duration(waited.elapsed())
    );
    handle.wait();
    log::info!("Admin server stopped gracefully");
    log::info!("All servers stopped");
    ferrule::logging::flush();
    Ok(())
}

/// The listening sockets of an old ferrule on the upgrade socket `path`, if one answers there
/// (`handover.rs`). Refused: a path someone else could have put there, and an old ferrule that
/// serves another proxy address (this one is not its successor).
fn take_over(
    config: &Config,
    path: Option<&std::path::Path>,
) -> Result<ferrule::handover::Takeover, String> {
    let Some(path) = path else {
        return Ok(ferrule::handover::Takeover::none());
    };
    let refused = |e: String| format!("upgrade_socket {}: {e}", path.display());
    ferrule::handover::secure_path(path).map_err(refused)?;
    let proxy = std::net::SocketAddr::new(config.process.bind, config.process.port);
    ferrule::handover::Takeover::connect(Some(path), proxy).map_err(refused)
}

/// The signals [`signal_thread`] takes: `SIGHUP` (reload), `SIGUSR1` (reopen the access log) and
/// `SIGTERM` (drain, as Ctrl+C's `SIGINT`, which `ctrlc` takes).
fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before it is used.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::sigaddset(&mut set, libc::SIGUSR1);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks the [`signal_set`] in this thread, and so in every thread started after, for
/// [`signal_thread`] to take with `sigwait`. False if they could not be blocked.
fn block_signals() -> bool {
    let set = signal_set();
    // SAFETY: pthread_sigmask with a valid set changes only this thread's mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0 }
}

/// A thread that takes `SIGHUP`, `SIGUSR1` and `SIGTERM` as they come: `SIGHUP` reloads the
/// config (as nginx and HAProxy do; the reload logs what changed or why nothing did), `SIGUSR1`
/// reopens the access log file (as nginx does, for logrotate), `SIGTERM` goes to `term`, as
/// Ctrl+C does.
fn signal_thread(
    reloader: ferrule::admin::Reloader,
    access_log: std::sync::Arc<ferrule::access_log::AccessLog>,
    term: crossbeam_channel::Sender<Event>,
) -> std::io::Result<()> {
    let set = signal_set();
    std::thread::Builder::new()
        .name("ferrule-signals".into())
        .spawn(move || loop {
            let mut signal: libc::c_int = 0;
            // SAFETY: sigwait with a valid set writes the signal number into `signal`.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                log::error!(
                    "waiting for signals failed: SIGHUP, SIGUSR1 and SIGTERM are ignored from now on"
                );
                return;
            }
            if signal == libc::SIGHUP {
                log::info!("SIGHUP: reloading the config");
                // on a thread of its own: a reload may wait on name lookups, and a SIGTERM meanwhile
                // must still be taken (reloads run one at a time; the reload logs its outcome)
                let reloader = reloader.clone();
                let spawned = std::thread::Builder::new()
                    .name("ferrule-reload".into())
                    .spawn(move || {
                        let _ = reloader.reload();
                    });
                if let Err(e) = spawned {
                    log::error!("cannot start the reload: {e}");
                }
            } else if signal == libc::SIGUSR1 {
                match access_log.reopen() {
                    Ok(()) => log::info!("SIGUSR1: access log reopened"),
                    Err(e) => log::warn!("SIGUSR1: {e}"),
                }
            } else {
                let _ = term.try_send(Event::Signal);
            }
        })?;
    Ok(())
}

/// A worker died, of a panic or a failed event loop (logged by the worker): exit at once with `EX_SOFTWARE` (70) rather
/// than serve with a worker less and its share of the listening sockets' connections stranded; a
/// supervisor restarts ferrule.
fn worker_died(index: Option<usize>) -> ! {
    if let Some(index) = index {
        log::error!("worker {index} died: exiting (code 70)");
    }
    ferrule::logging::flush();
    std::process::exit(70)
}

/// What the main thread waits for.
enum Event {
    /// SIGINT or SIGTERM.
    Signal,
    /// A new process (this pid) took the listening sockets over and listens: drain.
    Upgraded(u32),
}
