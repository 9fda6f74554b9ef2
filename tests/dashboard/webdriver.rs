//! A small W3C WebDriver client for the dashboard tests: starts Debian's `chromedriver` on a port
//! it picks itself (`--port=0`, read back from its output), opens a headless Chromium session
//! with the browser's console log kept (`goog:loggingPrefs`), and speaks the protocol's JSON over
//! plain HTTP/1.1 with the shared raw client (`common::Client`, every read with a timeout).
//!
//! Chromium and chromedriver are required: without them the tests fail with a message saying
//! what to install (`.ci/run` installs them), never skip.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{line_channel, wait_for_line, ChildGuard, Client};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where a program is: `$VAR` if set (`None` if nothing is there), else the Debian path, else
/// the first of `names` on the `PATH`.
fn find_program(var: &str, debian: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    if Path::new(debian).exists() {
        return Some(PathBuf::from(debian));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.exists())
}

/// The browser and its driver, or a failure that says what is missing.
fn programs() -> (PathBuf, PathBuf) {
    let chromium = find_program(
        "CHROMIUM",
        "/usr/bin/chromium",
        &["chromium", "chromium-browser"],
    );
    let driver = find_program("CHROMEDRIVER", "/usr/bin/chromedriver", &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => (c, d),
        (c, d) => panic!(
            "the dashboard tests drive a real headless Chromium and need chromium ({}) and \
             chromedriver ({}): install Debian's `chromium` and `chromium-driver` packages \
             (`apt-get install chromium chromium-driver`; .ci/run does), or point $CHROMIUM and \
             $CHROMEDRIVER at them",
            c.map_or("missing".into(), |p| p.display().to_string()),
            d.map_or("missing".into(), |p| p.display().to_string()),
        ),
    }
}

/// A running chromedriver with one browser session; both end on drop.
pub struct Browser {
    driver: SocketAddr,
    session: String,
    _child: ChildGuard,
}

/// An error answer of the WebDriver protocol.
#[derive(Debug)]
pub struct WdError {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error, self.message)
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        let (chromium, driver) = programs();
        let mut child = Command::new(&driver)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
        let lines = line_channel(child.stdout.take().expect("chromedriver's stdout"));
        let child = ChildGuard(child);
        let line = wait_for_line(
            &lines,
            "started successfully on port",
            Duration::from_secs(20),
        );
        let port: u16 = line
            .trim_end()
            .trim_end_matches('.')
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in chromedriver's {line:?}"));
        // keep draining its output so it never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        let driver_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-extensions",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--lang=en-US",
                    format!("--window-size={width},{height}"),
                ],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
            "timeouts": {"script": 10_000, "pageLoad": 20_000, "implicit": 0},
        }}});
        let answer = request(driver_addr, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("chromedriver did not open a Chromium session: {e}"));
        let session = answer["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {answer}"))
            .to_owned();
        let browser = Browser {
            driver: driver_addr,
            session,
            _child: child,
        };
        browser.viewport(width, height, 1.0, false);
        browser
    }

    /// `method /session/{id}{path}` with `body`: the answer's `value`, or the error.
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, WdError> {
        let full = format!("/session/{}{path}", self.session);
        request(self.driver, method, &full, body)
    }

    /// [`Browser::try_call`] that must succeed.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// The first element matching the CSS `selector`, if any.
    pub fn find(&self, selector: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": selector});
        match self.try_call("POST", "/element", Some(&body)) {
            Ok(v) => v[ELEMENT].as_str().map(str::to_owned),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("find {selector}: {e}"),
        }
    }

    /// Waits for `selector` to match (and returns the element).
    pub fn wait_for(&self, selector: &str, limit: Duration) -> String {
        poll(limit, &format!("an element {selector}"), || {
            self.find(selector)
        })
    }

    /// A real click (the driver moves the pointer there, scrolling it into view).
    pub fn click(&self, selector: &str) {
        let el = self.wait_for(selector, Duration::from_secs(10));
        self.call("POST", &format!("/element/{el}/click"), Some(&json!({})));
    }

    /// Types `text` into the element (a `\u{E007}` at the end presses Enter).
    pub fn type_into(&self, selector: &str, text: &str) {
        let el = self.wait_for(selector, Duration::from_secs(10));
        self.call("POST", &format!("/element/{el}/clear"), Some(&json!({})));
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// The text of the first element matching `selector` (`None`: no such element).
    pub fn text(&self, selector: &str) -> Option<String> {
        let v = self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([selector]),
        );
        v.as_str().map(str::to_owned)
    }

    /// Whether the first element matching `selector` is displayed (not hidden, has a box).
    pub fn visible(&self, selector: &str) -> bool {
        self.js(
            "const e = document.querySelector(arguments[0]); \
             return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
            json!([selector]),
        ) == true
    }

    /// The page's viewport, through the DevTools protocol (exact CSS pixels, and a phone's
    /// device scale and touch when `mobile`).
    pub fn viewport(&self, width: u32, height: u32, scale: f64, mobile: bool) {
        let cdp = |cmd: &str, params: Value| {
            self.call(
                "POST",
                "/goog/cdp/execute",
                Some(&json!({"cmd": cmd, "params": params})),
            )
        };
        cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}),
        );
        cdp(
            "Emulation.setTouchEmulationEnabled",
            json!({"enabled": mobile}),
        );
    }

    /// A PNG of the viewport, saved at `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let bytes = base64_decode(b64.as_str().expect("a base64 screenshot"));
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(path, bytes).expect("save the screenshot");
    }

    /// The browser's console entries since the last call: `(level, message)`.
    pub fn console(&self) -> Vec<(String, String)> {
        let v = self.call("POST", "/se/log", Some(&json!({"type": "browser"})));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.try_call("DELETE", "", None);
    }
}

/// Polls `f` every 50 ms until it gives a value; panics after `limit`, naming `what`.
pub fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One WebDriver request on a fresh connection.
fn request(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WdError> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {driver}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if body.is_some() {
        head.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(&payload);
    let mut c = Client::connect(driver);
    c.send(head.as_bytes());
    let r = c.response();
    let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "chromedriver answered {} with no JSON ({e}): {}",
            r.status,
            r.text()
        )
    });
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if r.status == 200 {
        Ok(value)
    } else {
        Err(WdError {
            status: r.status,
            error: value["error"].as_str().unwrap_or_default().to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        })
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let digits: Vec<u32> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
