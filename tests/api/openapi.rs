//! The OpenAPI document describes every answer (issue 12, part 1).
//!
//! - `the_document_describes_every_answer`: every operation is in the contract
//!   table (`meridian::api::contract`), has a unique operationId, describes every
//!   response, documents its errors as `application/problem+json` with the shared
//!   `Problem` schema whose `code` enum holds the codes the table derives, and
//!   agrees with what the isolation suite's route table knows independently (who
//!   may call it, ids, bodies); the document validates as OpenAPI 3.1
//!   (`openapi-spec-validator`); the README lists every error code.
//! - `schemathesis_finds_nothing_as_a_tenant_owner` / `…_as_a_platform_admin`:
//!   fuzz the running app from its own `/openapi.json` (schemathesis 4), with
//!   generated ids and then with ids that exist, and fail on any finding of
//!   `not_a_server_error`, `status_code_conformance`, `content_type_conformance`,
//!   `response_schema_conformance`, `negative_data_rejection` and `ignored_auth`.
//! - `a_malformed_drain_body_is_refused_not_taken_for_no_body`: the one behaviour
//!   change the contract brought (a drain body was silently dropped when invalid).
//!
//! The Python tools live in a venv under `target/` (`pytools.txt`), made by the
//! first test that needs it, or by `.ci/run`. Without PyPI the two checks that need
//! them are skipped with a message on stderr, unless `MERIDIAN_REQUIRE_PYTOOLS` is
//! set (CI sets it), which makes a missing tool a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use meridian::api::contract::{self, Shape, Who};
use meridian::error::ErrorCode;
use serde_json::Value;

use crate::helpers::spawn_app;
use crate::isolation::{Access, Target, routes};

/// Written past the test harness's output capture, so it shows in every run.
fn announce(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "meridian tests: {line}");
}

fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("pytools")
}

fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/pytools.txt")
}

fn run_quiet(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or_default()
        ))
    }
}

/// The venv's `bin/`, with both tools, made once per test binary; `None` (and a
/// message) when it cannot be made and tools are not required.
fn pytools() -> Option<PathBuf> {
    static TOOLS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let tools = TOOLS.get_or_init(|| {
        let venv = venv_dir();
        let bin = venv.join("bin");
        let ready = |bin: &Path| {
            bin.join("schemathesis").exists() && bin.join("openapi-spec-validator").exists()
        };
        if ready(&bin) {
            return Ok(bin);
        }
        announce(&format!(
            "installing {} into {}",
            requirements().display(),
            venv.display()
        ));
        run_quiet(
            std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv),
        )?;
        run_quiet(
            std::process::Command::new(bin.join("pip"))
                .args(["install", "-q", "--timeout", "20", "--retries", "1", "-r"])
                .arg(requirements()),
        )?;
        if ready(&bin) {
            Ok(bin)
        } else {
            Err("pip finished but the tools are missing".into())
        }
    });
    match tools {
        Ok(bin) => Some(bin.clone()),
        Err(why) if std::env::var_os("MERIDIAN_REQUIRE_PYTOOLS").is_some() => {
            panic!("MERIDIAN_REQUIRE_PYTOOLS is set but the Python tools are missing: {why}")
        }
        Err(why) => {
            announce(&format!(
                "OpenAPI validator and fuzzer SKIPPED: cannot install {} ({why})",
                requirements().display()
            ));
            None
        }
    }
}

/// `(status, code)` pairs and per-status headers of an operation's problem answers.
struct Errors {
    codes: BTreeMap<u16, BTreeSet<String>>,
    headers: BTreeMap<u16, BTreeSet<String>>,
}

fn problem_answers(op: &Value, what: &str) -> Errors {
    let mut errors = Errors {
        codes: BTreeMap::new(),
        headers: BTreeMap::new(),
    };
    for (status, response) in op["responses"].as_object().unwrap() {
        assert!(
            response["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what} {status}: no description"
        );
        let status: u16 = status.parse().unwrap();
        if status < 400 {
            continue;
        }
        let content = response["content"].as_object().unwrap();
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/problem+json"],
            "{what} {status}: errors are problem+json only"
        );
        let schema = &content["application/problem+json"]["schema"];
        let parts = schema["allOf"].as_array().unwrap();
        assert_eq!(
            parts[0]["$ref"], "#/components/schemas/Problem",
            "{what} {status}"
        );
        let narrowed = &parts[1]["properties"];
        assert_eq!(narrowed["status"]["enum"], serde_json::json!([status]));
        let codes = narrowed["code"]["enum"].as_array().unwrap();
        assert!(!codes.is_empty(), "{what} {status}: empty code enum");
        errors.codes.insert(
            status,
            codes
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect(),
        );
        errors.headers.insert(
            status,
            response["headers"]
                .as_object()
                .map(|h| h.keys().cloned().collect())
                .unwrap_or_default(),
        );
    }
    errors
}

fn has(errors: &Errors, status: u16, code: &str) -> bool {
    errors
        .codes
        .get(&status)
        .is_some_and(|codes| codes.contains(code))
}

#[actix_web::test]
async fn the_document_describes_every_answer() {
    let tools = pytools();
    let app = spawn_app().await;
    let reply = app.request("GET", "/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    let doc = reply.body;
    assert_eq!(doc["openapi"], "3.1.0");

    let problem = &doc["components"]["schemas"]["Problem"];
    let required: BTreeSet<&str> = problem["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in ["type", "title", "status", "detail", "code", "request_id"] {
        assert!(required.contains(field), "Problem.{field} is not required");
    }

    let mut ids = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            let entry = contract::find(method, path).unwrap_or_else(|| {
                panic!("{what} is not in api::contract::OPERATIONS: add it with its codes")
            });
            seen.insert((entry.method, entry.path));
            let id = op["operationId"].as_str().unwrap();
            assert_eq!(id, entry.id, "{what}");
            assert!(ids.insert(id.to_owned()), "operationId {id} repeats");

            // Exactly the codes the contract derives, each under its own status.
            let parsed: utoipa::openapi::path::Operation =
                serde_json::from_value(op.clone()).unwrap();
            let expected = contract::error_codes(entry, &Shape::of(&parsed));
            let errors = problem_answers(op, &what);
            let mut documented = BTreeSet::new();
            for (status, codes) in &errors.codes {
                for code in codes {
                    assert_eq!(
                        ErrorCode::parse(code).map(|c| c.status().as_u16()),
                        Some(*status),
                        "{what}: `{code}` documented under {status}"
                    );
                    documented.insert(code.as_str());
                }
            }
            let expected: BTreeSet<&str> = expected.into_iter().map(ErrorCode::as_str).collect();
            assert_eq!(documented, expected, "{what}");

            // Headers of the answers that carry them.
            let headers = |status: u16| errors.headers.get(&status).cloned().unwrap_or_default();
            if errors.codes.contains_key(&429) {
                for name in ["Retry-After", "RateLimit", "RateLimit-Policy"] {
                    assert!(headers(429).contains(name), "{what} 429: no {name}");
                }
            }
            if errors.codes.contains_key(&503) {
                assert!(headers(503).contains("Retry-After"), "{what} 503");
            }
            for created in ["201", "202"] {
                if let Some(response) = op["responses"].get(created) {
                    assert!(
                        response["headers"]["Location"].is_object(),
                        "{what} {created}: no Location"
                    );
                }
            }

            // Bounds of the query parameters the server bounds.
            for param in op["parameters"].as_array().into_iter().flatten() {
                let schema = &param["schema"];
                match param["name"].as_str().unwrap() {
                    "limit" => {
                        assert_eq!(schema["minimum"], 1, "{what} limit");
                        assert_eq!(schema["maximum"], 200, "{what} limit");
                    }
                    "cursor" => assert_eq!(schema["maxLength"], 256, "{what} cursor"),
                    _ => {}
                }
            }

            // Bodies: the server refuses unknown fields (serde deny_unknown_fields).
            if let Some(reference) =
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
            {
                let name = reference.rsplit('/').next().unwrap();
                let schema = &doc["components"]["schemas"][name];
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{what}: body {name} allows unknown fields"
                );
            }
        }
    }
    let listed: BTreeSet<_> = contract::OPERATIONS
        .iter()
        .map(|o| (o.method, o.path))
        .collect();
    assert_eq!(
        seen, listed,
        "api::contract::OPERATIONS lists operations the app does not serve"
    );

    // What the isolation suite knows about each route, independently of the contract.
    for route in routes() {
        let path = route.path.split('?').next().unwrap();
        let what = format!("{} {path}", route.method);
        let op = &doc["paths"][path][route.method.to_lowercase()];
        let errors = problem_answers(op, &what);
        let entry = contract::find(route.method, path).unwrap();
        assert_eq!(
            entry.who == Who::Public,
            route.access == Access::Public,
            "{what}: public?"
        );
        if route.access != Access::Public {
            assert!(has(&errors, 401, "unauthenticated"), "{what}");
            assert!(has(&errors, 429, "rate_limited"), "{what}");
            assert!(has(&errors, 503, "residency_unavailable"), "{what}");
            // Sign-in requests carry no token (the tenant is in the request).
            assert_eq!(
                op["security"].is_array(),
                route.access != Access::SignIn,
                "{what}: security"
            );
        }
        if path.starts_with("/v1/") {
            assert!(has(&errors, 400, "non_canonical_path"), "{what}");
            assert!(has(&errors, 500, "internal"), "{what}");
        }
        if matches!(route.access, Access::Platform | Access::Tenant(_)) {
            // A token of the wrong kind (tenant or platform) is refused with 403.
            assert!(has(&errors, 403, "forbidden"), "{what}");
        }
        match route.target {
            Target::Tenant
            | Target::User
            | Target::Channel
            | Target::Webhook
            | Target::Job
            | Target::Provider
            | Target::Export
            | Target::Erasure
            | Target::CalendarAccount
            | Target::CalendarEvent
            | Target::PlatformUser => {
                assert!(has(&errors, 404, "not_found"), "{what}");
                assert!(has(&errors, 400, "invalid_id"), "{what}");
                for param in op["parameters"].as_array().unwrap() {
                    if param["in"] == "path" {
                        assert_eq!(param["schema"]["format"], "uuid", "{what}");
                    }
                }
            }
            Target::Region | Target::Slug => assert!(has(&errors, 404, "not_found"), "{what}"),
            Target::None => {}
        }
        if (route.body)().is_some() {
            for (status, code) in [
                (400, "invalid_json"),
                (400, "validation_failed"),
                (408, "request_timeout"),
                (413, "payload_too_large"),
                (415, "unsupported_media_type"),
            ] {
                assert!(has(&errors, status, code), "{what}: {status} {code}");
            }
        }
    }

    // The README's code table is the code table: every row names exactly the
    // codes of its statuses (it is where people look them up).
    readme_lists_exactly_the_codes();

    // A validator's verdict: OpenAPI 3.1 as written in the specification.
    if let Some(bin) = tools {
        let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi.json");
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let out = tokio::process::Command::new(bin.join("openapi-spec-validator"))
            .arg(&file)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "openapi-spec-validator refused {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Cases per operation and phase; small so the run stays well inside CI's budget
/// on two shared cores (see the timing printed on stderr).
/// `MERIDIAN_FUZZ_EXAMPLES` raises it for a longer run by hand.
const MAX_EXAMPLES: &str = "25";

/// Runs schemathesis against `app` as `token` with `args` added; fails the test
/// on any finding, and says on stderr how long it took and what it reported.
async fn fuzz(
    bin: &Path,
    app: &crate::helpers::TestApp,
    token: &str,
    what: &str,
    config: Option<&Path>,
    args: &[&str],
) {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let seed = std::env::var("MERIDIAN_FUZZ_SEED").unwrap_or_else(|_| "12".into());
    let examples = std::env::var("MERIDIAN_FUZZ_EXAMPLES").unwrap_or_else(|_| MAX_EXAMPLES.into());
    let started = Instant::now();
    let mut command = tokio::process::Command::new(bin.join("schemathesis"));
    command.current_dir(&work);
    if let Some(config) = config {
        command.arg("--config-file").arg(config);
    }
    let run = command
        .args(["run", &format!("{}/openapi.json", app.base)])
        .args(args)
        .args(["--url", &app.base])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples])
        .args(["--seed", &seed])
        // One worker: with two, schemathesis 4.32.5 once failed with an internal
        // error (a KeyError in its own coverage module) that a rerun did not repeat.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--max-redirects", "0"])
        .args(["--suppress-health-check", "all"])
        .args(["--generation-database", "none"])
        .args(["--no-color"])
        .kill_on_drop(true)
        .output();
    let out = actix_web::rt::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("schemathesis ran for over 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::write(
        work.join(format!(
            "{}.txt",
            what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        )),
        stdout.as_bytes(),
    );
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("Test cases:"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    announce(&format!(
        "schemathesis, {what} (seed {seed}, {examples} examples/operation/phase): {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        summary.join(" | ")
    ));
    assert!(
        out.status.success(),
        "schemathesis found problems ({what}, seed {seed}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn schemathesis_finds_nothing_as_a_tenant_owner() {
    let Some(bin) = pytools() else { return };
    let app = spawn_app().await;
    let owner = app.provision("fuzzed").await;
    let channel = app.create_channel(&owner, "general").await;
    let message = app.post_message(&owner, channel, "hello fuzzer").await;
    let doomed_channel = app.create_channel(&owner, "doomed").await;
    let (member, _) = app.add_user(&owner, "member").await;
    let (doomed_user, _) = app.add_user(&owner, "viewer").await;

    // Every operation with generated inputs: ids that exist nowhere, bad ids,
    // bad queries and bodies.
    fuzz(&bin, &app, &owner.owner_token, "generated ids", None, &[]).await;

    // The operations on ids, with ids that exist, so they get past the 404.
    let config = format!(
        r#"
[[operations]]
include-operation-id = ["getTenant", "updateTenant", "getRelocation", "startRelocation"]
parameters = {{ "path.id" = "{tenant}" }}

[[operations]]
include-operation-id = ["getUser", "updateUser"]
parameters = {{ "path.id" = "{member}" }}

[[operations]]
include-operation-id = "deleteUser"
parameters = {{ "path.id" = "{doomed_user}" }}

[[operations]]
include-operation-id = ["getChannel", "listMessages", "postMessage", "getMessage"]
parameters = {{ "path.id" = "{channel}", "path.message_id" = "{message}" }}

[[operations]]
include-operation-id = "deleteChannel"
parameters = {{ "path.id" = "{doomed_channel}" }}
"#,
        tenant = owner.id,
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-ids.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = Vec::new();
    for id in [
        "getTenant",
        "updateTenant",
        "getRelocation",
        "startRelocation",
        "getUser",
        "updateUser",
        "deleteUser",
        "getChannel",
        "listMessages",
        "postMessage",
        "getMessage",
        "deleteChannel",
    ] {
        args.extend(["--include-operation-id", id]);
    }
    fuzz(
        &bin,
        &app,
        &owner.owner_token,
        "existing ids",
        Some(&file),
        &args,
    )
    .await;
}

#[actix_web::test]
async fn schemathesis_finds_nothing_as_a_platform_admin() {
    let Some(bin) = pytools() else { return };
    let app = spawn_app().await;
    let tenant = app.provision("administered").await;
    app.create_channel(&tenant, "general").await;
    let admin = app.platform_token();
    fuzz(&bin, &app, &admin, "platform admin", None, &[]).await;

    // The directory's operations on a tenant that exists, so their bodies and
    // queries get past the 404 (a tenant owner gets 403 on most of them).
    let config = format!(
        r#"
[[operations]]
include-operation-id = ["getTenant", "updateTenant", "getRelocation", "startRelocation"]
parameters = {{ "path.id" = "{tenant}" }}
"#,
        tenant = tenant.id,
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-admin-ids.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = Vec::new();
    for id in [
        "getTenant",
        "updateTenant",
        "getRelocation",
        "startRelocation",
    ] {
        args.extend(["--include-operation-id", id]);
    }
    fuzz(
        &bin,
        &app,
        &admin,
        "platform admin, existing ids",
        Some(&file),
        &args,
    )
    .await;
}

/// The operations an operator may call, fuzzed with an operator's token (the
/// others answer it 403 `operator_forbidden`, which the role matrix in
/// `operator.rs` checks route by route).
#[actix_web::test]
async fn schemathesis_finds_nothing_as_an_operator() {
    let Some(bin) = pytools() else { return };
    let app = spawn_app().await;
    let tenant = app.provision("operated").await;
    let operator = crate::operator::operator_token(&app);
    let config = format!(
        r#"
[[operations]]
include-operation-id = "getRelocation"
parameters = {{ "path.id" = "{tenant}" }}
"#,
        tenant = tenant.id,
    );
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis-operator-ids.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = Vec::new();
    for id in meridian::api::contract::OPERATOR_OPERATIONS {
        args.extend(["--include-operation-id", id]);
    }
    fuzz(&bin, &app, &operator, "operator", Some(&file), &args).await;
}

/// The drain body is optional, but one that is sent is checked like every other
/// body: before, a malformed one was taken for an absent one, so a typo in
/// `{"dry_run": true}` drained the region for real.
#[actix_web::test]
async fn a_malformed_drain_body_is_refused_not_taken_for_no_body() {
    let app = spawn_app().await;
    let admin = app.platform_token();
    let path = "/v1/regions/europe-west3/drain";
    for (body, code) in [
        (serde_json::json!({ "dry_run": "yes" }), "validation_failed"),
        (
            serde_json::json!({ "dry_run": true, "forced": true }),
            "validation_failed",
        ),
        (serde_json::json!("dry run"), "validation_failed"),
    ] {
        let reply = app.post(path, &admin, body.clone()).await;
        crate::helpers::assert_problem(&reply, 400, code);
    }
    let regions = app.get("/v1/regions", &admin).await;
    let drained: Vec<&Value> = regions.body["regions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["drained"] == true)
        .collect();
    assert!(drained.is_empty(), "{drained:?}");
    let dry = app
        .post(path, &admin, serde_json::json!({ "dry_run": true }))
        .await;
    assert_eq!(dry.status, 200, "{}", dry.body);
    assert_eq!(dry.body["drained"], false);
    let null = app.post(path, &admin, Value::Null).await;
    assert_eq!(null.status, 200, "null is the defaults: {}", null.body);
}

/// The README's table of codes by status (`| 404, 405 | `not_found`, … |`) lists,
/// row by row, exactly the codes `ErrorCode` answers with those statuses, and
/// every status of the enum has a row: a code added, removed or moved to another
/// status without the README fails here.
fn readme_lists_exactly_the_codes() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("| status | codes |")
        .expect("README.md has no `| status | codes |` table");
    let mut covered = BTreeSet::new();
    for row in readme[start..].lines().skip(2) {
        let Some(row) = row.strip_prefix("| ") else {
            break;
        };
        let (statuses, codes) = row.split_once(" | ").unwrap();
        let statuses: BTreeSet<u16> = statuses
            .split(", ")
            .map(|s| s.trim().parse().unwrap())
            .collect();
        // Backticked snake_case words are codes (or typos of one); settings
        // (`http.body_timeout_ms`) and headers (`Retry-After`) are not.
        let listed: BTreeSet<&str> = codes
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        let expected: BTreeSet<&str> = ErrorCode::ALL
            .iter()
            .filter(|c| statuses.contains(&c.status().as_u16()))
            .map(|c| c.as_str())
            .collect();
        assert_eq!(listed, expected, "README.md code row for {statuses:?}");
        covered.extend(statuses);
    }
    let all: BTreeSet<u16> = ErrorCode::ALL.iter().map(|c| c.status().as_u16()).collect();
    assert_eq!(covered, all, "README.md code table: statuses without a row");
}
