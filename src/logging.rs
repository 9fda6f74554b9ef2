//! Logging that never blocks a worker: `log` records are formatted by the caller, sent over a
//! bounded channel and written by a logger thread through simplelog. When the channel is full the
//! record is dropped and counted, and the next record written says how many were lost.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use log::{Level, LevelFilter, Log, Metadata, Record};
use simplelog::{ColorChoice, ConfigBuilder, SharedLogger, TermLogger, TerminalMode};

/// Records waiting for the logger thread before new ones are dropped.
const QUEUE: usize = 8192;

enum Line {
    Record {
        level: Level,
        target: String,
        text: String,
    },
    /// Answer on the channel once everything before has been written.
    Flush(Sender<()>),
}

struct ChannelLogger {
    tx: Sender<Line>,
    dropped: Arc<AtomicU64>,
}

impl Log for ChannelLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // the level can change at run time (a reload): `log::max_level` holds it
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = Line::Record {
            level: record.level(),
            target: record.target().to_owned(),
            text: record.args().to_string(),
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        if self
            .tx
            .send_timeout(Line::Flush(done_tx), Duration::from_secs(1))
            .is_ok()
        {
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Keeps the logger thread; dropping it does not stop logging (the logger is process-global).
pub struct LogThread {
    _thread: JoinHandle<()>,
}

/// The level `RUST_LOG` asks for, when it is set: a level name (`debug`), or env_logger's
/// `ferrule=debug` directive (other crates' directives are ignored: ferrule logs only its own).
/// `Err` names a value that says neither.
pub fn env_level() -> Option<Result<LevelFilter, String>> {
    let value = std::env::var("RUST_LOG").ok()?;
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let parsed = value.parse::<LevelFilter>().ok().or_else(|| {
        value.split(',').rev().find_map(|d| {
            let (target, level) = d.split_once('=')?;
            (target.trim() == "ferrule").then(|| level.trim().parse().ok())?
        })
    });
    Some(parsed.ok_or_else(|| format!("RUST_LOG={value:?} names no level for ferrule")))
}

/// Sets the level of ferrule's own log to `configured` (`log_level`), unless `RUST_LOG` names
/// one, which wins.
pub fn set_level(configured: LevelFilter) {
    log::set_max_level(match env_level() {
        Some(Ok(level)) => level,
        _ => configured,
    });
}

/// Installs the process logger at `level` (which [`set_level`] changes later). Fails if a
/// logger is already installed.
pub fn init(level: LevelFilter) -> Result<LogThread, String> {
    let config = ConfigBuilder::new()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .build();
    let color = if std::io::stderr().is_terminal() {
        ColorChoice::Auto
    } else {
        ColorChoice::Never
    };
    // the inner logger lets everything through: the level is checked before a record is sent
    let inner = TermLogger::new(LevelFilter::Trace, config, TerminalMode::Stderr, color);
    let (tx, rx) = crossbeam_channel::bounded(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let logger = ChannelLogger {
        tx,
        dropped: Arc::clone(&dropped),
    };
    log::set_boxed_logger(Box::new(logger)).map_err(|e| e.to_string())?;
    log::set_max_level(level);
    let thread = std::thread::Builder::new()
        .name("ferrule-log".into())
        .spawn(move || write_lines(&rx, inner.as_ref(), &dropped))
        .map_err(|e| e.to_string())?;
    Ok(LogThread { _thread: thread })
}

fn write_lines(rx: &Receiver<Line>, inner: &dyn SharedLogger, dropped: &AtomicU64) {
    for line in rx {
        let (level, target, text) = match line {
            Line::Record {
                level,
                target,
                text,
            } => (level, target, text),
            Line::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            inner.log(
                &Record::builder()
                    .level(Level::Warn)
                    .target("ferrule")
                    .args(format_args!(
                        "{lost} log records dropped (logger queue full)"
                    ))
                    .build(),
            );
        }
        inner.log(
            &Record::builder()
                .level(level)
                .target(&target)
                .args(format_args!("{text}"))
                .build(),
        );
        inner.flush();
    }
}

/// Blocks until queued records are written (at most about a second), for a clean exit.
pub fn flush() {
    log::logger().flush();
}
