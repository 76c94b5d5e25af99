//! LDAP sign-in against a real OpenLDAP (`slapd`) and the sessions it starts:
//! refresh rotation, reuse detection, logout, deprovisioning.

use serde_json::{Value, json};

use crate::helpers::{Reply, Tenant, TestApp, assert_problem, spawn_app};
use crate::slapd::{self, Slapd};

/// alice is an engineer, carol an admin, bob in no group.
pub(crate) fn directory() -> Slapd {
    let people = [
        slapd::person("alice", "alice-pw", "alice@example.com"),
        slapd::person("bob", "bob-pw", "bob@example.com"),
        slapd::person("carol", "carol-pw", "carol@example.com"),
    ]
    .concat();
    let groups = [
        slapd::group("engineering", &["alice"]),
        slapd::group("admins", &["carol"]),
    ]
    .concat();
    Slapd::start(&(people + &groups))
}

pub(crate) async fn ldap_provider(app: &TestApp, tenant: &Tenant, directory: &Slapd) {
    let mut body = crate::identity::ldap_body(&directory.url, slapd::SERVICE_PW);
    body["ldap"]["group_base_dn"] = json!(slapd::SUFFIX);
    body["role_mappings"] = json!([
        { "group": "engineering", "role": "member" },
        { "group": "admins", "role": "admin" },
    ]);
    crate::identity::create_provider(app, tenant, body).await;
}

pub(crate) async fn sign_in(app: &TestApp, slug: &str, username: &str, password: &str) -> Reply {
    app.request(
        "POST",
        &format!("/v1/auth/{slug}/ldap"),
        None,
        Some(json!({ "username": username, "password": password })),
    )
    .await
}

pub(crate) async fn refresh(app: &TestApp, token: &Value) -> Reply {
    app.request(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

async fn actions(app: &TestApp, tenant: &Tenant) -> Vec<(String, Value)> {
    let audit = app.get("/v1/audit?limit=200", &tenant.owner_token).await;
    audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["details"].clone(),
            )
        })
        .collect()
}

pub(crate) async fn setup(slug: &str) -> Option<(TestApp, Tenant, Slapd)> {
    if !slapd::available() {
        return None;
    }
    let directory = directory();
    let app = spawn_app().await;
    let tenant = app.provision(slug).await;
    ldap_provider(&app, &tenant, &directory).await;
    Some((app, tenant, directory))
}

#[actix_web::test]
async fn ldap_sign_in_checks_the_password_the_group_and_escapes_the_username() {
    let Some((app, t, _directory)) = setup("ldap-in").await else {
        return;
    };
    let reply = sign_in(&app, "ldap-in", "alice", "alice-pw").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["role"], "member");
    assert_eq!(reply.body["tenant_id"], t.id.to_string());
    let access = reply.body["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", &access).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["user"]["email"], "alice@example.com");
    assert_eq!(me.body["tenant"]["slug"], "ldap-in");
    // Signing in again finds the same user (by provider and subject).
    let again = sign_in(&app, "ldap-in", "alice", "alice-pw").await;
    assert_eq!(again.body["user_id"], reply.body["user_id"]);
    let carol = sign_in(&app, "ldap-in", "carol", "carol-pw").await;
    assert_eq!(carol.body["role"], "admin", "{}", carol.body);

    for (what, username, password) in [
        ("wrong password", "alice", "wrong"),
        ("unknown user", "mallory", "alice-pw"),
        ("filter injection", "*)(uid=*", "alice-pw"),
        ("injection with a wildcard", "*", "alice-pw"),
        ("empty password (an unauthenticated bind)", "alice", ""),
        ("outside every mapped group", "bob", "bob-pw"),
    ] {
        let reply = sign_in(&app, "ldap-in", username, password).await;
        assert_problem(&reply, 401, "unauthenticated");
        assert_eq!(reply.body["detail"], "invalid credentials", "{what}");
    }
    // An unknown tenant answers like a wrong password.
    let reply = sign_in(&app, "no-such-tenant", "alice", "alice-pw").await;
    assert_problem(&reply, 401, "unauthenticated");

    let trail = actions(&app, &t).await;
    let succeeded = trail.iter().filter(|(a, _)| a == "login_succeeded").count();
    assert_eq!(succeeded, 3, "{trail:?}");
    let reasons: Vec<&str> = trail
        .iter()
        .filter(|(a, _)| a == "login_failed")
        .map(|(_, d)| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 6, "{trail:?}");
    assert!(reasons.contains(&"invalid_credentials") && reasons.contains(&"not_in_a_mapped_group"));
    assert!(
        !format!("{trail:?}").contains("alice-pw"),
        "a password reached the trail"
    );
    // Only alice and carol were provisioned (with the owner: three users).
    let users = app.get("/v1/users", &t.owner_token).await;
    assert_eq!(
        users.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        users.body
    );
}

#[actix_web::test]
async fn password_sign_in_is_rate_limited_per_tenant_and_username() {
    let Some((app, _t, _directory)) = setup("ldap-rate").await else {
        return;
    };
    for _ in 0..5 {
        let reply = sign_in(&app, "ldap-rate", "alice", "guess").await;
        assert_problem(&reply, 401, "unauthenticated");
    }
    // The right password no longer gets through for this username …
    let reply = sign_in(&app, "ldap-rate", "alice", "alice-pw").await;
    assert_problem(&reply, 429, "rate_limited");
    let reply = sign_in(&app, "ldap-rate", "ALICE", "alice-pw").await;
    assert_problem(&reply, 429, "rate_limited");
    // … while another username of the tenant still does.
    let reply = sign_in(&app, "ldap-rate", "carol", "carol-pw").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[actix_web::test]
async fn refresh_rotates_and_a_reused_token_ends_the_whole_family() {
    let Some((app, t, _directory)) = setup("ldap-refresh").await else {
        return;
    };
    let session = sign_in(&app, "ldap-refresh", "alice", "alice-pw").await;
    let first = session.body["refresh_token"].clone();
    let second = refresh(&app, &first).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_ne!(second.body["refresh_token"], first);
    let access = second.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/me", access).await.status, 200);
    let third = refresh(&app, &second.body["refresh_token"]).await;
    assert_eq!(third.status, 200, "{}", third.body);

    // The first token again: a copy is in use. Refused, and the newest token
    // of the family dies with it.
    let reused = refresh(&app, &first).await;
    assert_problem(&reused, 401, "unauthenticated");
    let newest = refresh(&app, &third.body["refresh_token"]).await;
    assert_problem(&newest, 401, "unauthenticated");
    let trail = actions(&app, &t).await;
    let detected: Vec<_> = trail
        .iter()
        .filter(|(a, _)| a == "refresh_reuse_detected")
        .collect();
    // Both dead tokens were recorded; the first presentation ended the one
    // live session of the family (newest first).
    assert_eq!(detected.len(), 2, "{trail:?}");
    assert_eq!(detected[1].1["sessions_ended"], 1);
    assert_eq!(detected[0].1["sessions_ended"], 0);
    assert_eq!(detected[0].1["family_id"], detected[1].1["family_id"]);

    // Another sign-in is another family, untouched.
    let other = sign_in(&app, "ldap-refresh", "alice", "alice-pw").await;
    assert_eq!(
        refresh(&app, &other.body["refresh_token"]).await.status,
        200
    );

    // Tampered and foreign-looking tokens are refused alike.
    let text = other.body["refresh_token"].as_str().unwrap();
    let tampered = format!("{}x", &text[..text.len() - 1]);
    for token in [json!(tampered), json!("mrt_nonsense"), json!("")] {
        assert_problem(&refresh(&app, &token).await, 401, "unauthenticated");
    }
}

#[actix_web::test]
async fn logout_and_deprovisioning_end_sessions_at_once() {
    let Some((app, t, _directory)) = setup("ldap-out").await else {
        return;
    };
    let session = sign_in(&app, "ldap-out", "alice", "alice-pw").await;
    let logout = app
        .request(
            "POST",
            "/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": session.body["refresh_token"] })),
        )
        .await;
    assert_eq!(logout.status, 204, "{}", logout.body);
    let after = refresh(&app, &session.body["refresh_token"]).await;
    assert_problem(&after, 401, "unauthenticated");

    // Disabled: the refresh token and the access token stop working.
    let session = sign_in(&app, "ldap-out", "alice", "alice-pw").await;
    let user = session.body["user_id"].as_str().unwrap().to_owned();
    let access = session.body["access_token"].as_str().unwrap().to_owned();
    let disabled = app
        .patch(
            &format!("/v1/users/{user}"),
            &t.owner_token,
            json!({ "status": "disabled" }),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_problem(
        &refresh(&app, &session.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
    assert_eq!(app.get("/v1/me", &access).await.status, 401);
    // A disabled user cannot sign in either.
    assert_problem(
        &sign_in(&app, "ldap-out", "alice", "alice-pw").await,
        401,
        "unauthenticated",
    );

    // Deleted: not silently re-created by the next sign-in.
    let deleted = app
        .delete(&format!("/v1/users/{user}"), &t.owner_token)
        .await;
    assert_eq!(deleted.status, 204);
    assert_problem(
        &sign_in(&app, "ldap-out", "alice", "alice-pw").await,
        401,
        "unauthenticated",
    );
    let users = app.get("/v1/users", &t.owner_token).await;
    assert!(
        !users.body.to_string().contains("alice@example.com"),
        "{}",
        users.body
    );
    let reasons: Vec<String> = actions(&app, &t)
        .await
        .into_iter()
        .filter(|(a, _)| a == "login_failed")
        .map(|(_, d)| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["user_deleted", "user_disabled"], "newest first");
}

/// Every refresh of an LDAP session asks the directory again: out of the
/// mapped groups, or gone, and the session ends.
#[actix_web::test]
async fn ldap_sessions_end_when_the_directory_drops_the_user() {
    let Some((app, _t, directory)) = setup("ldap-recheck").await else {
        return;
    };
    let alice = sign_in(&app, "ldap-recheck", "alice", "alice-pw").await;
    let carol = sign_in(&app, "ldap-recheck", "carol", "carol-pw").await;
    let alice_next = refresh(&app, &alice.body["refresh_token"]).await;
    assert_eq!(alice_next.status, 200, "{}", alice_next.body);

    directory.modify(&format!(
        // groupOfNames needs a member: alice is replaced by the service entry.
        "dn: cn=engineering,ou=groups,{}\nchangetype: modify\nreplace: member\nmember: {}\n\n\
         dn: uid=carol,{}\nchangetype: delete\n",
        slapd::SUFFIX,
        slapd::SERVICE_DN,
        slapd::PEOPLE
    ));
    assert_problem(
        &refresh(&app, &alice_next.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &refresh(&app, &carol.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
    // Ended, not just refused once.
    assert_problem(
        &refresh(&app, &alice_next.body["refresh_token"]).await,
        401,
        "unauthenticated",
    );
}

/// Sign-in and refresh carry no access token, yet are routed like tenant
/// requests: an EU tenant's password check and refresh run in its home region
/// (forwarded from another EU region, redirected from outside the EU).
#[actix_web::test]
async fn sign_in_and_refresh_run_only_where_the_residency_allows() {
    if !slapd::available() {
        return;
    }
    let directory = directory();
    let nodes = crate::regions::spawn_regions(&["us-east1", "europe-west1", "europe-west3"]).await;
    let home = &nodes["europe-west1"];
    let (tenant, owner_token) = crate::regions::provision_in(
        home,
        "eu-signin",
        "europe-west1",
        Some(json!({ "jurisdiction": "eu" })),
    )
    .await;
    let owner = Tenant {
        id: tenant,
        owner_id: uuid::Uuid::nil(),
        owner_token,
    };
    ldap_provider(home, &owner, &directory).await;

    // From another EU region: forwarded to the home region, answered there —
    // or, when europe-west3's probes saw europe-west1 down (a loaded machine:
    // the full suite), served by europe-west3 as the EU failover. Never outside.
    let eu = ["europe-west1", "europe-west3"];
    let session = sign_in(&nodes["europe-west3"], "eu-signin", "alice", "alice-pw").await;
    assert_eq!(session.status, 200, "{}", session.body);
    let served = crate::regions::header(&session, "x-meridian-region");
    assert!(eu.contains(&served.as_str()), "{served}");
    let next = refresh(&nodes["europe-west3"], &session.body["refresh_token"]).await;
    assert_eq!(next.status, 200, "{}", next.body);
    let served = crate::regions::header(&next, "x-meridian-region");
    assert!(eu.contains(&served.as_str()), "{served}");

    // From outside the EU: a redirect, nothing processed in us-east1.
    let no_redirects = awc::Client::builder().disable_redirects().finish();
    for (path, body) in [
        (
            "/v1/auth/eu-signin/ldap".to_owned(),
            json!({"username": "alice", "password": "alice-pw"}),
        ),
        (
            "/v1/auth/refresh".to_owned(),
            json!({"refresh_token": next.body["refresh_token"]}),
        ),
    ] {
        let response = no_redirects
            .post(format!("{}{path}", nodes["us-east1"].base))
            .send_json(&body)
            .await
            .unwrap();
        assert_eq!(response.status(), 307, "{path}");
        // To the home region, or (if us-east1's probes saw it down under load)
        // the EU region it fails over to: never served outside the EU.
        let location = response
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            [&home.base, &nodes["europe-west3"].base]
                .iter()
                .any(|base| location == format!("{base}{path}")),
            "{location}"
        );
    }
    // The redirected refresh did not use the token up.
    let last = refresh(home, &next.body["refresh_token"]).await;
    assert_eq!(last.status, 200, "{}", last.body);
}

/// A refresh of an LDAP session applies the directory's role now, as a sign-in
/// would: a user added to a group mapped to a higher role gets it at the next
/// refresh, and loses it when removed (issue 14: the refresh kept the role of
/// the sign-in until the next sign-in).
#[actix_web::test]
async fn a_refresh_applies_a_changed_group_membership() {
    let Some((app, _t, directory)) = setup("ldap-regroup").await else {
        return;
    };
    let alice = sign_in(&app, "ldap-regroup", "alice", "alice-pw").await;
    assert_eq!(alice.body["role"], "member", "{}", alice.body);
    let access = alice.body["access_token"].as_str().unwrap();
    assert_problem(&app.get("/v1/audit", access).await, 403, "forbidden");

    // Out of engineering (groupOfNames needs a member: the service entry stays),
    // into admins.
    let (engineering, admins) = (
        format!("cn=engineering,ou=groups,{}", slapd::SUFFIX),
        format!("cn=admins,ou=groups,{}", slapd::SUFFIX),
    );
    let alice_dn = format!("uid=alice,{}", slapd::PEOPLE);
    directory.modify(&format!(
        "dn: {engineering}\nchangetype: modify\nreplace: member\nmember: {}\n\n\
         dn: {admins}\nchangetype: modify\nadd: member\nmember: {alice_dn}\n",
        slapd::SERVICE_DN
    ));
    let promoted = refresh(&app, &alice.body["refresh_token"]).await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    assert_eq!(promoted.body["role"], "admin", "{}", promoted.body);
    let access = promoted.body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/audit", access).await.status, 200);
    let me = app.get("/v1/me", access).await;
    assert_eq!(me.body["user"]["role"], "admin", "{}", me.body);

    // Back in engineering, the first mapping: member again.
    directory.modify(&format!(
        "dn: {engineering}\nchangetype: modify\nadd: member\nmember: {alice_dn}\n"
    ));
    let demoted = refresh(&app, &promoted.body["refresh_token"]).await;
    assert_eq!(demoted.status, 200, "{}", demoted.body);
    assert_eq!(demoted.body["role"], "member", "{}", demoted.body);
    let access = demoted.body["access_token"].as_str().unwrap();
    assert_problem(&app.get("/v1/audit", access).await, 403, "forbidden");
}

/// A refresh applies the directory's role within the last-owner rule: the
/// tenant's last active owner, moved out of the owners' group, stays owner.
#[actix_web::test]
async fn a_refresh_never_demotes_the_last_owner() {
    let Some((app, t, directory)) = setup("ldap-last-owner").await else {
        return;
    };
    directory.modify(&format!(
        "dn: cn=owners,ou=groups,{}\nchangetype: add\nobjectClass: groupOfNames\ncn: owners\n\
         member: uid=bob,{}\n",
        slapd::SUFFIX,
        slapd::PEOPLE
    ));
    let providers = app.get("/v1/identity-providers", &t.owner_token).await;
    let provider = providers.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mapped = app
        .patch(
            &format!("/v1/identity-providers/{provider}"),
            &t.owner_token,
            json!({ "role_mappings": [
                { "group": "engineering", "role": "member" },
                { "group": "admins", "role": "admin" },
                { "group": "owners", "role": "owner" },
            ]}),
        )
        .await;
    assert_eq!(mapped.status, 200, "{}", mapped.body);
    let bob = sign_in(&app, "ldap-last-owner", "bob", "bob-pw").await;
    assert_eq!(bob.body["role"], "owner", "{}", bob.body);
    // Bob is now the tenant's only owner.
    let access = bob.body["access_token"].as_str().unwrap();
    let gone = app
        .delete(&format!("/v1/users/{}", t.owner_id), access)
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);

    // Out of owners, into engineering: a sign-in or refresh would make him a
    // member, but he is the last owner.
    directory.modify(&format!(
        "dn: cn=owners,ou=groups,{suffix}\nchangetype: modify\nreplace: member\nmember: {service}\n\n\
         dn: cn=engineering,ou=groups,{suffix}\nchangetype: modify\nadd: member\n\
         member: uid=bob,{people}\n",
        suffix = slapd::SUFFIX,
        service = slapd::SERVICE_DN,
        people = slapd::PEOPLE
    ));
    let kept = refresh(&app, &bob.body["refresh_token"]).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.body["role"], "owner", "{}", kept.body);
    let me = app
        .get("/v1/me", kept.body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(me.body["user"]["role"], "owner", "{}", me.body);
}
