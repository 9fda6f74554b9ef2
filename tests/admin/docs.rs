//! The admin API's two self-descriptions held to the truth: `/openapi.json` (every documented
//! operation called on a live proxy, its status one the document lists and its body fitting the
//! schema; the router serving exactly the documented operations) and `/metrics` (valid for
//! `promtool check metrics`, values following the traffic).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::common::{Backend, Proxy};
use super::{json_of, quiet_proxy, send, wait_until, Api};

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Checks `value` against `schema` (the subset of OpenAPI 3.0 schemas the document uses:
/// `$ref`, `allOf`, `type`, `nullable`, `required`, `properties`, `additionalProperties: false`,
/// `items`, `enum`, `minimum`).
fn fits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: no schema {r}"));
        }
        return fits(doc, target, value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().try_for_each(|s| fits(doc, s, value, at));
    }
    if value.is_null() {
        return match schema["nullable"] == true || schema["type"].is_null() {
            true => Ok(()),
            false => Err(format!("{at}: null where the schema is not nullable")),
        };
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        return Err(format!("{at}: {value} is not of type {}", schema["type"]));
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let (Some(min), Some(n)) = (schema["minimum"].as_i64(), value.as_i64()) {
        if n < min {
            return Err(format!("{at}: {n} is below {min}"));
        }
    }
    if let Some(object) = value.as_object() {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{at}: {key} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, v) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => fits(doc, s, v, &format!("{at}.{key}"))?,
                None if schema["additionalProperties"] == false => {
                    return Err(format!("{at}: {key} is not documented"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            fits(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Every `(METHOD, path, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, ops)| {
            let ops = ops.as_object().expect("a path item");
            ops.iter()
                .map(|(m, op)| (m.to_uppercase(), path.clone(), op.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Calls `method path` with the operation's request example; checks the answer is listed and
/// fits; returns its status.
fn check_call(
    doc: &Value,
    api: &Api,
    method: &str,
    path: &str,
    op: &Value,
    body: Option<&[u8]>,
) -> u16 {
    let r = api.raw(method, path, body);
    let listed = &op["responses"][r.status.to_string()];
    assert!(
        listed.is_object(),
        "{method} {path} answered {}, which the document does not list: {}",
        r.status,
        r.text()
    );
    let content = listed["content"].as_object();
    let Some(content) = content else {
        return r.status;
    };
    let served = r.header("content-type").unwrap_or_default();
    let (kind, media) = content
        .iter()
        .find(|(kind, _)| served.starts_with(kind.as_str()))
        .unwrap_or_else(|| panic!("{method} {path}: served as {served:?}, documented {content:?}"));
    if kind == "application/json" {
        let value = json_of(&r);
        if let Err(e) = fits(doc, &media["schema"], &value, "body") {
            panic!("{method} {path} ({}): {e}\n{value}", r.status);
        }
    }
    for (name, _) in listed["headers"].as_object().into_iter().flatten() {
        assert!(
            r.header(name).is_some(),
            "{method} {path}: no {name} header"
        );
    }
    r.status
}

// Proves /openapi.json is true: the router serves exactly the documented operations (and
// answers 405 with the documented methods in Allow for the others); every operation, called
// with its example, answers a listed status with a body that fits its schema; so do its error
// cases (an unknown id, a bad body, no token), which must be listed too.
#[test]
fn the_openapi_document_describes_the_live_router() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let doc = api.get("/openapi.json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.0")),
        "{}",
        doc["openapi"]
    );
    // without a token, nothing asks for one
    assert!(doc.get("security").is_none(), "{}", doc["security"]);
    assert!(doc["components"].get("securitySchemes").is_none());
    assert!(operations(&doc)
        .iter()
        .all(|(_, _, op)| op.get("security").is_none()));
    // the url's schema is the parser's shape (a unit test holds the pattern to the parser)
    let url = &doc["components"]["schemas"]["NewBackend"]["properties"]["url"];
    assert_eq!(url["pattern"], ferrule::config::URL_PATTERN);
    assert_eq!(url["maxLength"], ferrule::config::URL_MAX_LENGTH);
    let ops = operations(&doc);
    let documented: BTreeSet<(String, String)> =
        ops.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let served: BTreeSet<(String, String)> = ferrule::admin::routes()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    assert_eq!(
        documented, served,
        "documented operations = routed operations"
    );

    let mut allowed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (m, p, _) in &ops {
        allowed.entry(p.clone()).or_default().push(m.clone());
    }
    for (path, methods) in &allowed {
        let concrete = path.replace("{id}", "0").replace("{name}", "default");
        for method in METHODS.iter().filter(|m| !methods.iter().any(|d| d == *m)) {
            let r = api.raw(method, &concrete, None);
            assert_eq!(r.status, 405, "{method} {concrete}");
            let mut allow: Vec<String> = r
                .header("allow")
                .unwrap_or_default()
                .split(", ")
                .map(str::to_owned)
                .collect();
            allow.sort();
            let mut want = methods.clone();
            want.sort();
            assert_eq!(allow, want, "Allow of {concrete}");
        }
    }

    let mut extra = Vec::new();
    let mut statuses = BTreeSet::new();
    for (method, path, op) in &ops {
        let example = op["requestBody"]["content"]["application/json"]["example"].clone();
        let body = (!example.is_null()).then(|| example.to_string().into_bytes());
        // `{name}`: the default pool (`tests/pools_admin.rs` covers the others)
        let path = &path.replace("{name}", "default");
        let concrete = if path.contains("{id}") {
            // a backend of its own, so that a DELETE does not take away another's
            let b = Backend::start("doc");
            let id = api.add(b.addr, json!({}));
            extra.push(b);
            // the unknown id is a listed answer too
            let unknown = path.replace("{id}", "999999");
            assert_eq!(
                check_call(&doc, &api, method, &unknown, op, body.as_deref()),
                404
            );
            path.replace("{id}", &id.to_string())
        } else {
            path.clone()
        };
        let status = check_call(&doc, &api, method, &concrete, op, body.as_deref());
        statuses.insert((method.clone(), path.clone(), status));
        if body.is_some() {
            assert_eq!(
                check_call(&doc, &api, method, &concrete, op, Some(b"{")),
                400,
                "{method} {path}"
            );
        }
    }
    // the examples succeed
    for (method, path, status) in &statuses {
        let expected = match (method.as_str(), path.as_str()) {
            ("POST", "/backends") => 201,
            // the same example again, in the same pool by its other path
            ("POST", "/pools/default/backends") => 409,
            ("POST", "/reload-certs") => 409,
            // started from a Config value, not a file: there is nothing to reload
            ("POST", "/reload") => 409,
            _ => 200,
        };
        assert_eq!(*status, expected, "{method} {path}");
    }

    // with a token, 401 is a listed answer of every operation but GET /health and the
    // dashboard page (which holds no data: it asks for the token)
    let guarded = quiet_proxy(&[a.addr], json!({"admin_token": "doc-token-0123456789"}));
    let outsider = Api::of(&guarded);
    let insider = Api {
        token: Some("doc-token-0123456789".into()),
        ..outsider.clone()
    };
    let guarded_doc = insider.get("/openapi.json");
    assert_eq!(guarded_doc["security"], json!([{"bearer": []}]));
    assert_eq!(
        guarded_doc["components"]["securitySchemes"]["bearer"],
        json!({"type": "http", "scheme": "bearer"})
    );
    for (method, path, op) in &ops {
        let concrete = path.replace("{id}", "0").replace("{name}", "default");
        let status = check_call(&doc, &outsider, method, &concrete, op, None);
        let open = ["/health", "/", "/dashboard"].contains(&path.as_str());
        let want = if open { 200 } else { 401 };
        assert_eq!(status, want, "{method} {path} without the token");
    }
}

/// The samples of a Prometheus text: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `GET /metrics`, checked for its content type.
fn metrics(proxy: &Proxy) -> String {
    let r = send(proxy.admin(), "GET", "/metrics", &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

/// Runs `promtool check metrics` on `text`; `None` when promtool is not installed.
fn promtool(text: &str) -> Option<(bool, String)> {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool's verdict");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), said))
}

// Proves /metrics is valid Prometheus text (promtool check metrics, lint included) with HELP and
// TYPE for every family, and that its values follow the traffic and the backend's state: the
// request and response counters, the histogram (cumulative buckets, +Inf = count), in flight,
// state gauges, and the health check gauges once a check ran.
#[test]
fn metrics_pass_promtool_and_follow_the_traffic() {
    let a = Backend::start("a");
    let proxy = Proxy::start(&[a.addr], json!({"health_check_frequency": "1s"}));
    let api = Api::of(&proxy);
    let before = samples(&metrics(&proxy));
    for i in 0..5 {
        assert_eq!(proxy.get(&format!("/m{i}")).status, 200);
    }
    wait_until(Duration::from_secs(5), "a health check ran", || {
        !api.get("/backends/0")["last_check"].is_null()
    });
    wait_until(Duration::from_secs(5), "connections closed", || {
        api.get("/stats")["open_connections"] == 0
    });
    let text = metrics(&proxy);
    match promtool(&text) {
        Some((ok, said)) => assert!(ok, "promtool check metrics: {said}\n{text}"),
        None => eprintln!(
            "SKIPPED the promtool check: promtool is not installed (apt-get install -y prometheus; \
             .ci/run installs it). The other checks ran."
        ),
    }
    let names: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in &names {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
            .unwrap_or(name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}"
        );
    }
    let after = samples(&text);
    let labels = format!("backend=\"http://{}\",id=\"0\",pool=\"default\"", a.addr);
    let moved = |series: &str| {
        after.get(series).copied().unwrap_or(-1.0) - before.get(series).copied().unwrap_or(0.0)
    };
    assert_eq!(
        moved(&format!("ferrule_backend_requests_total{{{labels}}}")),
        5.0
    );
    assert_eq!(
        moved(&format!(
            "ferrule_backend_response_seconds_count{{{labels}}}"
        )),
        5.0
    );
    assert_eq!(moved("ferrule_responses_total{class=\"2xx\"}"), 5.0);
    assert_eq!(moved("ferrule_connections_accepted_total"), 5.0);
    assert!(moved("ferrule_received_bytes_total") > 0.0 && moved("ferrule_sent_bytes_total") > 0.0);
    let value = |series: String| {
        after
            .get(&series)
            .copied()
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    let mut last = 0.0;
    for le in [
        "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "5", "+Inf",
    ] {
        let n = value(format!(
            "ferrule_backend_response_seconds_bucket{{{labels},le=\"{le}\"}}"
        ));
        assert!(n >= last, "buckets are cumulative at le={le}");
        last = n;
    }
    assert_eq!(
        last,
        value(format!(
            "ferrule_backend_response_seconds_count{{{labels}}}"
        ))
    );
    assert_eq!(value(format!("ferrule_backend_in_flight{{{labels}}}")), 0.0);
    assert_eq!(
        value(format!("ferrule_backend_health_check_ok{{{labels}}}")),
        1.0
    );
    assert_eq!(value("ferrule_connections_open".into()), 0.0);
    for (state, want) in [
        ("up", 1.0),
        ("down", 0.0),
        ("draining", 0.0),
        ("disabled", 0.0),
    ] {
        assert_eq!(
            value(format!(
                "ferrule_backend_state{{{labels},state=\"{state}\"}}"
            )),
            want,
            "{state}"
        );
    }
    let off = json!({"state": "disabled"});
    assert_eq!(api.call("PATCH", "/backends/0", Some(off)).0, 200);
    let now = samples(&metrics(&proxy));
    assert_eq!(
        now.get(&format!(
            "ferrule_backend_state{{{labels},state=\"disabled\"}}"
        )),
        Some(&1.0)
    );
    assert_eq!(
        now.get(&format!("ferrule_backend_up{{{labels}}}")),
        Some(&0.0)
    );
}
