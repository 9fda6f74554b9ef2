//! The dashboard (`GET /` on the admin port) in a real headless Chromium, driven through
//! WebDriver (`dashboard/webdriver.rs`): ferrule in this process in front of real backends on
//! 127.0.0.1, the page polling the live API.
//!
//! - the page's headers (a strict Content-Security-Policy, nosniff, no-store), open without the
//!   token at `/` and `/dashboard`;
//! - the page loads with no console error (the CSP refusing a block would be one), shows every
//!   configured backend, and its actions reach the API: drain (the state changes in the API and
//!   on the page, and traffic sent meanwhile shows in the counters), weight, disable, enable,
//!   add, remove, reload; rows are updated in place, never rebuilt; phone width has no
//!   horizontal scrolling. Screenshots: `dashboard.png`, `dashboard-phone.png` in cargo's target
//!   directory (`CARGO_TARGET_DIR`, else `target/`);
//! - with `admin_token`: the page asks for it, refuses a wrong one, keeps the right one for the
//!   tab;
//! - 200 backends: every row there, each poll rendered fast, the filter works;
//! - traffic control: 429s per second and their count, a backend `ejected` with the time left,
//!   one under slow start with its share;
//! - a page from another origin (127.0.0.5) cannot add a backend (CSRF), though the browser
//!   sends its requests.
//!
//! Chromium and chromedriver must be installed (Debian's `chromium`, `chromium-driver`; `.ci/run`
//! installs them): without them these tests fail, saying so.

use crate::common;
mod webdriver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use common::{dead_addr, Backend, Client, Proxy, Reply, Response, TempDir};
use webdriver::{poll, Browser};

const WAIT: Duration = Duration::from_secs(15);

/// `method path` on the admin API with the token, if any.
fn admin(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut c = Client::connect(addr);
    c.send(
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.response_to(method)
}

/// The backend `id` in `GET /backends`.
fn api_backend(addr: SocketAddr, id: u64, token: Option<&str>) -> Option<Value> {
    let r = admin(addr, "GET", "/backends", token);
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).expect("JSON");
    list["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["id"] == id).cloned())
}

/// The text of `field` in the row of backend `id` on the page.
fn field(browser: &Browser, id: u64, field: &str) -> Option<String> {
    browser.text(&format!(
        r#"#rows .b[data-id="{id}"] [data-field="{field}"]"#
    ))
}

/// A count as the page writes it (`1,234 total`) as a number.
fn count(text: &str) -> u64 {
    let digits: String = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(0)
}

/// Waits for the page to have polled `more` more times (each poll renders everything).
fn polls(browser: &Browser) -> u64 {
    let v = browser.js(
        "return Number(document.documentElement.dataset.polls || 0);",
        json!([]),
    );
    v.as_u64().unwrap_or(0)
}

fn wait_polls(browser: &Browser, more: u64) {
    let start = polls(browser);
    poll(WAIT, &format!("{more} more polls of the page"), || {
        (polls(browser) >= start + more).then_some(())
    });
}

/// The console's error entries, but those `allowed` says are expected.
fn console_errors(browser: &Browser, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    browser
        .console()
        .into_iter()
        .filter(|(level, message)| level == "SEVERE" && !allowed(message))
        .map(|(_, message)| message)
        .collect()
}

/// Where cargo puts its output, for the screenshots: `CARGO_TARGET_DIR` when set, else the
/// directory the test binary sits in (`<target>/<profile>/deps/`, or `<target>/<triple>/...`),
/// else `./target`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().ok();
    let from_exe = exe.as_deref().and_then(|exe| {
        let deps = exe.parent().filter(|d| d.ends_with("deps"))?;
        deps.parent()?.parent().map(Path::to_path_buf)
    });
    from_exe.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Traffic through the proxy, one request after another, until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let mut c = Client::connect(addr);
                c.send(
                    format!("GET /t{i} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
                assert_eq!(c.response().status, 200, "request {i} through the proxy");
                i += 1;
                // a steady trickle (about 50 requests a second), not a benchmark
                thread::sleep(Duration::from_millis(20));
            }
        });
        Traffic {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the traffic thread");
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A proxy started from a config file in `dir` (so that `POST /reload` has a file to read).
fn proxy_from_file(dir: &Path, config: &Value) -> (Proxy, PathBuf) {
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).expect("write the config");
    let loaded = ferrule::Config::load(&path).expect("test config is valid");
    let handle = ferrule::start_file(&loaded, Some(path.clone())).expect("proxy starts");
    (Proxy { handle }, path)
}

fn backends_config(addrs: &[SocketAddr], extra: Value) -> Value {
    let list: Vec<Value> = addrs
        .iter()
        .map(|a| json!({"url": format!("http://{a}"), "weight": 1}))
        .collect();
    let mut cfg = json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 2,
        "access_log": false, "backends": list,
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

/// Backend `id` in `GET /pools/{pool}/backends`.
fn pool_backend(addr: SocketAddr, pool: &str, id: u64) -> Option<Value> {
    let r = admin(addr, "GET", &format!("/pools/{pool}/backends"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).expect("JSON");
    list["backends"]
        .as_array()
        .and_then(|l| l.iter().find(|b| b["id"] == id).cloned())
}

/// The ids of the rows the page shows (not hidden by a filter).
fn shown_ids(browser: &Browser) -> Vec<u64> {
    let v = browser.js(
        "return [...document.querySelectorAll('#rows .b')].filter(e => e.offsetParent !== null).map(e => Number(e.dataset.id));",
        json!([]),
    );
    serde_json::from_value(v).expect("ids")
}

// Proves the page groups backends by pool (a heading per pool, each row under its pool), filters
// by pool, and that its actions act on a backend of a second pool through
// /pools/{name}/backends: drain, weight, add (to the pool chosen in the form) and remove, each
// seen in that pool in the API, the default pool untouched.
#[test]
fn the_dashboard_groups_by_pool_and_acts_on_a_second_pool() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let a2 = Backend::start("a2");
    let extra = Backend::start("a3");
    let config = backends_config(
        &[d.addr],
        json!({
            "health_check_method": "none",
            "pools": {"api": {
                "backends": [
                    {"url": format!("http://{}", a1.addr)},
                    {"url": format!("http://{}", a2.addr)},
                ],
                "strategy": "least-conn",
            }},
            "routes": [{"host": "api.test", "pool": "api"}],
        }),
    );
    let proxy = Proxy::from_json(&config.to_string());
    let api = proxy.admin();
    let browser = Browser::start(1440, 1000);
    browser.goto(&format!("http://{api}/"));
    for id in 0..3u64 {
        poll(WAIT, &format!("backend {id} on the page"), || {
            browser.find(&format!(r#"#rows .b[data-id="{id}"] .url"#))
        });
    }
    // grouped: each row under its pool's heading
    let head = r#".pool-group[data-pool="api"] .pool-head"#;
    assert!(browser.visible(head), "the api pool has a heading");
    assert!(browser
        .text(head)
        .is_some_and(|t| t.contains("api") && t.contains("least-conn")));
    for (id, pool) in [(0, "default"), (1, "api"), (2, "api")] {
        assert!(
            browser
                .find(&format!(
                    r#".pool-group[data-pool="{pool}"] .b[data-id="{id}"]"#
                ))
                .is_some(),
            "backend {id} under {pool}"
        );
    }
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors on load: {errors:?}");

    // the pool filter
    let choose = |select: &str, value: &str| {
        browser.js(
            "const s = document.getElementById(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('change'));",
            json!([select, value]),
        );
    };
    choose("pool-filter", "api");
    poll(WAIT, "only the api pool shown", || {
        (shown_ids(&browser) == [1, 2]).then_some(())
    });
    choose("pool-filter", "");
    poll(WAIT, "every pool shown again", || {
        (shown_ids(&browser) == [0, 1, 2]).then_some(())
    });

    // drain backend 1 (api) from the page
    browser.click(r#"#rows .b[data-id="1"] button[data-action="drain"]"#);
    poll(WAIT, "backend 1 draining in the api pool", || {
        (pool_backend(api, "api", 1)?["state"] == "draining").then_some(())
    });
    poll(WAIT, "backend 1 draining on the page", || {
        (field(&browser, 1, "state")? == "draining").then_some(())
    });
    // weight of backend 2 (api)
    browser.click(r#"#rows .b[data-id="2"] button[data-action="weight"]"#);
    browser.type_into(r#"#rows .b[data-id="2"] .wedit input"#, "5\u{E007}");
    poll(WAIT, "backend 2 weight 5 in the api pool", || {
        (pool_backend(api, "api", 2)?["weight"] == 5).then_some(())
    });
    // add to the api pool
    let url = format!("http://{}", extra.addr);
    choose("add-pool", "api");
    browser.type_into("#add-url", &url);
    browser.click("#add-submit");
    let added = poll(WAIT, "the added backend in the api pool", || {
        let r = admin(api, "GET", "/pools/api/backends", None);
        let list: Value = serde_json::from_slice(&r.body).ok()?;
        list["backends"]
            .as_array()?
            .iter()
            .find(|b| b["url"] == url.as_str())
            .and_then(|b| b["id"].as_u64())
    });
    assert!(
        api_backend(api, added, None).is_none(),
        "not in the default pool"
    );
    poll(WAIT, "the added backend under api on the page", || {
        browser.find(&format!(
            r#".pool-group[data-pool="api"] .b[data-id="{added}"]"#
        ))
    });
    // remove it (two clicks)
    let remove = format!(r#"#rows .b[data-id="{added}"] button[data-action="remove"]"#);
    browser.click(&remove);
    browser.click(&remove);
    poll(
        WAIT,
        "the added backend gone from the api pool and the page",
        || {
            let gone = pool_backend(api, "api", added).is_none_or(|b| b["removed"] == true);
            (gone
                && browser
                    .find(&format!(r#"#rows .b[data-id="{added}"]"#))
                    .is_none())
            .then_some(())
        },
    );
    // the default pool untouched
    let d0 = api_backend(api, 0, None).expect("backend 0");
    assert_eq!((&d0["state"], &d0["weight"]), (&json!("up"), &json!(1)));
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

// Proves the traffic controls show on the page: requests over a rate limit as 429/s and a
// count; a backend ejected by outlier detection as `ejected` with the time left; one enabled
// again under slow start with its share.
#[test]
fn the_dashboard_shows_rate_limits_ejections_and_slow_start() {
    let good = Backend::start("good");
    let bad = Backend::with_handler("bad", |_, _| {
        Reply::Bytes(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec())
    });
    let config = backends_config(
        &[good.addr, bad.addr],
        json!({
            "strategy": "round-robin", "health_check_method": "none", "max_fails": 0,
            "slow_start": "10m",
            "outlier_detection": {"consecutive_5xx": 2, "base_ejection": "10m",
                                  "max_ejected_percent": 50},
            "rate_limit": {"requests_per_second": 0.01, "burst": 10},
        }),
    );
    let dir = TempDir::new("dashboard-traffic");
    let (proxy, _) = proxy_from_file(&dir.path, &config);
    let api = proxy.admin();
    let browser = Browser::start(1440, 1000);
    browser.goto(&format!("http://{api}/"));
    poll(WAIT, "both backends on the page", || {
        (field(&browser, 0, "state")? == "up" && field(&browser, 1, "state")? == "up").then_some(())
    });

    // 16 requests from one client: the burst's 10 pass (bad's 500s eject it), 6 get 429
    let mut c = Client::connect(proxy.addr());
    let statuses: Vec<u16> = (0..16)
        .map(|_| {
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            c.response().status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        6,
        "{statuses:?}"
    );
    assert_eq!(
        api_backend(api, 1, None).expect("backend 1")["state"],
        "ejected"
    );

    poll(WAIT, "the 429s counted on the page", || {
        let text = browser.text("#g-limited")?;
        let limited = count(text.split('·').nth(1)?);
        (limited == 6).then_some(())
    });
    poll(
        WAIT,
        "backend 1 ejected on the page, with the time left",
        || {
            let ramp = field(&browser, 1, "ramp")?;
            (field(&browser, 1, "state")? == "ejected" && ramp.starts_with("back in "))
                .then_some(())
        },
    );

    // backend 0 disabled and enabled again from the page: under slow start
    browser.click(r#"#rows .b[data-id="0"] button[data-action="disable"]"#);
    poll(WAIT, "backend 0 disabled in the API", || {
        (api_backend(api, 0, None)?["state"] == "disabled").then_some(())
    });
    browser.click(r#"#rows .b[data-id="0"] button[data-action="enable"]"#);
    poll(WAIT, "backend 0 under slow start on the page", || {
        let ramp = field(&browser, 0, "ramp")?;
        (field(&browser, 0, "state")? == "up" && ramp.starts_with("slow start ")).then_some(())
    });
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

// Proves the page is served open at / and /dashboard, as HTML, with a strict policy: nothing
// by default, the inline script and style by hash only, fetches to this origin only; nosniff and
// no-store. The data endpoints still need the token.
#[test]
fn the_page_is_open_self_contained_and_strict() {
    let a = Backend::start("a");
    let proxy = Proxy::start(
        &[a.addr],
        json!({"health_check_method": "none", "admin_token": "page-token-0123456789"}),
    );
    let page = admin(proxy.admin(), "GET", "/", None);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "script-src 'sha256-",
        "style-src 'sha256-",
        "connect-src 'self'",
        "img-src data:",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html:.80}");
    assert!(html.contains("<script>") && html.contains("<style>"));
    let same = admin(proxy.admin(), "GET", "/dashboard", None);
    assert_eq!(same.status, 200);
    assert_eq!(same.body, page.body, "/dashboard is the same page");
    assert_eq!(admin(proxy.admin(), "GET", "/backends", None).status, 401);
    assert_eq!(admin(proxy.admin(), "GET", "/stats", None).status, 401);
    assert_eq!(
        admin(proxy.admin(), "POST", "/", None).status,
        401,
        "only GET is open"
    );
}

// Proves, in a real browser: the page loads with no console error, shows the configured
// backends (one down: its checks fail), and a click on "drain" changes that backend's state in
// the API and on the page while the traffic sent meanwhile shows in the counters (the drained
// one's stop; the others' go on); the weight, disable, enable, add, remove and reload controls
// work through the API; rows are updated in place; at phone width nothing scrolls sideways.
// Saves target/dashboard.png and target/dashboard-phone.png.
#[test]
fn the_dashboard_shows_the_pool_and_acts_on_it() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let extra = Backend::start("d");
    let dead = dead_addr();
    let dir = TempDir::new("dashboard");
    let settings = json!({
        "strategy": "round-robin",
        "health_check_frequency": "250ms",
        "health_check_fall": 2,
    });
    let mut config = backends_config(&[a.addr, b.addr, c.addr, dead.addr], settings);
    let (proxy, config_path) = proxy_from_file(&dir.path, &config);
    let api = proxy.admin();

    let browser = Browser::start(1440, 1000);
    browser.goto(&format!("http://{api}/"));
    // every configured backend, by id, with its URL
    let urls: Vec<String> = [a.addr, b.addr, c.addr, dead.addr]
        .iter()
        .map(|x| format!("http://{x}"))
        .collect();
    for (id, url) in urls.iter().enumerate() {
        poll(WAIT, &format!("backend {id} on the page"), || {
            let shown = browser.text(&format!(r#"#rows .b[data-id="{id}"] .url"#))?;
            (shown == *url).then_some(())
        });
    }
    assert_eq!(browser.text("#strategy").as_deref(), Some("round-robin"));
    poll(WAIT, "the dead backend shown down", || {
        (field(&browser, 3, "state")? == "down").then_some(())
    });
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors on load: {errors:?}");
    // every row element is kept from poll to poll
    browser.js(
        "document.querySelectorAll('#rows .b').forEach(e => { e.__kept = e.dataset.id; });",
        json!([]),
    );

    // traffic meanwhile: it shows in backend 1's counters
    let mut traffic = Traffic::start(proxy.addr());
    poll(WAIT, "backend 1's requests counted on the page", || {
        let total = count(&field(&browser, 1, "total")?);
        let rate: f64 = field(&browser, 1, "rps")?.parse().unwrap_or(0.0);
        (total >= 10 && rate > 0.0).then_some(())
    });

    // drain backend 1 from the page
    browser.click(r#"#rows .b[data-id="1"] button[data-action="drain"]"#);
    poll(WAIT, "backend 1 draining in the API", || {
        (api_backend(api, 1, None)?["state"] == "draining").then_some(())
    });
    poll(WAIT, "backend 1 draining on the page", || {
        (field(&browser, 1, "state")? == "draining").then_some(())
    });
    assert!(
        !browser.visible(r#"#rows .b[data-id="1"] button[data-action="drain"]"#),
        "no drain button on a draining backend"
    );
    // the drained one takes no more requests; the page's count of it settles on the API's,
    // while backend 0's goes on growing with the traffic
    let drained = api_backend(api, 1, None).expect("backend 1")["total_requests"]
        .as_u64()
        .expect("a count");
    let zero_before = count(&field(&browser, 0, "total").expect("backend 0's total"));
    poll(WAIT, "backend 0's count growing on the page", || {
        (count(&field(&browser, 0, "total")?) > zero_before + 10).then_some(())
    });
    assert_eq!(count(&field(&browser, 1, "total").expect("total")), drained);

    // weight, from the inline editor
    browser.click(r#"#rows .b[data-id="2"] button[data-action="weight"]"#);
    browser.type_into(r#"#rows .b[data-id="2"] .wedit input"#, "5\u{E007}");
    poll(WAIT, "backend 2's weight 5 in the API", || {
        (api_backend(api, 2, None)?["weight"] == 5).then_some(())
    });
    poll(WAIT, "backend 2's weight 5 on the page", || {
        (field(&browser, 2, "weight")? == "5").then_some(())
    });
    // disable
    browser.click(r#"#rows .b[data-id="2"] button[data-action="disable"]"#);
    poll(
        WAIT,
        "backend 2 disabled in the API and on the page",
        || {
            let api_state = api_backend(api, 2, None)?["state"].clone();
            (api_state == "disabled" && field(&browser, 2, "state")? == "disabled").then_some(())
        },
    );
    // add
    let url = format!("http://{}", extra.addr);
    browser.type_into("#add-url", &url);
    browser.type_into("#add-weight", "2");
    browser.click("#add-submit");
    poll(WAIT, "the added backend on the page", || {
        let shown = browser.text(r#"#rows .b[data-id="4"] .url"#)?;
        (shown == url).then_some(())
    });
    let added = api_backend(api, 4, None).expect("backend 4 in the API");
    assert_eq!(added["url"], url.as_str());
    assert_eq!(added["weight"], 2);
    poll(WAIT, "the added backend's requests on the page", || {
        (count(&field(&browser, 4, "total")?) > 0).then_some(())
    });
    // let the charts fill a little, then the desktop screenshot
    wait_polls(&browser, 6);
    browser.js("window.scrollTo(0, 0);", json!([]));
    browser.screenshot(&target_dir().join("dashboard.png"));

    // enable the drained one again
    browser.click(r#"#rows .b[data-id="1"] button[data-action="enable"]"#);
    poll(
        WAIT,
        "backend 1 up again in the API and on the page",
        || {
            let up = api_backend(api, 1, None)?["state"] == "up";
            (up && field(&browser, 1, "state")? == "up").then_some(())
        },
    );
    // remove takes two clicks
    let remove = r#"#rows .b[data-id="4"] button[data-action="remove"]"#;
    browser.click(remove);
    assert_eq!(
        browser.text(remove).as_deref(),
        Some("Confirm remove"),
        "the first click only arms it"
    );
    assert!(api_backend(api, 4, None).is_some());
    browser.click(remove);
    poll(WAIT, "backend 4 gone from the API and the page", || {
        let gone = api_backend(api, 4, None).is_none_or(|b| b["removed"] == true);
        (gone && browser.find(r#"#rows .b[data-id="4"]"#).is_none()).then_some(())
    });
    // reload: the file now gives backend 0 weight 3
    config["backends"][0]["weight"] = json!(3);
    std::fs::write(&config_path, config.to_string()).expect("rewrite the config");
    browser.click("#reload");
    poll(WAIT, "the reload reported", || {
        let t = browser.text(".toast.ok")?;
        t.contains("config reloaded").then_some(())
    });
    poll(WAIT, "backend 0's weight from the file", || {
        (api_backend(api, 0, None)?["weight"] == 3 && field(&browser, 0, "weight")? == "3")
            .then_some(())
    });

    // the rows of the first poll are the rows now
    let kept = browser.js(
        "return [0, 1, 2, 3].every(id => { \
           const e = document.querySelector('#rows .b[data-id=\"' + id + '\"]'); \
           return e && e.__kept === String(id); });",
        json!([]),
    );
    assert_eq!(kept, true, "rows were rebuilt instead of updated in place");

    // phone width: cards, no sideways scrolling
    browser.viewport(375, 812, 2.0, true);
    poll(WAIT, "the card layout at 375 px", || {
        let v = browser.js(
            "return getComputedStyle(document.querySelector('.thead')).display;",
            json!([]),
        );
        (v == "none").then_some(())
    });
    wait_polls(&browser, 1);
    let width = browser.js(
        "return [document.documentElement.scrollWidth, window.innerWidth];",
        json!([]),
    );
    assert_eq!(width[1], 375, "{width}");
    assert!(
        width[0].as_u64().unwrap_or(u64::MAX) <= 375,
        "the page scrolls sideways at 375 px: {width}"
    );
    browser.js("window.scrollTo(0, 0);", json!([]));
    browser.screenshot(&target_dir().join("dashboard-phone.png"));

    // the counters on the page end equal to the API's
    traffic.stop();
    for id in [0u64, 1, 2] {
        let want = api_backend(api, id, None).expect("listed")["total_requests"]
            .as_u64()
            .expect("a count");
        poll(
            WAIT,
            &format!("backend {id}'s count on the page = the API's"),
            || (count(&field(&browser, id, "total")?) == want).then_some(()),
        );
    }
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

// Proves the token prompt: with admin_token set the page asks for it on its first 401, refuses
// a wrong one (asking again, showing no data), loads the data with the right one, keeps it for
// the tab (a reload of the page does not ask again) and sends it with its actions. The only
// console errors are the browser's own notes of the 401 answers.
#[test]
fn the_token_prompt_refuses_a_wrong_token_and_keeps_the_right_one() {
    let a = Backend::start("a");
    let token = "dash-s3cret-0123456789";
    let proxy = Proxy::start(
        &[a.addr],
        json!({"health_check_method": "none", "admin_token": token}),
    );
    let api = proxy.admin();
    let browser = Browser::start(1280, 900);
    browser.goto(&format!("http://{api}/dashboard"));
    poll(WAIT, "the token prompt", || {
        browser.visible("#auth-token").then_some(())
    });
    assert_eq!(browser.find("#rows .b"), None, "no data without the token");

    browser.screenshot(&target_dir().join("dashboard-token.png"));
    browser.type_into("#auth-token", "not-the-token\u{E007}");
    poll(WAIT, "the wrong token refused", || {
        let msg = browser.text("#auth-msg")?;
        (browser.visible("#auth-token") && msg.contains("refused")).then_some(())
    });
    assert_eq!(browser.find("#rows .b"), None, "no data with a wrong token");

    browser.type_into("#auth-token", token);
    browser.click("#auth-submit");
    let url = format!("http://{}", a.addr);
    poll(WAIT, "the data with the right token", || {
        (browser.text(r#"#rows .b[data-id="0"] .url"#)? == url).then_some(())
    });
    assert!(!browser.visible("#auth"), "the prompt is gone");
    let kept = browser.js(
        "return sessionStorage.getItem('ferrule.adminToken');",
        json!([]),
    );
    assert_eq!(kept, token);

    // the page again: no prompt, the token is kept for the tab
    browser.goto(&format!("http://{api}/"));
    poll(WAIT, "the data after a reload of the page", || {
        (browser.text(r#"#rows .b[data-id="0"] .url"#)? == url).then_some(())
    });
    assert!(!browser.visible("#auth"));
    // actions send it too
    browser.click(r#"#rows .b[data-id="0"] button[data-action="disable"]"#);
    poll(WAIT, "backend 0 disabled", || {
        (api_backend(api, 0, Some(token))?["state"] == "disabled").then_some(())
    });

    let errors = console_errors(&browser, |m| {
        m.contains("status of 401 (Unauthorized)")
            && (m.contains("/pools") || m.contains("/backends") || m.contains("/stats"))
    });
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

// Proves the page stays quick with 200 backends: every one gets its row, a poll renders in
// well under its second, rows are kept from poll to poll, and the filter narrows the list.
#[test]
fn two_hundred_backends_render_in_place_and_fast() {
    // never contacted: no health checks, no traffic
    let addrs: Vec<SocketAddr> = (0..200u16)
        .map(|i| SocketAddr::from(([127, 0, 0, 1], 20_000 + i)))
        .collect();
    let proxy = Proxy::start(&addrs, json!({"health_check_method": "none"}));
    let browser = Browser::start(1440, 1000);
    browser.goto(&format!("http://{}/", proxy.admin()));
    poll(WAIT, "200 rows", || {
        let n = browser.js(
            "return document.querySelectorAll('#rows .b').length;",
            json!([]),
        );
        (n == 200).then_some(())
    });
    browser.js(
        "document.querySelectorAll('#rows .b').forEach(e => { e.__kept = e.dataset.id; });",
        json!([]),
    );
    let mut slowest = 0.0f64;
    for _ in 0..5 {
        wait_polls(&browser, 1);
        let ms = browser.js(
            "return Number(document.documentElement.dataset.renderMs);",
            json!([]),
        );
        slowest = slowest.max(ms.as_f64().unwrap_or(f64::MAX));
    }
    assert!(
        slowest < 150.0,
        "a poll of 200 backends took {slowest} ms to render"
    );
    let kept = browser.js(
        "return [...document.querySelectorAll('#rows .b')].every(e => e.__kept === e.dataset.id);",
        json!([]),
    );
    assert_eq!(kept, true, "rows were rebuilt");
    browser.type_into("#filter", ":20150");
    poll(WAIT, "the filter narrowing to one backend", || {
        let shown = browser.js(
            "return [...document.querySelectorAll('#rows .b')].filter(e => !e.hidden).map(e => e.dataset.id);",
            json!([]),
        );
        (shown == json!(["150"])).then_some(())
    });
    let errors = console_errors(&browser, |_| false);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    println!("200 backends: the slowest of 5 polls rendered in {slowest} ms");
}

/// A page on another origin (`http://127.0.0.5:PORT/`): a tiny HTTP server that answers every
/// request with `html`. 127.0.0.5 is loopback too: nothing leaves the host.
fn foreign_page(html: String) -> Backend {
    let listener = std::net::TcpListener::bind("127.0.0.5:0").expect("bind 127.0.0.5");
    Backend::on(listener, "foreign", move |_, _| {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n\r\n",
            html.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(html.as_bytes());
        common::Reply::Bytes(bytes)
    })
}

// Proves, in a real browser, the CSRF fix: a page from another origin (127.0.0.5) sends the
// issue's request, a `no-cors` fetch with a text/plain JSON body (no preflight), and the same
// with a form type, to the admin API; the backend is not added. The page's same kind of request
// to the proxy port does arrive (with the page's Origin), so the browser did send them.
#[test]
fn a_page_from_another_origin_cannot_add_a_backend() {
    let a = Backend::start("a");
    let target = Backend::start("target");
    let proxy = Proxy::start(&[a.addr], json!({"health_check_method": "none"}));
    let api = proxy.admin();
    let body = json!({"url": format!("http://{}", target.addr), "weight": 10000}).to_string();
    let html = format!(
        "<!doctype html><title>loading</title><script>\n\
         const body = {body:?};\n\
         Promise.allSettled([\n\
           fetch('http://{api}/backends', {{method: 'POST', mode: 'no-cors', body}}),\n\
           fetch('http://{api}/backends', {{method: 'POST', mode: 'no-cors', body,\n\
             headers: {{'Content-Type': 'application/x-www-form-urlencoded'}}}}),\n\
           fetch('http://{proxy}/csrf-probe', {{method: 'POST', mode: 'no-cors', body}}),\n\
         ]).then(r => {{ document.title = 'sent ' + r.map(x => x.status).join(','); }});\n\
         </script>",
        proxy = proxy.addr(),
    );
    let page = foreign_page(html);
    let browser = Browser::start(800, 600);
    browser.goto(&format!("http://{}/", page.addr));
    poll(WAIT, "the page's requests settled", || {
        let title = browser.js("return document.title;", json!([]));
        title
            .as_str()
            .is_some_and(|t| t.starts_with("sent"))
            .then_some(())
    });
    // the control: the browser did send a cross-origin no-cors POST to 127.0.0.1 (to whichever
    // backend the proxy chose: "target" too, had the attack worked)
    let probe = a
        .record
        .requests()
        .into_iter()
        .chain(target.record.requests())
        .find(|r| r.target == "/csrf-probe")
        .expect("the page's request to the proxy port arrived");
    assert_eq!(probe.header("origin"), Some(page_origin(&page).as_str()));
    assert_eq!(probe.body, body.as_bytes());
    // and the admin API took none of them
    let list = admin(api, "GET", "/backends", None);
    assert_eq!(list.status, 200);
    let list: Value = serde_json::from_slice(&list.body).expect("JSON");
    let urls: Vec<&str> = list["backends"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["url"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(urls, [format!("http://{}", a.addr)], "no backend was added");
    assert_eq!(target.record.count(), 0);
}

fn page_origin(page: &Backend) -> String {
    format!("http://{}", page.addr)
}
