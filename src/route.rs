//! Routes: which pool a request goes to, by its host and its path. Pure: built once from the
//! config (at start and at each reload), then looked up per request with no allocation and no
//! lock.
//!
//! Matching does not depend on the order of the routes in the file:
//! - an exact host (case-insensitive, port ignored) beats a wildcard `*.suffix` (one label or
//!   more before the suffix; the longest suffix wins), and a wildcard beats a route with no host;
//! - within those, the longest `path_prefix` wins; a prefix matches at a `/` boundary or at the
//!   end of the path (`/v2` matches `/v2` and `/v2/x`, not `/v2x`; `/static/` matches
//!   `/static/x`);
//! - only a full tie (same host, same prefix) falls back to file order.
//!
//! The path is matched as received (the request target's path, before `?`): nothing is decoded
//! or normalised, as HAProxy's `path_beg` and Sozu do, so the backend sees exactly what was
//! matched; `README.md` (*Routing*) says why and what that means for routes used to keep paths
//! apart.
//!
//! Lookup: the host, lowercased once on the stack, is one hash probe in the table of exact
//! hosts, else each of its suffixes at a dot, longest first, one probe each in the table of
//! wildcard suffixes.
//! Each host group keeps its prefixes by length, longest first; a length with one prefix keeps
//! it as is (one comparison), one with several a hash table (one probe): a lookup costs one step
//! per distinct prefix length in the group, whatever the number of routes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// One route as the config gives it (already checked: see `config/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// `api.example.com`, `*.example.com`, or `None` (any host).
    pub host: Option<String>,
    /// `None` matches every path (as `/` would).
    pub path_prefix: Option<String>,
    /// The pool's index (in the pool table the routes were built against).
    pub pool: usize,
    /// Remove the matched prefix before the request goes on (keeping a leading `/`).
    pub strip_prefix: bool,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// The route's index in the file.
    pub route: usize,
    pub pool: usize,
    /// Bytes of the path to strip (0: nothing); the path that goes on starts with `/`.
    pub strip: usize,
}

/// FNV-1a: the keys are the config's prefixes, fixed when the table is built (a client only
/// looks up, so it cannot make the table degrade), and short.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Several routes of one prefix length: prefix → the route (the first in file order among equal
/// ones).
type ByPrefix = FnvMap<Box<[u8]>, usize>;

/// The routes of one host (or of every host), by path prefix.
#[derive(Debug, Default)]
struct Group {
    /// Prefix lengths, longest first.
    by_len: Vec<(usize, Level)>,
}

/// The routes of one prefix length: most often one (compared as it is), else a hash table.
#[derive(Debug)]
enum Level {
    One(Box<[u8]>, usize),
    Many(ByPrefix),
}

impl Level {
    fn get(&self, head: &[u8]) -> Option<usize> {
        match self {
            Level::One(prefix, route) => (**prefix == *head).then_some(*route),
            Level::Many(map) => map.get(head).copied(),
        }
    }
}

impl Group {
    fn add(&mut self, prefix: &[u8], route: usize) {
        let len = prefix.len();
        let at = match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(at) => at,
            Err(at) => {
                self.by_len
                    .insert(at, (len, Level::One(prefix.into(), route)));
                return;
            }
        };
        let Some((_, level)) = self.by_len.get_mut(at) else {
            return;
        };
        // a full tie: the first route in the file keeps it
        match level {
            Level::One(first, _) if **first == *prefix => {}
            Level::One(first, first_route) => {
                let mut map = ByPrefix::default();
                map.insert(std::mem::take(first), *first_route);
                map.insert(prefix.into(), route);
                *level = Level::Many(map);
            }
            Level::Many(map) => {
                map.entry(prefix.into()).or_insert(route);
            }
        }
    }

    /// The route of the longest prefix of `path` that matches at a boundary.
    fn find(&self, path: &[u8]) -> Option<(usize, usize)> {
        for (len, level) in &self.by_len {
            let Some(head) = path.get(..*len) else {
                continue;
            };
            let Some(route) = level.get(head) else {
                continue;
            };
            let at_boundary = *len == 0
                || head.last() == Some(&b'/')
                || matches!(path.get(*len), None | Some(b'/'));
            if at_boundary {
                return Some((route, *len));
            }
        }
        None
    }
}

/// The routes, ready for lookups.
#[derive(Debug, Default)]
pub struct Routes {
    /// Exact hosts, lowercase.
    exact: FnvMap<Box<[u8]>, Group>,
    /// Wildcard suffixes with their dot (`.example.com`), lowercase.
    wildcard: FnvMap<Box<[u8]>, Group>,
    /// Routes with no host.
    any: Group,
    specs: Vec<RouteSpec>,
}

/// Longest host a route can name (a DNS name's limit): a longer `Host` matches no host route.
const MAX_HOST: usize = 253;

fn group_of<'t>(table: &'t mut FnvMap<Box<[u8]>, Group>, key: &[u8]) -> &'t mut Group {
    table.entry(key.into()).or_default()
}

/// The host of a `Host` value: the port and a trailing dot go, brackets stay (an IPv6 literal
/// is matched as written).
pub fn host_only(authority: &[u8]) -> &[u8] {
    let host = if authority.first() == Some(&b'[') {
        match authority.iter().position(|&b| b == b']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        match authority.iter().rposition(|&b| b == b':') {
            Some(colon) => authority.get(..colon).unwrap_or(authority),
            None => authority,
        }
    };
    host.strip_suffix(b".").unwrap_or(host)
}

impl Routes {
    pub fn new(specs: Vec<RouteSpec>) -> Routes {
        let mut routes = Routes::default();
        for (i, spec) in specs.iter().enumerate() {
            let prefix = spec.path_prefix.as_deref().unwrap_or("").as_bytes();
            let group = match spec.host.as_deref() {
                None => &mut routes.any,
                Some(h) => {
                    let lower = h.to_ascii_lowercase();
                    match lower.strip_prefix('*') {
                        Some(suffix) => group_of(&mut routes.wildcard, suffix.as_bytes()),
                        None => group_of(&mut routes.exact, lower.as_bytes()),
                    }
                }
            };
            group.add(prefix, i);
        }
        routes.specs = specs;
        routes
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    /// The route for a request to `host` (a `Host` value: its port is ignored) and `path` (the
    /// target's path, before any `?`). No allocation.
    pub fn find(&self, host: &[u8], path: &[u8]) -> Option<Matched> {
        if self.specs.is_empty() {
            // a config without routes: every request goes to the default pool
            return None;
        }
        // lowercased once, on the stack: the tables hold lowercase hosts
        let host = host_only(host);
        let mut lower = [0u8; MAX_HOST];
        let host = match lower.get_mut(..host.len()) {
            Some(room) if !self.exact.is_empty() || !self.wildcard.is_empty() => {
                room.copy_from_slice(host);
                room.make_ascii_lowercase();
                Some(&*room)
            }
            _ => None,
        };
        let found = host
            .and_then(|h| self.exact.get(h))
            .and_then(|g| g.find(path))
            .or_else(|| host.and_then(|h| self.wildcard_find(h, path)))
            .or_else(|| self.any.find(path))?;
        let (route, len) = found;
        let spec = self.specs.get(route)?;
        let strip = if spec.strip_prefix {
            // keep a leading `/`: `/v2/x` stripped of `/v2` is `/x`, of `/v2/` too
            let keep_slash = path.get(len.saturating_sub(1)) == Some(&b'/');
            if keep_slash {
                len.saturating_sub(1)
            } else {
                len
            }
        } else {
            0
        };
        Some(Matched {
            route,
            pool: spec.pool,
            strip,
        })
    }

    /// Each suffix of `host` (lowercase) at a dot, longest first, with at least one byte before
    /// it.
    fn wildcard_find(&self, host: &[u8], path: &[u8]) -> Option<(usize, usize)> {
        if self.wildcard.is_empty() {
            return None;
        }
        // bounded: one probe per dot in the host
        for (i, &b) in host.iter().enumerate().skip(1) {
            if b != b'.' {
                continue;
            }
            let Some(suffix) = host.get(i..) else {
                break;
            };
            if let Some(found) = self.wildcard.get(suffix).and_then(|g| g.find(path)) {
                return Some(found);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(host: Option<&str>, prefix: Option<&str>, pool: usize) -> RouteSpec {
        RouteSpec {
            host: host.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
            pool,
            strip_prefix: false,
        }
    }

    fn pool(r: &Routes, host: &str, path: &str) -> Option<usize> {
        r.find(host.as_bytes(), path.as_bytes()).map(|m| m.pool)
    }

    #[test]
    fn exact_beats_wildcard_beats_any_host_whatever_the_order() {
        let specs = [
            spec(None, None, 0),
            spec(Some("*.example.com"), None, 1),
            spec(Some("api.example.com"), None, 2),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let r = Routes::new(order.iter().map(|&i| specs[i].clone()).collect());
            assert_eq!(pool(&r, "api.example.com", "/"), Some(2));
            assert_eq!(pool(&r, "API.Example.COM:8080", "/x"), Some(2));
            assert_eq!(pool(&r, "www.example.com", "/"), Some(1));
            assert_eq!(pool(&r, "a.b.example.com", "/"), Some(1));
            assert_eq!(
                pool(&r, "example.com", "/"),
                Some(0),
                "no label before the suffix"
            );
            assert_eq!(pool(&r, "other.org", "/"), Some(0));
        }
    }

    #[test]
    fn the_longest_wildcard_suffix_wins() {
        let r = Routes::new(vec![
            spec(Some("*.example.com"), None, 1),
            spec(Some("*.eu.example.com"), None, 2),
        ]);
        assert_eq!(pool(&r, "x.eu.example.com", "/"), Some(2));
        assert_eq!(pool(&r, "x.us.example.com", "/"), Some(1));
        assert_eq!(pool(&r, "eu.example.com", "/"), Some(1));
    }

    #[test]
    fn the_longest_prefix_wins_at_a_boundary() {
        let r = Routes::new(vec![
            spec(None, Some("/v2"), 1),
            spec(None, Some("/v2/admin/"), 2),
            spec(None, Some("/"), 3),
        ]);
        assert_eq!(pool(&r, "h", "/v2"), Some(1));
        assert_eq!(pool(&r, "h", "/v2/x"), Some(1));
        assert_eq!(pool(&r, "h", "/v2x"), Some(3), "not at a boundary");
        assert_eq!(pool(&r, "h", "/v2/admin/users"), Some(2));
        assert_eq!(
            pool(&r, "h", "/v2/admin"),
            Some(1),
            "/v2/admin/ needs its slash"
        );
        assert_eq!(pool(&r, "h", "/"), Some(3));
    }

    #[test]
    fn a_host_route_with_no_matching_prefix_falls_through_to_the_next_tier() {
        let r = Routes::new(vec![
            spec(Some("api.example.com"), Some("/v1/"), 1),
            spec(None, Some("/"), 2),
        ]);
        assert_eq!(pool(&r, "api.example.com", "/v1/x"), Some(1));
        assert_eq!(pool(&r, "api.example.com", "/v2/x"), Some(2));
    }

    #[test]
    fn a_full_tie_goes_to_the_first_in_the_file() {
        let r = Routes::new(vec![spec(None, Some("/a"), 1), spec(None, Some("/a"), 2)]);
        assert_eq!(pool(&r, "h", "/a"), Some(1));
    }

    #[test]
    fn no_match_is_none() {
        let r = Routes::new(vec![spec(Some("a.example"), None, 1)]);
        assert_eq!(pool(&r, "b.example", "/"), None);
        assert!(Routes::new(Vec::new()).find(b"x", b"/").is_none());
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        let mut s = spec(None, Some("/v2"), 1);
        s.strip_prefix = true;
        let mut t = spec(None, Some("/static/"), 2);
        t.strip_prefix = true;
        let r = Routes::new(vec![s, t]);
        let m = r.find(b"h", b"/v2/x").unwrap();
        assert_eq!(&b"/v2/x"[m.strip..], b"/x");
        let m = r.find(b"h", b"/v2").unwrap();
        assert_eq!(m.strip, 3, "the whole path goes; `/` is sent");
        let m = r.find(b"h", b"/static/a.css").unwrap();
        assert_eq!(&b"/static/a.css"[m.strip..], b"/a.css");
    }

    #[test]
    fn host_only_drops_the_port_and_a_trailing_dot() {
        assert_eq!(host_only(b"a.example:80"), b"a.example");
        assert_eq!(host_only(b"a.example."), b"a.example");
        assert_eq!(host_only(b"[::1]:8080"), b"[::1]");
        assert_eq!(host_only(b"a"), b"a");
    }
}
