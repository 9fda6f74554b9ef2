//! Backend names: how a URL's host becomes addresses, and the thread that looks them up again.
//!
//! [`resolve_all`] is the one resolver: an IP literal is itself; a name is looked up first in
//! `hosts_file` (an `/etc/hosts`-format file of the operator's, read at load: for pinning names,
//! and for tests that must not touch the network), then with the system resolver
//! (`getaddrinfo`, so `/etc/hosts`, DNS and whatever `nsswitch.conf` says). Of the addresses, the
//! IPv4 ones are kept when there are any (so `localhost` is `127.0.0.1`, not also a `::1` nobody
//! listens on), else the IPv6 ones; sorted and without repeats, so two lookups of an unchanged
//! name compare equal. Each address becomes a backend of its own (a headless Kubernetes service
//! or a Consul name spreads over its pods).
//!
//! [`start`] runs the refresh: every `dns_refresh`, on a thread of its own (never a worker), each
//! backend URL of the config file whose host is a name is resolved again and the pool follows
//! ([`Pool::sync`](crate::balancer::Pool::sync)): new addresses join (the health checks pick them
//! up), vanished ones drain. A failed lookup keeps the last addresses and is logged once, until
//! the name resolves again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

/// Names pinned by `hosts_file`: lower-cased name → its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts(HashMap<String, Vec<IpAddr>>);

impl Hosts {
    /// Reads an `/etc/hosts`-format file: `address name [name…]` per line, `#` comments.
    pub fn load(path: &str) -> Result<Hosts, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        Hosts::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Hosts, String> {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_whitespace();
            let Some(first) = words.next() else {
                continue;
            };
            let ip: IpAddr = first
                .parse()
                .map_err(|_| format!("line {}: {first:?} is not an IP address", n + 1))?;
            for name in words {
                let list = names.entry(normalise(name)).or_default();
                if !list.contains(&ip) {
                    list.push(ip);
                }
            }
        }
        Ok(Hosts(names))
    }

    fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.0.get(&normalise(name)).map(Vec::as_slice)
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a backend host is a name (looked up, and again every `dns_refresh`) rather than an IP.
pub fn is_name(host: &str) -> bool {
    host.parse::<IpAddr>().is_err()
}

/// Every address `host:port` stands for (see the module header). This blocks: never call it on
/// a worker.
pub fn resolve_all(
    host: &str,
    port: u16,
    hosts: Option<&Hosts>,
) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = match hosts.and_then(|h| h.get(host)) {
        Some(ips) => ips.iter().map(|&ip| SocketAddr::new(ip, port)).collect(),
        None => {
            // RFC 6761 §6.4: names under "invalid" are answered negatively at once, without
            // asking DNS (a typo'd or placeholder backend fails fast; tests pin such names in a
            // hosts file and stay off the network)
            let name = normalise(host);
            if name == "invalid" || name.ends_with(".invalid") {
                return Err("the \".invalid\" domain never resolves (RFC 6761)".to_owned());
            }
            // fuzzing the config loader (`fuzz/`) must not ask DNS: `localhost` only
            #[cfg(fuzzing)]
            if name != "localhost" {
                return Err("no name lookups while fuzzing".to_owned());
            }
            (host, port)
                .to_socket_addrs()
                .map_err(|e| e.to_string())?
                .collect()
        }
    };
    let v4 = found.iter().any(SocketAddr::is_ipv4);
    let mut addrs: Vec<SocketAddr> = found.into_iter().filter(|a| a.is_ipv4() == v4).collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err("no addresses found".to_owned());
    }
    Ok(addrs)
}

/// What the refresh needs from the rest of the proxy: the names to look up, and what to do with
/// the answers. The admin side (`admin::Plane`) implements it, so a reload's new list of names is
/// the next refresh's.
pub trait Refresh: Send + Sync + 'static {
    /// The backend URLs whose host is a name: `(url, host, port)`, and the hosts file.
    fn names(&self) -> (Vec<(String, String, u16)>, Option<Hosts>);
    /// `url` now stands for `addrs` (sorted): make the pool match.
    fn apply(&self, url: &str, addrs: &[SocketAddr]);
}

/// The running refresh thread.
pub struct DnsHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsHandle {
    /// Stops the thread and waits for it (a lookup in progress finishes first).
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DnsHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the refresh: every `every`, each name is looked up and `refresh.apply`'d.
pub fn start(refresh: Arc<dyn Refresh>, every: Duration) -> std::io::Result<DnsHandle> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let thread = std::thread::Builder::new()
        .name("ferrule-dns".into())
        .spawn(move || run(&*refresh, every, &rx))?;
    Ok(DnsHandle {
        stop: Some(tx),
        thread: Some(thread),
    })
}

fn run(refresh: &dyn Refresh, every: Duration, stop: &Receiver<()>) {
    // names whose last lookup failed: warned about once, until they resolve again
    let mut failing: HashMap<String, String> = HashMap::new();
    loop {
        match stop.recv_timeout(every) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return, // stopped
        }
        let (names, hosts) = refresh.names();
        for (url, host, port) in names {
            if matches!(
                stop.try_recv(),
                Err(crossbeam_channel::TryRecvError::Disconnected)
            ) {
                return; // stopped mid-round: the names left wait for no one
            }
            match resolve_all(&host, port, hosts.as_ref()) {
                Ok(addrs) => {
                    if failing.remove(&url).is_some() {
                        log::info!("dns: {host} resolves again");
                    }
                    refresh.apply(&url, &addrs);
                }
                Err(e) => {
                    if failing.insert(url.clone(), e.clone()).is_none() {
                        log::warn!("dns: cannot resolve {host} ({e}); keeping its last addresses");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_files_pin_names_case_insensitively() {
        let hosts = Hosts::parse(
            "# comment\n127.0.0.2 App.test other # trailing\n\n127.0.0.3 app.test\n::1 six.test\n",
        )
        .unwrap();
        let addrs = resolve_all("app.test.", 80, Some(&hosts)).unwrap();
        let want: Vec<SocketAddr> = vec![
            "127.0.0.2:80".parse().unwrap(),
            "127.0.0.3:80".parse().unwrap(),
        ];
        assert_eq!(addrs, want);
        assert_eq!(
            resolve_all("six.test", 81, Some(&hosts)).unwrap(),
            vec!["[::1]:81".parse::<SocketAddr>().unwrap()]
        );
        assert!(Hosts::parse("not-an-ip name\n")
            .unwrap_err()
            .contains("line 1"));
    }

    #[test]
    fn ip_literals_and_invalid_names_need_no_lookup() {
        assert_eq!(
            resolve_all("10.0.0.1", 8080, None).unwrap(),
            vec!["10.0.0.1:8080".parse::<SocketAddr>().unwrap()]
        );
        assert!(resolve_all("backend.invalid", 80, None).is_err());
        assert!(!is_name("::1") && is_name("example.test"));
    }

    #[test]
    fn ipv4_is_preferred_and_repeats_go() {
        let hosts =
            Hosts::parse("::1 both.test\n127.0.0.9 both.test\n127.0.0.9 both.test\n").unwrap();
        assert_eq!(
            resolve_all("both.test", 1, Some(&hosts)).unwrap(),
            vec!["127.0.0.9:1".parse::<SocketAddr>().unwrap()]
        );
    }
}
