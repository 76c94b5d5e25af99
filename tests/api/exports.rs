//! GDPR exports (issue 16 part 2): who may ask, what the archive holds, that it
//! is sealed at rest, served with HTTP Range (a cut download resumes), audited,
//! and gone after its expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Reply, Tenant, TestApp, assert_problem, fresh_database, spawn_app, spawn_app_with,
    test_settings,
};

/// Asks for an export; answers its id.
pub(crate) async fn request(app: &TestApp, token: &str, body: Value) -> Uuid {
    let reply = app.post("/v1/exports", token, body).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["state"], "queued");
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

/// The export once its job has finished (ready or failed), or after 30 s.
pub(crate) async fn finished(app: &TestApp, token: &str, id: Uuid) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = app.get(&format!("/v1/exports/{id}"), token).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        if reply.body["state"] != "queued" || Instant::now() > deadline {
            return reply.body;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) struct Download {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub bytes: Vec<u8>,
}

pub(crate) async fn download(
    app: &TestApp,
    token: &str,
    id: Uuid,
    range: Option<&str>,
) -> Download {
    let mut req = app
        .client
        .get(format!("{}/v1/exports/{id}/download", app.base))
        .insert_header(("Authorization", format!("Bearer {token}")));
    if let Some(range) = range {
        req = req.insert_header(("Range", range));
    }
    let mut res = req.send().await.unwrap();
    let bytes = res.body().limit(512 * 1024 * 1024).await.unwrap();
    Download {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        bytes: bytes.to_vec(),
    }
}

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The archive's files, read by Python's zipfile (which checks every CRC).
pub(crate) fn unzip(bytes: &[u8]) -> BTreeMap<String, String> {
    let path = std::env::temp_dir().join(format!("export-{}.zip", Uuid::new_v4()));
    std::fs::write(&path, bytes).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None\n\
             print(json.dumps({n: z.read(n).decode() for n in z.namelist()}))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn lines(file: &str) -> Vec<Value> {
    file.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Adds `n` messages of ~200 bytes to `channel` directly in SQL (fast).
async fn bulk_messages(app: &TestApp, t: &Tenant, channel: Uuid, n: i64) {
    app.superuser_client()
        .await
        .execute(
            "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body)
             SELECT $1, gen_random_uuid(), 'us-east1', $2, $3,
                    'bulk message ' || g || ' ' || repeat('x', 180)
             FROM generate_series(1, $4::bigint) g",
            &[&t.id, &channel, &t.owner_id, &n],
        )
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_tenant_export_holds_every_table_and_its_manifest_checks_out() {
    let app = spawn_app().await;
    let t = app.provision("exporter").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "plaintext launch note").await;
    // The tenant then encrypts its messages: a sealed body is opened per row.
    let reply = app
        .patch(
            &format!("/v1/tenants/{}/encryption", t.id),
            &t.owner_token,
            json!({ "messages": true }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    app.post_message(&t, channel, "sealed canary-4711 body")
        .await;
    let sealed = app
        .superuser_client()
        .await
        .query_one(
            "SELECT count(*) FROM messages WHERE tenant_id = $1 AND body_enc IS NOT NULL",
            &[&t.id],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(sealed, 1, "the second message is stored sealed");

    let id = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    let export = finished(&app, &t.owner_token, id).await;
    assert_eq!(export["state"], "ready", "{export}");
    assert_eq!(export["counts"]["messages.ndjson"], 2);
    assert_eq!(export["counts"]["users.ndjson"], 1);
    assert_eq!(export["counts"]["channels.ndjson"], 1);
    assert!(export["expires_at"].is_string());

    let whole = download(&app, &t.owner_token, id, None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.headers.get("accept-ranges").unwrap(), "bytes");
    assert_eq!(
        whole.headers.get("content-type").unwrap(),
        "application/zip"
    );
    assert_eq!(whole.bytes.len() as i64, export["size"].as_i64().unwrap());
    assert_eq!(sha256(&whole.bytes), export["sha256"].as_str().unwrap());

    let files = unzip(&whole.bytes);
    let manifest: Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["export_id"], id.to_string());
    assert_eq!(manifest["tenant_id"], t.id.to_string());
    for entry in manifest["files"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let text = &files[name];
        assert_eq!(entry["sha256"], sha256(text.as_bytes()), "{name}");
        assert_eq!(entry["rows"], text.lines().count(), "{name}");
        assert_eq!(export["counts"][name], entry["rows"], "{name}");
    }
    let bodies: Vec<String> = lines(&files["messages.ndjson"])
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(bodies.contains(&"plaintext launch note".to_owned()));
    assert!(bodies.contains(&"sealed canary-4711 body".to_owned()));
    let users = lines(&files["users.ndjson"]);
    assert_eq!(users[0]["id"], t.owner_id.to_string());
    assert!(files["audit_events.ndjson"].contains("export.requested"));

    // At rest the archive is sealed: neither body is in the stored file.
    let dir = test_settings(&app.db_name).exports.dir;
    let stored = find_files(&dir);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let raw = std::fs::read(&stored[0]).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        stored[0]
            .to_string_lossy()
            .contains(&format!("us-east1/{}/", t.id))
    );
    assert!(!text.contains("canary-4711") && !text.contains("launch note"));
    assert!(!text.contains("manifest.json"));

    // Downloads are audited, one event per request.
    let audit = app.get("/v1/audit?limit=200", &t.owner_token).await;
    let downloads = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export.downloaded" && e["target_id"] == id.to_string())
        .count();
    assert_eq!(downloads, 1);
}

fn find_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(find_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[actix_web::test]
async fn a_cut_download_resumes_with_a_range_and_bad_ranges_answer_416() {
    let app = spawn_app().await;
    let t = app.provision("resumer").await;
    let channel = app.create_channel(&t, "bulk").await;
    // ~2 000 rows: an archive of several 64 KiB chunks.
    bulk_messages(&app, &t, channel, 2_000).await;
    let id = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    let export = finished(&app, &t.owner_token, id).await;
    assert_eq!(export["state"], "ready", "{export}");
    let size = export["size"].as_u64().unwrap();
    assert!(size > 3 * 65_536, "{size}");

    // The connection broke after 100 000 bytes (inside the second chunk).
    let whole = download(&app, &t.owner_token, id, None).await;
    let mut got = whole.bytes[..100_000].to_vec();
    let rest = download(&app, &t.owner_token, id, Some("bytes=100000-")).await;
    assert_eq!(rest.status, 206);
    assert_eq!(
        rest.headers.get("content-range").unwrap(),
        &format!("bytes 100000-{}/{size}", size - 1)
    );
    got.extend_from_slice(&rest.bytes);
    assert_eq!(sha256(&got), export["sha256"].as_str().unwrap());
    assert_eq!(unzip(&got)["messages.ndjson"].lines().count(), 2_000);

    // A middle range across a chunk boundary, and a suffix.
    let mid = download(&app, &t.owner_token, id, Some("bytes=65530-65545")).await;
    assert_eq!(mid.status, 206);
    assert_eq!(mid.bytes, whole.bytes[65_530..=65_545]);
    let tail = download(&app, &t.owner_token, id, Some("bytes=-10")).await;
    assert_eq!(tail.bytes, whole.bytes[whole.bytes.len() - 10..]);
    let clipped = download(
        &app,
        &t.owner_token,
        id,
        Some(&format!("bytes={}-99999999", size - 5)),
    )
    .await;
    assert_eq!(clipped.status, 206);
    assert_eq!(clipped.bytes, whole.bytes[whole.bytes.len() - 5..]);

    for bad in [
        format!("bytes={size}-"),
        "bytes=20-10".into(),
        "bytes=x-y".into(),
        "bytes=-0".into(),
    ] {
        let reply = app_request_with_range(&app, &t.owner_token, id, &bad).await;
        assert_problem(&reply, 416, "range_not_satisfiable");
        assert_eq!(
            reply.headers.get("content-range").unwrap(),
            &format!("bytes */{size}"),
            "{bad}"
        );
    }
}

async fn app_request_with_range(app: &TestApp, token: &str, id: Uuid, range: &str) -> Reply {
    let d = download(app, token, id, Some(range)).await;
    Reply {
        status: awc::http::StatusCode::from_u16(d.status).unwrap(),
        headers: d.headers,
        body: serde_json::from_slice(&d.bytes).unwrap_or(Value::Null),
    }
}

#[actix_web::test]
async fn members_export_only_their_own_data_and_see_only_their_exports() {
    let app = spawn_app().await;
    let t = app.provision("members").await;
    let (member, member_token) = app.add_user(&t, "member").await;
    let (_, compliance_token) = app.add_user(&t, "compliance").await;
    let channel = app.create_channel(&t, "general").await;
    app.post_message(&t, channel, "the owner's words").await;
    let mine = app
        .post(
            &format!("/v1/channels/{channel}/messages"),
            &member_token,
            json!({ "body": "the member's words" }),
        )
        .await;
    assert_eq!(mine.status, 201, "{}", mine.body);

    // Not the tenant, not another user.
    let reply = app
        .post("/v1/exports", &member_token, json!({ "scope": "tenant" }))
        .await;
    assert_problem(&reply, 403, "forbidden");
    let reply = app
        .post(
            "/v1/exports",
            &member_token,
            json!({ "scope": "user", "user_id": t.owner_id }),
        )
        .await;
    assert_problem(&reply, 403, "forbidden");
    let reply = app
        .post(
            "/v1/exports",
            &member_token,
            json!({ "scope": "everything" }),
        )
        .await;
    assert_problem(&reply, 400, "validation_failed");
    let reply = app
        .post(
            "/v1/exports",
            &t.owner_token,
            json!({ "scope": "user", "user_id": Uuid::new_v4() }),
        )
        .await;
    assert_problem(&reply, 404, "not_found");

    // Their own data: their user row and their message only.
    let id = request(&app, &member_token, json!({ "scope": "user" })).await;
    let export = finished(&app, &member_token, id).await;
    assert_eq!(export["state"], "ready", "{export}");
    assert_eq!(export["user_id"], member.to_string());
    let files = unzip(&download(&app, &member_token, id, None).await.bytes);
    let messages = lines(&files["messages.ndjson"]);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["body"], "the member's words");
    let users = lines(&files["users.ndjson"]);
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], member.to_string());

    // The compliance officer sees it and may export the tenant; another
    // member does not see it (the same 404 as a missing id).
    assert_eq!(
        app.get(&format!("/v1/exports/{id}"), &compliance_token)
            .await
            .status,
        200
    );
    let (_, other_token) = app.add_user(&t, "member").await;
    let reply = app.get(&format!("/v1/exports/{id}"), &other_token).await;
    assert_problem(&reply, 404, "not_found");
    let reply = app_request_with_range(&app, &other_token, id, "bytes=0-").await;
    assert_problem(&reply, 404, "not_found");
    request(&app, &compliance_token, json!({ "scope": "tenant" })).await;
}

/// `GET /v1/exports`: newest first, paged by a keyset cursor; owners and
/// compliance officers see every export of the tenant, anyone else only their
/// own; no storage location or key version in an item.
#[actix_web::test]
async fn the_list_pages_newest_first_and_members_see_only_their_own() {
    let app = spawn_app().await;
    let t = app.provision("listing").await;
    let (member, member_token) = app.add_user(&t, "member").await;
    let (_, compliance_token) = app.add_user(&t, "compliance").await;
    let (_, other_token) = app.add_user(&t, "member").await;
    // Asked for in this order: owner, member, compliance, member.
    let owners = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    let first = request(&app, &member_token, json!({ "scope": "user" })).await;
    let officers = request(
        &app,
        &compliance_token,
        json!({ "scope": "user", "user_id": member }),
    )
    .await;
    let second = request(&app, &member_token, json!({ "scope": "user" })).await;
    let newest_first = [second, officers, first, owners];

    let ids = |page: &Value| -> Vec<Uuid> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    for token in [&t.owner_token, &compliance_token] {
        let page = app.get("/v1/exports", token).await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(ids(&page.body), newest_first);
        assert!(page.body["next_cursor"].is_null(), "{}", page.body);
    }
    // Two at a time: the cursor continues where the page ended, and the last
    // page says there is no more.
    let page = app.get("/v1/exports?limit=2", &t.owner_token).await;
    assert_eq!(ids(&page.body), newest_first[..2]);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let page = app
        .get(
            &format!("/v1/exports?limit=2&cursor={cursor}"),
            &t.owner_token,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(ids(&page.body), newest_first[2..]);
    assert!(page.body["next_cursor"].is_null(), "{}", page.body);

    // A member: only the exports they asked for (not the one of their data
    // the compliance officer asked for); another member: none.
    let page = app.get("/v1/exports", &member_token).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(ids(&page.body), [second, first]);
    let page = app.get("/v1/exports", &other_token).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(ids(&page.body).is_empty(), "{}", page.body);

    // An item is what `GET /v1/exports/{id}` answers: no archive key, storage
    // region, key version or chunk size.
    let page = app.get("/v1/exports", &t.owner_token).await;
    let item = &page.body["items"][0];
    let one = app
        .get(&format!("/v1/exports/{second}"), &t.owner_token)
        .await;
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(item), keys(&one.body));
    for internal in ["object_key", "storage_region", "key_version", "chunk_size"] {
        assert!(item.get(internal).is_none(), "{internal} in {item}");
    }

    let reply = app.get("/v1/exports?cursor=nonsense", &t.owner_token).await;
    assert_problem(&reply, 400, "invalid_cursor");
    let reply = app.get("/v1/exports?limit=0", &t.owner_token).await;
    assert_problem(&reply, 400, "invalid_query");
}

/// An export built in the old home region before a relocation keeps its archive
/// in that region's store: its download in the new home region is a clear 410,
/// not a failed read of a file this region never had.
#[actix_web::test]
async fn an_export_built_in_another_region_answers_410_export_left_behind() {
    let app = spawn_app().await;
    let t = app.provision("left-behind").await;
    let id = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    assert_eq!(finished(&app, &t.owner_token, id).await["state"], "ready");
    assert_eq!(download(&app, &t.owner_token, id, None).await.status, 200);
    // What a relocation leaves: the row moved with the tenant, the archive did not.
    app.superuser_client()
        .await
        .execute(
            "UPDATE exports SET storage_region = 'europe-west1' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let reply = app_request_with_range(&app, &t.owner_token, id, "bytes=0-").await;
    assert_problem(&reply, 410, "export_left_behind");
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("europe-west1")),
        "{}",
        reply.body
    );
}

#[actix_web::test]
async fn an_expired_export_answers_410_and_the_sweep_deletes_its_file() {
    let mut settings = test_settings(&fresh_database().await);
    settings.exports.ttl = Duration::from_secs(2);
    settings.exports.sweep_interval = Duration::from_millis(500);
    settings.jobs.poll_interval = Duration::from_millis(100);
    let dir = settings.exports.dir.clone();
    let app = spawn_app_with(settings).await;
    let t = app.provision("expiry").await;
    let id = request(&app, &t.owner_token, json!({ "scope": "tenant" })).await;
    assert_eq!(finished(&app, &t.owner_token, id).await["state"], "ready");
    assert_eq!(find_files(&dir).len(), 1);
    assert_eq!(download(&app, &t.owner_token, id, None).await.status, 200);

    actix_web::rt::time::sleep(Duration::from_millis(2_100)).await;
    let reply = app_request_with_range(&app, &t.owner_token, id, "bytes=0-").await;
    assert_problem(&reply, 410, "export_expired");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !find_files(&dir).is_empty() && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(find_files(&dir).is_empty(), "the sweep removed the archive");
    let export = app.get(&format!("/v1/exports/{id}"), &t.owner_token).await;
    assert_eq!(export.body["state"], "expired");
}

/// A relocation withdraws the ready exports built in the old home region (their
/// archives are in a store the new home's nodes cannot reach) in the switch's
/// transaction, and a platform job of the old region removes the archives
/// there. An export asked for afterwards is built in the new home and served.
#[actix_web::test]
async fn a_relocation_withdraws_ready_exports_and_the_old_region_removes_their_archives() {
    use crate::regions::{provision_in, spawn_regions};
    let nodes = spawn_regions(&["us-east1", "europe-west1"]).await;
    let (us, eu) = (&nodes["us-east1"], &nodes["europe-west1"]);
    let (tenant, token) = provision_in(us, "export-movers", "us-east1", None).await;
    let id = request(us, &token, json!({ "scope": "tenant" })).await;
    assert_eq!(finished(us, &token, id).await["state"], "ready");
    let dir = test_settings(&us.db_name).exports.dir;
    let built = find_files(&dir);
    assert_eq!(built.len(), 1, "{built:?}");
    assert!(built[0].to_string_lossy().contains("us-east1/"));

    let admin = us.platform_token();
    let path = format!("/v1/tenants/{tenant}/relocation");
    let started = us
        .post(&path, &admin, json!({ "to_region": "europe-west1" }))
        .await;
    assert_eq!(started.status, 202, "{}", started.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    while us.get(&path, &admin).await.body["status"] != "done" && Instant::now() < deadline {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let relocation = us.get(&path, &admin).await;
    assert_eq!(relocation.body["status"], "done", "{}", relocation.body);

    let export = eu.get(&format!("/v1/exports/{id}"), &token).await;
    assert_eq!(export.body["state"], "expired", "{}", export.body);
    assert!(
        export.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("relocated to europe-west1")),
        "{}",
        export.body
    );
    let reply = app_request_with_range(eu, &token, id, "bytes=0-").await;
    assert_problem(&reply, 410, "export_expired");
    let db = us.superuser_client().await;
    let removal = async || {
        db.query_opt(
            "SELECT home_region, state, result FROM jobs
             WHERE tenant_id IS NULL AND kind = 'exports.remove_archives'",
            &[],
        )
        .await
        .unwrap()
    };
    let mut job = removal().await;
    while job
        .as_ref()
        .is_none_or(|j| j.get::<_, String>(1) != "succeeded")
        && Instant::now() < deadline
    {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        job = removal().await;
    }
    let job = job.expect("the relocation enqueued the archives' removal");
    assert!(
        find_files(&dir).is_empty(),
        "the old region kept the archive"
    );
    assert_eq!(job.get::<_, String>(0), "us-east1");
    assert_eq!(job.get::<_, String>(1), "succeeded");
    assert_eq!(job.get::<_, Value>(2), json!({ "removed": 1 }));

    // The tenant's next export is built in its new home and downloads there.
    let again = request(eu, &token, json!({ "scope": "tenant" })).await;
    assert_eq!(finished(eu, &token, again).await["state"], "ready");
    assert_eq!(download(eu, &token, again, None).await.status, 200);
    let rebuilt = find_files(&dir);
    assert_eq!(rebuilt.len(), 1, "{rebuilt:?}");
    assert!(rebuilt[0].to_string_lossy().contains("europe-west1/"));
}
