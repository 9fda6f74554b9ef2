//! `mock-backend`'s command line: the `--help` text ([`USAGE`]) and [`parse_args`], which gives
//! the ports, the address and the [`Settings`] every connection thread reads.
//!
//! Neighbours: `main.rs` (binding and accepting), `conn.rs` (one connection), `request.rs`.

use std::net::{IpAddr, Ipv4Addr};

use crate::{MAX_BYTES, MAX_DELAY_MS};

pub(crate) const USAGE: &str = "\
mock-backend: a small HTTP/1.1 backend for ferrule demos and tests

Usage: mock-backend [OPTIONS] PORT [PORT...]

Options:
  --bind ADDR       IP address to listen on (default 127.0.0.1)
  --delay MS        sleep MS milliseconds before each response, except /health (max 60000)
  --status CODE     answer every request except /health with CODE (200-599)
  --body-size N     default body of N bytes instead of \"hello from backend :PORT\\n\" (max 1 GiB)
  --body-delay MS   send the head, sleep MS milliseconds, then the body (max 60000)
  -h, --help        print this help

Routes (any method; HEAD gets the head only):
  /health           200 \"ok\\n\", always
  /echo             the request body, echoed back
  /status/NNN       status NNN (200-599)
  /delay/MS         sleep MS milliseconds (max 60000), then answer
  /bytes/N          N bytes (max 1 GiB)
  anything else     the default body
Every response carries \"X-Backend: PORT\".
";

pub(crate) struct Options {
    pub(crate) bind: IpAddr,
    pub(crate) ports: Vec<u16>,
    pub(crate) settings: Settings,
}

/// What every connection thread needs to know.
pub(crate) struct Settings {
    pub(crate) delay_ms: u64,
    pub(crate) status: Option<u16>,
    pub(crate) body_size: Option<u64>,
    /// `--body-delay`: milliseconds between a response's head and its body.
    pub(crate) body_delay_ms: u64,
}

/// Parses the arguments (without the program name). `Ok(None)` means `--help`.
pub(crate) fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: Vec::new(),
        settings: Settings {
            delay_ms: 0,
            status: None,
            body_size: None,
            body_delay_ms: 0,
        },
    };
    let mut only_ports = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if only_ports || !arg.starts_with('-') {
            let port: u16 = arg.parse().map_err(|_| format!("invalid port '{arg}'"))?;
            if port != 0 && opts.ports.contains(&port) {
                return Err(format!("port {port} given twice"));
            }
            opts.ports.push(port);
            continue;
        }
        match arg {
            "--" => {
                only_ports = true;
                continue;
            }
            "-h" | "--help" => return Ok(None),
            _ => {}
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        if !matches!(
            name,
            "--bind" | "--delay" | "--status" | "--body-size" | "--body-delay"
        ) {
            return Err(format!("unknown option '{name}'"));
        }
        let value = match inline {
            Some(value) => value,
            None => {
                let value = args
                    .get(i)
                    .ok_or_else(|| format!("option {name} needs a value"))?;
                i += 1;
                value.as_str()
            }
        };
        match name {
            "--bind" => {
                opts.bind = value
                    .parse()
                    .map_err(|_| format!("--bind: '{value}' is not an IP address"))?;
            }
            "--delay" => opts.settings.delay_ms = parse_number(name, value, MAX_DELAY_MS)?,
            "--body-size" => opts.settings.body_size = Some(parse_number(name, value, MAX_BYTES)?),
            "--body-delay" => {
                opts.settings.body_delay_ms = parse_number(name, value, MAX_DELAY_MS)?;
            }
            _ => {
                let code = parse_number(name, value, 599)?;
                if code < 200 {
                    return Err(format!("{name}: '{value}' is not a status in 200-599"));
                }
                opts.settings.status = Some(code as u16);
            }
        }
    }
    if opts.ports.is_empty() {
        return Err("no PORT given".to_string());
    }
    Ok(Some(opts))
}

fn parse_number(name: &str, value: &str, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(format!("{name}: '{value}' is above the maximum of {max}")),
        Err(_) => Err(format!("{name}: '{value}' is not a number")),
    }
}
