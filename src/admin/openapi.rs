//! `GET /openapi.json`: an OpenAPI 3.0 document of every endpoint, method, body and answer.
//!
//! `tests/admin.rs` keeps it true: it calls every operation listed here on a live proxy (with the
//! request examples given here) and checks that the status is one listed and the body fits the
//! schema, and that the router (`super::routes`) serves exactly the operations listed.

use serde_json::{json, Value};

/// The whole document; `token`: `admin_token` is set, and the bearer scheme is declared.
pub(super) fn document(token: bool) -> Value {
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "ferrule admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Reads and changes a running ferrule: its pools of backends and its routes, its counters, \
                its configuration. JSON in and out (but /metrics); every error is \
                {\"error\": \"<field>: <problem>\"}. Request bodies are JSON with \
                Content-Type: application/json (415 otherwise), at most 1 MiB (413 beyond). The \
                Host must be localhost, a loopback address, admin_bind or one of \
                admin_allowed_hosts (421 otherwise); a browser request from another origin gets \
                403. With admin_token set, every request but GET /health needs \
                Authorization: Bearer <admin_token> (401 with WWW-Authenticate: Bearer \
                otherwise); GET / and GET /dashboard (the HTML dashboard, which holds no data \
                itself) are open too. A method a path does not take gets 405 with Allow; an \
                unknown path 404.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/": {"get": dashboard("dashboard")},
            "/dashboard": {"get": dashboard("dashboardPage")},
            "/health": {"get": health()},
            "/backends": {"get": list(), "post": add()},
            "/backends/{id}": {"get": get(), "patch": patch(), "delete": delete()},
            "/backends/{id}/status": {"put": put_status()},
            "/pools": {"get": pools()},
            "/pools/{name}": {"get": pool()},
            "/pools/{name}/backends": {
                "get": in_pool(list(), "listPoolBackends"),
                "post": in_pool(add(), "addPoolBackend"),
            },
            "/pools/{name}/backends/{id}": {
                "get": in_pool(get(), "getPoolBackend"),
                "patch": in_pool(patch(), "patchPoolBackend"),
                "delete": in_pool(delete(), "deletePoolBackend"),
            },
            "/pools/{name}/backends/{id}/status": {"put": in_pool(put_status(), "setPoolBackendStatus")},
            "/routes": {"get": routes()},
            "/stats": {"get": stats()},
            "/metrics": {"get": metrics()},
            "/config": {"get": config()},
            "/openapi.json": {"get": openapi()},
            "/reload-certs": {"post": reload_certs()},
            "/reload": {"post": reload()},
            "/reopen-logs": {"post": reopen_logs()},
        },
    });
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for ops in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in ops.values_mut() {
                let body = op.get("requestBody").is_some();
                if let Some(Value::Object(responses)) = op.get_mut("responses") {
                    responses.insert(
                        "403".into(),
                        error("a browser request from another origin (Origin, Sec-Fetch-Site)"),
                    );
                    responses.insert(
                        "421".into(),
                        error("a Host this admin API does not answer to (see admin_allowed_hosts)"),
                    );
                    if body {
                        responses.insert(
                            "415".into(),
                            error("a body without Content-Type: application/json"),
                        );
                    }
                }
            }
        }
    }
    if !token {
        // without a token nothing asks for one: a client (or a schema-driven tester) that
        // believed the declaration would send a header that means nothing
        if let Value::Object(map) = &mut doc {
            map.remove("security");
        }
        if let Some(Value::Object(components)) = doc.get_mut("components") {
            components.remove("securitySchemes");
        }
        if let Some(Value::Object(paths)) = doc.get_mut("paths") {
            for op in paths.values_mut().filter_map(Value::as_object_mut) {
                for o in op.values_mut().filter_map(Value::as_object_mut) {
                    o.remove("security");
                }
            }
        }
    }
    doc
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A JSON answer of schema `name`.
fn answer(description: &str, name: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema(name)}},
    })
}

fn error(description: &str) -> Value {
    answer(description, "Error")
}

/// 404 for a backend id this pool does not have: plain, or with a pointer to the pool that has
/// it.
fn not_here(description: &str) -> Value {
    json!({
        "description": format!("{description}; when another pool has it, the answer points there: its pool, its location, and a Location header"),
        "content": {"application/json": {"schema": schema("NotHere")}},
    })
}

fn name_parameter() -> Value {
    json!({
        "name": "name",
        "in": "path",
        "required": true,
        "description": "The pool's name: default (the top-level backends and keys), or a key of pools",
        "schema": {"type": "string", "minLength": 1},
        "example": "default",
    })
}

/// A `/backends` operation as it acts on the pool named in the path.
fn in_pool(mut op: Value, id: &str) -> Value {
    if let Value::Object(map) = &mut op {
        map.insert("operationId".into(), json!(id));
        let summary = map
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let summary = format!("{summary} (in pool {{name}}; /backends is the default pool's)");
        map.insert("summary".into(), json!(summary));
        let mut params = vec![name_parameter()];
        if let Some(Value::Array(more)) = map.get("parameters") {
            params.extend(more.iter().cloned());
        }
        map.insert("parameters".into(), Value::Array(params));
        if let Some(Value::Object(responses)) = map.get_mut("responses") {
            let what = match responses.get("404") {
                Some(_) => "no pool has this name, or the pool has no backend with this id",
                None => "no pool has this name",
            };
            let answer = if responses.contains_key("404") {
                not_here(what)
            } else {
                error(what)
            };
            responses.insert("404".into(), answer);
        }
    }
    op
}

fn pools() -> Value {
    json!({
        "operationId": "listPools",
        "summary": "Every pool (default first): its strategy, its backends counted by state, the routes to it, whether it is the default pool and whether requests no route matches go to it",
        "responses": {"200": answer("the pools", "PoolList"), "401": unauthorized()},
    })
}

fn pool() -> Value {
    json!({
        "operationId": "getPool",
        "summary": "One pool: its entry of /pools and its backends",
        "parameters": [name_parameter()],
        "responses": {
            "200": answer("the pool", "PoolDetail"),
            "401": unauthorized(),
            "404": error("no pool has this name"),
        },
    })
}

fn routes() -> Value {
    json!({
        "operationId": "listRoutes",
        "summary": "Every route in file order with the requests it sent to its pool, and whether requests no route matches go to the default pool (else 404)",
        "responses": {"200": answer("the routes", "RouteList"), "401": unauthorized()},
    })
}

fn unauthorized() -> Value {
    error("admin_token is set and the request has no Authorization: Bearer <admin_token>, or another token")
}

fn id_parameter() -> Value {
    json!([{
        "name": "id",
        "in": "path",
        "required": true,
        "description": "The backend's id: config backends are 0, 1, 2… in file order, later ones the next numbers (never reused).",
        "schema": {"type": "integer", "format": "int64", "minimum": 0},
        "example": 0,
    }])
}

/// A JSON request body of schema `name`, with an example.
fn body(name: &str, example: Value) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": schema(name), "example": example}},
    })
}

fn health() -> Value {
    json!({
        "operationId": "health",
        "summary": "ferrule is up (never needs the token)",
        "security": [],
        "responses": {"200": answer("ferrule is up", "Health")},
    })
}

/// The dashboard page (the same at both paths).
fn dashboard(id: &str) -> Value {
    json!({
        "operationId": id,
        "summary": "The live HTML dashboard: one self-contained page (its style and script inline, allowed by hash in a strict Content-Security-Policy) that polls /pools, each pool's backends and /stats, and acts through this API; never needs the token (the page asks for it and sends it)",
        "security": [],
        "responses": {
            "200": {
                "description": "the page",
                "headers": {
                    "Content-Security-Policy": {"schema": {"type": "string"}, "description": "default-src 'none'; the inline script and style by their SHA-256; connect-src 'self'"},
                    "X-Content-Type-Options": {"schema": {"type": "string"}, "description": "nosniff"},
                },
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
        },
    })
}

fn list() -> Value {
    json!({
        "operationId": "listBackends",
        "summary": "The strategy and every backend with its live counters (removed ones still draining included, as draining)",
        "responses": {"200": answer("the pool", "BackendList"), "401": unauthorized()},
    })
}

fn add() -> Value {
    json!({
        "operationId": "addBackend",
        "summary": "Adds a backend: the keys of a config.json backends[] entry, checked the same way; the host is resolved now",
        "requestBody": body("NewBackend", json!({"url": "http://127.0.0.1:9", "weight": 2})),
        "responses": {
            "201": {
                "description": "added, with the next id; Location: /backends/{id}",
                "headers": {"Location": {"schema": {"type": "string"}, "description": "/backends/{id}"}},
                "content": {"application/json": {"schema": schema("AddedBackend")}},
            },
            "400": error("not a JSON object, a key given twice, an unknown key, a bad value (url, weight…), a host that does not resolve, an address of ferrule's own or a link-local one, a ca_file outside the allowed directories"),
            "401": unauthorized(),
            "409": error("a backend with the same scheme and address is in the pool"),
            "413": error("the body is over 1 MiB"),
        },
    })
}

fn get() -> Value {
    json!({
        "operationId": "getBackend",
        "summary": "One backend",
        "parameters": id_parameter(),
        "responses": {
            "200": answer("the backend", "Backend"),
            "401": unauthorized(),
            "404": not_here("no backend of the pool has this id"),
        },
    })
}

fn patch() -> Value {
    json!({
        "operationId": "patchBackend",
        "summary": "Changes a backend's weight, its state, or both",
        "parameters": id_parameter(),
        "requestBody": body("BackendPatch", json!({"weight": 3, "state": "up"})),
        "responses": {
            "200": answer("the backend as changed", "Backend"),
            "400": error("not a JSON object, an unknown key, a bad weight or state, nothing to change"),
            "401": unauthorized(),
            "404": not_here("no backend in the pool has this id"),
            "413": error("the body is over 1 MiB"),
        },
    })
}

fn delete() -> Value {
    json!({
        "operationId": "deleteBackend",
        "summary": "Removes a backend: it takes no new request at once, its requests in flight finish, idle connections to it are closed; listed as draining until the last one ends",
        "parameters": id_parameter(),
        "responses": {
            "200": answer("removed; it had no request in flight", "Removed"),
            "202": answer("removed; its requests in flight are finishing (listed as draining until then)", "Removed"),
            "401": unauthorized(),
            "404": not_here("no backend in the pool has this id"),
        },
    })
}

fn put_status() -> Value {
    json!({
        "operationId": "setBackendStatus",
        "summary": "Switches a backend off (alive false: disabled) or on (alive true: enabled and marked healthy)",
        "parameters": id_parameter(),
        "requestBody": body("Status", json!({"alive": true})),
        "responses": {
            "200": answer("the backend as changed", "Backend"),
            "400": error("not a JSON object, an unknown key, alive missing or not a boolean"),
            "401": unauthorized(),
            "404": not_here("no backend in the pool has this id"),
            "413": error("the body is over 1 MiB"),
        },
    })
}

fn stats() -> Value {
    json!({
        "operationId": "stats",
        "summary": "Client connections, responses by status class, bytes, TLS handshakes: in total and per worker",
        "responses": {"200": answer("the counters", "Stats"), "401": unauthorized()},
    })
}

fn metrics() -> Value {
    json!({
        "operationId": "metrics",
        "summary": "The same counters and more per backend, in the Prometheus text format (version 0.0.4)",
        "responses": {
            "200": {
                "description": "Prometheus text",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": unauthorized(),
        },
    })
}

fn config() -> Value {
    json!({
        "operationId": "config",
        "summary": "The configuration as loaded, in the file's form, every default filled in and admin_token and sticky_cookie_secret redacted",
        "responses": {"200": answer("the configuration", "Config"), "401": unauthorized()},
    })
}

fn openapi() -> Value {
    json!({
        "operationId": "openapi",
        "summary": "This document",
        "responses": {"200": answer("OpenAPI 3.0", "OpenApi"), "401": unauthorized()},
    })
}

fn reload_certs() -> Value {
    json!({
        "operationId": "reloadCerts",
        "summary": "Re-reads every certificate and key file: new handshakes use them, open connections keep theirs",
        "responses": {
            "200": answer("reloaded", "Reloaded"),
            "400": error("a file does not load: the old certificates stay"),
            "401": unauthorized(),
            "409": error("ssl.enabled is false"),
        },
    })
}

fn reopen_logs() -> Value {
    json!({
        "operationId": "reopenLogs",
        "summary": "Opens the access log file again by its name (as SIGUSR1 does), after logrotate moved it",
        "responses": {
            "200": {
                "description": "reopened (nothing to do when the log is stdout, stderr or off)",
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["reopened"],
                    "properties": {"reopened": {"type": "boolean"}},
                }}},
            },
            "401": unauthorized(),
            "500": error("the file cannot be opened: lines go on to the old file"),
        },
    })
}

fn reload() -> Value {
    json!({
        "operationId": "reload",
        "summary": "Re-reads the config file given at start and applies it in place (as SIGHUP does): backends matched by URL and address, weights, strategy, sticky and health settings, timeouts, limits, certificates, admin_token",
        "responses": {
            "200": answer("applied: what changed, what needs a restart, which run-time changes the file replaced", "ConfigReloaded"),
            "400": error("the file does not load, or a certificate does not: nothing changed"),
            "401": unauthorized(),
            "409": error("the proxy was started without a config file"),
        },
    })
}

fn integer() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn schemas() -> Value {
    let mut all = serde_json::Map::new();
    for (name, schema) in answer_schemas().into_iter().chain(body_schemas()) {
        all.insert(name.to_owned(), schema);
    }
    Value::Object(all)
}

/// The schemas of errors, health, backends, pools and routes, and of a backend to add.
fn answer_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Error",
            json!({
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string", "description": "<field or part>: <problem>"}},
            }),
        ),
        (
            "Health",
            json!({
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["ok"]}},
            }),
        ),
        ("Backend", backend()),
        (
            "NotHere",
            json!({
                "type": "object",
                "required": ["error"],
                "additionalProperties": false,
                "properties": {
                    "error": {"type": "string"},
                    "pool": {"type": "string", "description": "the pool that has the backend"},
                    "location": {"type": "string", "description": "where the backend is shown: /backends/{id} (default) or /pools/{pool}/backends/{id}"},
                },
            }),
        ),
        ("Pool", pool_schema()),
        (
            "PoolDetail",
            json!({
                "allOf": [schema("Pool"), {
                    "type": "object",
                    "required": ["backends"],
                    "properties": {"backends": {"type": "array", "items": schema("Backend")}},
                }],
            }),
        ),
        (
            "PoolList",
            json!({
                "type": "object",
                "required": ["pools"],
                "properties": {"pools": {"type": "array", "items": schema("Pool")}},
            }),
        ),
        (
            "RouteList",
            json!({
                "type": "object",
                "required": ["routes", "unmatched_to_default"],
                "properties": {
                    "routes": {"type": "array", "items": route_schema()},
                    "unmatched_to_default": {"type": "boolean", "description": "requests no route matches go to the default pool (false: they get 404)"},
                },
            }),
        ),
        (
            "AddedBackend",
            json!({
                "allOf": [schema("Backend"), {
                    "type": "object",
                    "required": ["warnings"],
                    "properties": {"warnings": {"type": "array", "items": {"type": "string"}, "description": "what the config file would warn about (its own address, unused TLS keys…)"}},
                }],
            }),
        ),
        (
            "BackendList",
            json!({
                "type": "object",
                "required": ["pool", "strategy", "backends"],
                "properties": {
                    "pool": {"type": "string"},
                    "strategy": {"type": "string"},
                    "backends": {"type": "array", "items": schema("Backend")},
                },
            }),
        ),
        (
            "NewBackend",
            json!({
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": {
                        "type": "string",
                        "description": "http[s]://host[:port][/]: the host a dotted-quad IPv4 address, a bracketed IPv6 address or a name (resolved when added); no path, no user info",
                        "pattern": crate::config::URL_PATTERN,
                        "minLength": 8,
                        "maxLength": crate::config::URL_MAX_LENGTH,
                    },
                    "weight": {"type": "integer", "minimum": 1, "maximum": 10000, "nullable": true, "default": 1},
                    "max_conns": {"type": "integer", "minimum": 0, "maximum": 1_000_000, "nullable": true, "description": "requests in flight at most (0: no limit); absent: the top-level max_conns"},
                    "ca_file": {"type": "string", "minLength": 1, "nullable": true, "description": "https only: PEM CA file (absent: backend_ca_file, or the built-in roots); it must be under the config file's directory or admin_files_dir"},
                    "tls_skip_verify": {"type": "boolean", "nullable": true, "default": false},
                },
            }),
        ),
    ]
}

/// The schemas of a backend's change, statuses, removals, stats, config and reload.
fn body_schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "BackendPatch",
            json!({
                "type": "object",
                "minProperties": 1,
                "additionalProperties": false,
                "properties": {
                    "weight": {"type": "integer", "minimum": 1, "maximum": 10000},
                    "state": {"type": "string", "enum": ["up", "draining", "disabled"], "description": "up: enabled and marked healthy; draining: no new requests; disabled: switched off"},
                },
            }),
        ),
        (
            "Status",
            json!({
                "type": "object",
                "required": ["alive"],
                "additionalProperties": false,
                "properties": {"alive": {"type": "boolean"}},
            }),
        ),
        (
            "Removed",
            json!({
                "type": "object",
                "required": ["id", "url", "in_flight", "draining"],
                "properties": {
                    "id": integer(),
                    "url": {"type": "string"},
                    "in_flight": integer(),
                    "draining": {"type": "boolean", "description": "requests were in flight: listed as draining until they end"},
                },
            }),
        ),
        (
            "Classes",
            json!({
                "type": "object",
                "required": ["1xx", "2xx", "3xx", "4xx", "5xx"],
                "properties": {"1xx": integer(), "2xx": integer(), "3xx": integer(), "4xx": integer(), "5xx": integer()},
            }),
        ),
        ("Stats", stats_schema(true)),
        ("WorkerStats", stats_schema(false)),
        (
            "Config",
            json!({"type": "object", "description": "config.json's keys (see the README)"}),
        ),
        (
            "OpenApi",
            json!({"type": "object", "required": ["openapi", "info", "paths"]}),
        ),
        (
            "ConfigReloaded",
            json!({
                "type": "object",
                "required": ["changes", "backends", "restart_required", "replaced_runtime_changes", "warnings"],
                "properties": {
                    "changes": {"type": "array", "items": {"type": "string"}, "description": "key: old -> new"},
                    "backends": {
                        "type": "object",
                        "required": ["added", "removed", "changed"],
                        "properties": {
                            "added": {"type": "array", "items": {"type": "string"}, "description": "id url (address)"},
                            "removed": {"type": "array", "items": {"type": "string"}, "description": "id url (address): they drain"},
                            "changed": {"type": "array", "items": {"type": "string"}, "description": "weight or max_conns of kept backends"},
                        },
                    },
                    "restart_required": {"type": "array", "items": {"type": "string"}},
                    "replaced_runtime_changes": {"type": "array", "items": {"type": "string"}, "description": "admin API changes the file replaced"},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                },
            }),
        ),
        (
            "Reloaded",
            json!({
                "type": "object",
                "required": ["reloaded", "names", "warnings"],
                "properties": {
                    "reloaded": integer(),
                    "names": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                },
            }),
        ),
    ]
}

fn pool_schema() -> Value {
    let counts = json!({
        "type": "object",
        "required": ["up", "down", "draining", "disabled", "ejected"],
        "properties": {"up": integer(), "down": integer(), "draining": integer(), "disabled": integer(), "ejected": integer()},
    });
    json!({
        "type": "object",
        "required": ["name", "default", "serves_unmatched", "strategy", "size", "states", "removed", "routes", "retries", "retries_refused"],
        "properties": {
            "name": {"type": "string"},
            "default": {"type": "boolean", "description": "the pool of the top-level keys (also served at /backends)"},
            "serves_unmatched": {"type": "boolean", "description": "requests no route matches come here"},
            "strategy": {"type": "string"},
            "size": {"type": "integer", "minimum": 0, "description": "backends in the pool"},
            "states": counts,
            "removed": {"type": "integer", "minimum": 0, "description": "backends removed and still draining their last requests (not in size)"},
            "routes": {"type": "array", "items": {"type": "string"}, "description": "the names of the routes to this pool, in file order"},
            "retries": {"type": "integer", "minimum": 0, "description": "retries its retry_budget allowed"},
            "retries_refused": {"type": "integer", "minimum": 0, "description": "retries its retry_budget refused (those requests got the error they would have got without retries)"},
        },
    })
}

fn route_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name", "host", "path_prefix", "pool", "strip_prefix", "requests"],
        "properties": {
            "name": {"type": "string"},
            "host": {"type": "string", "nullable": true, "description": "an exact host or *.suffix; null: any host"},
            "path_prefix": {"type": "string", "nullable": true, "description": "null: any path"},
            "pool": {"type": "string"},
            "strip_prefix": {"type": "boolean"},
            "requests": {"type": "integer", "minimum": 0, "description": "requests it sent to its pool since it was loaded (kept by a reload that keeps the route)"},
        },
    })
}

fn backend() -> Value {
    json!({
        "type": "object",
        "required": ["id", "pool", "url", "addr", "weight", "max_conns", "state", "alive", "healthy", "enabled",
            "in_flight", "active_connections", "total_requests", "failures", "slow_start", "ejections",
            "ejected_remaining_ms", "last_check", "last_error", "removed", "health_history", "latency"],
        "properties": {
            "id": integer(),
            "pool": {"type": "string", "description": "the name of its pool"},
            "url": {"type": "string"},
            "addr": {"type": "string", "description": "the address it is reached at (a name may stand for several backends, one per address)"},
            "weight": {"type": "integer", "minimum": 1, "maximum": 10000},
            "max_conns": {"type": "integer", "minimum": 0, "description": "0: no limit"},
            "state": {"type": "string", "enum": ["up", "down", "draining", "disabled", "ejected"], "description": "ejected: outlier detection took it out for a while"},
            "alive": {"type": "boolean", "description": "state is up"},
            "healthy": {"type": "boolean", "description": "health checks (active or passive) pass"},
            "enabled": {"type": "boolean", "description": "neither disabled nor draining"},
            "in_flight": {"type": "integer", "minimum": 0, "description": "requests in flight now"},
            "active_connections": {"type": "integer", "minimum": 0, "description": "the same as in_flight (the original's name)"},
            "total_requests": {"type": "integer", "minimum": 0, "description": "requests sent to it (retries included)"},
            "failures": {"type": "integer", "minimum": 0, "description": "connect errors, resets, invalid responses, timeouts"},
            "slow_start": {
                "type": "object",
                "nullable": true,
                "required": ["share_percent", "remaining_ms"],
                "description": "its slow start, while under way (null: none)",
                "properties": {
                    "share_percent": {"type": "integer", "minimum": 10, "maximum": 100, "description": "the share of its weight's requests it takes now"},
                    "remaining_ms": {"type": "integer", "minimum": 0},
                },
            },
            "ejections": {"type": "integer", "minimum": 0, "description": "times outlier detection ejected it"},
            "ejected_remaining_ms": {"type": "integer", "nullable": true, "minimum": 0, "description": "what is left of its current ejection (null: not ejected)"},
            "last_check": {
                "type": "object",
                "nullable": true,
                "required": ["time", "time_ms", "ok"],
                "description": "the last active health check (null before the first)",
                "properties": {
                    "time": {"type": "string", "format": "date-time"},
                    "time_ms": {"type": "integer", "description": "milliseconds since the Unix epoch"},
                    "ok": {"type": "boolean"},
                },
            },
            "last_error": {"type": "string", "nullable": true, "description": "why the last failed check failed"},
            "removed": {"type": "boolean", "description": "removed from the pool (DELETE or a reload) and draining its last requests in flight; listed until they end"},
            "health_history": {
                "type": "array",
                "description": "the latest active health checks, oldest first (at most 60; empty without active checks)",
                "items": {
                    "type": "object",
                    "required": ["time_ms", "ok"],
                    "properties": {
                        "time_ms": {"type": "integer", "description": "milliseconds since the Unix epoch"},
                        "ok": {"type": "boolean"},
                    },
                },
            },
            "latency": {
                "type": "object",
                "required": ["bounds_ms", "buckets", "sum_ms"],
                "description": "response times (request sent to response head) since start, as the histogram of /metrics",
                "properties": {
                    "bounds_ms": {"type": "array", "items": integer(), "description": "upper bounds of the buckets, in milliseconds"},
                    "buckets": {"type": "array", "items": integer(), "description": "responses per bucket, not cumulative: one per bound, then one for above the last bound"},
                    "sum_ms": {"type": "integer", "minimum": 0, "description": "the sum of the response times, in milliseconds"},
                },
            },
        },
    })
}

fn stats_schema(total: bool) -> Value {
    let mut required = vec![
        "open_connections",
        "accepted_connections",
        "accept_errors",
        "per_ip_refused",
        "rate_limited",
        "responses",
        "bytes_in",
        "bytes_out",
        "tls_handshakes",
        "tls_handshake_failures",
        "closed",
    ];
    let mut properties = json!({
        "open_connections": integer(),
        "accepted_connections": integer(),
        "accept_errors": integer(),
        "per_ip_refused": {"type": "integer", "minimum": 0, "description": "connections closed at accept by max_connections_per_ip"},
        "rate_limited": {"type": "integer", "minimum": 0, "description": "requests answered 429: over their rate limit (rate_limit)"},
        "responses": schema("Classes"),
        "bytes_in": {"type": "integer", "minimum": 0, "description": "read from clients"},
        "bytes_out": {"type": "integer", "minimum": 0, "description": "written to clients"},
        "tls_handshakes": integer(),
        "tls_handshake_failures": integer(),
        "closed": {"type": "object", "additionalProperties": integer(), "description": "client connections closed, by reason (done, idle, client_closed, client_error, tls_handshake, proxy_header, backend_failed, timeout, tunnel_ended, linger, shutdown, panic)"},
    });
    let extra = if total {
        required.extend(["backend_requests", "access_log_dropped", "workers"]);
        json!({
            "backend_requests": {"type": "integer", "minimum": 0, "description": "requests sent to backends (retries included)"},
            "access_log_dropped": {"type": "integer", "minimum": 0, "description": "access log lines not written (queue full, or output failing)"},
            "workers": {"type": "array", "items": schema("WorkerStats")},
        })
    } else {
        required.extend(["worker", "accepted"]);
        json!({
            "worker": integer(),
            "accepted": {"type": "integer", "minimum": 0, "description": "the same as accepted_connections"},
        })
    };
    if let (Value::Object(p), Value::Object(e)) = (&mut properties, extra) {
        p.extend(e);
    }
    json!({"type": "object", "required": required, "properties": properties})
}
