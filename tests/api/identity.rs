//! `/v1/identity-providers`: configuration, the write-only secret, the owner
//! rule for privileged mappings, and `/test` against a real discovery server
//! and a real OpenLDAP (`slapd`).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Tenant, TestApp, assert_problem, spawn_app};
use crate::slapd::{self, Slapd};

pub const SECRET: &str = "client-secret-that-must-never-leave";

pub fn oidc_body(issuer: &str) -> Value {
    json!({
        "kind": "oidc",
        "name": format!("idp-{}", Uuid::new_v4().simple()),
        "oidc": { "issuer": issuer, "client_id": "meridian" },
        "secret": SECRET,
        "role_mappings": [{ "group": "eng", "role": "member" }],
        "default_role": "viewer",
        "allowed_email_domains": ["Example.COM"],
        "redirect_uris": ["http://app.example/callback"],
    })
}

/// An identity provider of `tenant` (created by its owner); its id.
pub async fn create_provider(app: &TestApp, tenant: &Tenant, body: Value) -> Uuid {
    let reply = app
        .post("/v1/identity-providers", &tenant.owner_token, body)
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["id"].as_str().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn providers_are_configured_and_the_secret_never_comes_back() {
    let app = spawn_app().await;
    let t = app.provision("idp-crud").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let reply = app
        .post(
            "/v1/identity-providers",
            &admin,
            oidc_body("https://idp.example/realm/"),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_eq!(reply.body["has_secret"], true);
    assert_eq!(reply.body["oidc"]["issuer"], "https://idp.example/realm");
    assert_eq!(reply.body["oidc"]["groups_claim"], "groups");
    assert_eq!(reply.body["allowed_email_domains"], json!(["example.com"]));
    assert_eq!(reply.body["ldap"], Value::Null);

    let one = app
        .get(&format!("/v1/identity-providers/{id}"), &admin)
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["name"], reply.body["name"]);
    let list = app.get("/v1/identity-providers", &admin).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);

    let patched = app
        .patch(
            &format!("/v1/identity-providers/{id}"),
            &admin,
            json!({ "name": "Corporate SSO", "redirect_uris": ["https://console.example/cb"],
                    "default_role": null, "secret": "rotated-secret-value" }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["name"], "Corporate SSO");
    assert_eq!(patched.body["default_role"], Value::Null);
    assert_eq!(
        patched.body["redirect_uris"],
        json!(["https://console.example/cb"])
    );
    assert_eq!(patched.body["role_mappings"], reply.body["role_mappings"]);

    // The secret is in no answer and no audit event; the stored one is the new one.
    let audit = app.get("/v1/audit", &t.owner_token).await;
    for text in [
        reply.body.to_string(),
        one.body.to_string(),
        list.body.to_string(),
        patched.body.to_string(),
        audit.body.to_string(),
    ] {
        assert!(
            !text.contains(SECRET) && !text.contains("rotated-secret"),
            "{text}"
        );
    }
    assert!(audit.body.to_string().contains("identity_provider_updated"));
    let db = app.superuser_client().await;
    // At rest only sealed (issue 15): no plaintext column, and the ciphertext
    // does not contain the secret.
    let row = db
        .query_one(
            "SELECT secret, secret_sealed FROM identity_providers WHERE id = $1",
            &[&id.parse::<Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None);
    let sealed: Vec<u8> = row.get(1);
    assert!(!sealed.is_empty());
    assert!(
        !sealed
            .windows(b"rotated-secret".len())
            .any(|w| w == b"rotated-secret")
    );

    let gone = app
        .delete(&format!("/v1/identity-providers/{id}"), &admin)
        .await;
    assert_eq!(gone.status, 204);
    let missing = app
        .get(&format!("/v1/identity-providers/{id}"), &admin)
        .await;
    assert_problem(&missing, 404, "not_found");
}

#[actix_web::test]
async fn bad_configurations_are_refused() {
    let app = spawn_app().await;
    let t = app.provision("idp-bad").await;
    let mut ldap_with_oidc = oidc_body("https://idp.example");
    ldap_with_oidc["kind"] = json!("ldap");
    let mut bad_redirect = oidc_body("https://idp.example");
    bad_redirect["redirect_uris"] = json!(["/relative/callback"]);
    let mut bad_issuer = oidc_body("idp.example");
    bad_issuer["name"] = json!("x");
    let mut fragment = oidc_body("https://idp.example");
    fragment["redirect_uris"] = json!(["https://app.example/cb#frag"]);
    let mut platform_role = oidc_body("https://idp.example");
    platform_role["role_mappings"] = json!([{ "group": "ops", "role": "platform_admin" }]);
    let mut unknown = oidc_body("https://idp.example");
    unknown["tenant_id"] = json!(Uuid::new_v4());
    // Hosts the outbound client's parser refuses (issue 14: the issuer had a
    // parser of its own that let them through).
    let numeric_issuer = oidc_body("http://2130706433/realm");
    let bad_port_issuer = oidc_body("https://idp.example:99999");
    let ldap_bad_attr = json!({"kind": "ldap", "name": "dir",
        "ldap": {"url": "ldap://127.0.0.1:1", "bind_dn": "cn=x", "base_dn": "dc=x",
                 "username_attribute": "uid)(x=*"}});
    for (what, body) in [
        ("ldap kind with oidc settings", ldap_with_oidc),
        ("relative redirect uri", bad_redirect),
        ("issuer without scheme", bad_issuer),
        ("issuer with a numeric-looking host", numeric_issuer),
        ("issuer with a port out of range", bad_port_issuer),
        ("redirect uri with a fragment", fragment),
        ("platform role mapping", platform_role),
        ("unknown field", unknown),
        ("filter characters in an attribute name", ldap_bad_attr),
    ] {
        let reply = app
            .post("/v1/identity-providers", &t.owner_token, body)
            .await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.body);
        assert_problem(&reply, 400, "validation_failed");
    }
    let list = app.get("/v1/identity-providers", &t.owner_token).await;
    assert_eq!(list.body["items"], json!([]), "nothing was written");
}

/// A mapping hands its role to everyone the directory puts in the group, so
/// mappings to owner or compliance are an owner's decision, like granting them.
#[actix_web::test]
async fn only_owners_map_groups_to_owner_or_compliance() {
    let app = spawn_app().await;
    let t = app.provision("idp-owners").await;
    let (_, admin) = app.add_user(&t, "admin").await;
    let mut privileged = oidc_body("https://idp.example");
    privileged["role_mappings"] = json!([{ "group": "it", "role": "owner" }]);
    let refused = app
        .post("/v1/identity-providers", &admin, privileged.clone())
        .await;
    assert_problem(&refused, 403, "forbidden");
    let mut compliance_default = oidc_body("https://idp.example");
    compliance_default["default_role"] = json!("compliance");
    let refused = app
        .post("/v1/identity-providers", &admin, compliance_default)
        .await;
    assert_problem(&refused, 403, "forbidden");

    let id = create_provider(&app, &t, privileged).await;
    let path = format!("/v1/identity-providers/{id}");
    // The admin may not change or remove the owner mapping …
    let demote = json!({ "role_mappings": [{ "group": "it", "role": "member" }] });
    assert_problem(
        &app.patch(&path, &admin, demote.clone()).await,
        403,
        "forbidden",
    );
    assert_problem(&app.delete(&path, &admin).await, 403, "forbidden");
    // … may change what is not a mapping …
    let renamed = app.patch(&path, &admin, json!({ "name": "Renamed" })).await;
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    // … and an owner may do all of it.
    let demoted = app.patch(&path, &t.owner_token, demote).await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_eq!(demoted.body["role_mappings"][0]["role"], "member");
    // Now no privileged mapping is involved: the admin manages it.
    assert_eq!(app.delete(&path, &admin).await.status, 204);
}

/// A discovery document and JWKS served on a loopback port.
async fn discovery_server(issuer_override: Option<&str>) -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let issuer = issuer_override.unwrap_or(&base).to_owned();
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
    });
    let server = HttpServer::new(move || {
        let doc = doc.clone();
        App::new()
            .route(
                "/.well-known/openid-configuration",
                web::get().to(move || {
                    let doc = doc.clone();
                    async move { HttpResponse::Ok().json(doc) }
                }),
            )
            .route(
                "/jwks",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .json(json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}))
                }),
            )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (base, handle)
}

fn checks(reply: &crate::helpers::Reply) -> Vec<(String, bool)> {
    reply.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn test_diagnoses_oidc_discovery() {
    let app = spawn_app().await;
    let t = app.provision("idp-test-oidc").await;
    let (good, good_server) = discovery_server(None).await;
    let (liar, liar_server) = discovery_server(Some("https://someone-else.example")).await;
    let closed = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let mut cases = Vec::new();
    for issuer in [&good, &liar, &closed] {
        let id = create_provider(&app, &t, oidc_body(issuer)).await;
        let reply = app
            .post(
                &format!("/v1/identity-providers/{id}/test"),
                &t.owner_token,
                json!({}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        cases.push(reply);
    }
    assert_eq!(cases[0].body["ok"], true, "{}", cases[0].body);
    assert_eq!(
        checks(&cases[0]),
        [("discovery".into(), true), ("jwks".into(), true)]
    );
    assert_eq!(cases[1].body["ok"], false);
    assert_eq!(checks(&cases[1]), [("discovery".into(), false)]);
    assert!(
        cases[1].body["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("someone-else.example"),
        "{}",
        cases[1].body
    );
    assert_eq!(checks(&cases[2]), [("discovery".into(), false)]);
    good_server.stop(false).await;
    liar_server.stop(false).await;
}

pub fn ldap_body(url: &str, password: &str) -> Value {
    json!({
        "kind": "ldap",
        "name": format!("dir-{}", Uuid::new_v4().simple()),
        "ldap": { "url": url, "bind_dn": slapd::SERVICE_DN, "base_dn": slapd::PEOPLE, "timeout_ms": 2000 },
        "secret": password,
        "role_mappings": [{ "group": "engineering", "role": "member" }],
    })
}

#[actix_web::test]
async fn test_diagnoses_ldap_connect_and_service_bind() {
    if !slapd::available() {
        return;
    }
    let directory = Slapd::start(&slapd::person("alice", "alice-pw", "alice@example.com"));
    let app = spawn_app().await;
    let t = app.provision("idp-test-ldap").await;
    let good = create_provider(&app, &t, ldap_body(&directory.url, slapd::SERVICE_PW)).await;
    let wrong = create_provider(&app, &t, ldap_body(&directory.url, "not-the-password")).await;
    let mut missing_base = ldap_body(&directory.url, slapd::SERVICE_PW);
    missing_base["ldap"]["base_dn"] = json!("ou=nowhere,dc=meridian,dc=test");
    let missing_base = create_provider(&app, &t, missing_base).await;
    let test = |id: Uuid| {
        let app = &app;
        let token = t.owner_token.clone();
        async move {
            app.post(
                &format!("/v1/identity-providers/{id}/test"),
                &token,
                json!({}),
            )
            .await
        }
    };
    let reply = test(good).await;
    assert_eq!(reply.body["ok"], true, "{}", reply.body);
    assert_eq!(
        checks(&reply),
        [
            ("connect".into(), true),
            ("service_bind".into(), true),
            ("base_dn".into(), true)
        ]
    );
    let reply = test(wrong).await;
    assert_eq!(
        checks(&reply),
        [("connect".into(), true), ("service_bind".into(), false)]
    );
    assert!(!reply.body.to_string().contains("not-the-password"));
    let reply = test(missing_base).await;
    assert_eq!(checks(&reply).last().unwrap(), &("base_dn".into(), false));
    drop(directory);
    // The directory is gone: the connect check says so.
    let reply = test(good).await;
    assert_eq!(
        checks(&reply),
        [("connect".into(), false)],
        "{}",
        reply.body
    );
}
