//! The isolation suite: every route of the app, against every way of reaching
//! another tenant's data or acting without the right token or role.

use std::collections::BTreeSet;

use meridian::auth::{Claims, Role};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, spawn_app};

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Access {
    Public,
    Platform,
    /// Tenant users with at least this role (platform admins are refused).
    Tenant(Role),
    /// Platform admins, and tenant users with at least this role.
    Either(Role),
    /// No access token: the request names its tenant (a refresh token).
    SignIn,
}

#[derive(Clone, Copy)]
pub(crate) enum Target {
    None,
    /// A region id, not a tenant's resource.
    Region,
    /// A tenant's slug (sign-in); here one that names no tenant.
    Slug,
    Tenant,
    User,
    Channel,
    Webhook,
    Job,
    Provider,
    Export,
    Erasure,
    CalendarAccount,
    CalendarEvent,
    /// A platform user (platform routes; no tenant owns it).
    PlatformUser,
}

pub(crate) struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub target: Target,
    pub body: fn() -> Option<Value>,
}

fn no_body() -> Option<Value> {
    None
}

/// Every route of the app. `route_table_lists_every_route` fails when one is missing.
pub(crate) fn routes() -> Vec<Route> {
    use Access::*;
    use Target as T;
    let r = |method, path, access, target, body| Route {
        method,
        path,
        access,
        target,
        body,
    };
    vec![
        r("GET", "/healthz", Public, T::None, no_body),
        r("GET", "/readyz", Public, T::None, no_body),
        r("GET", "/openapi.json", Public, T::None, no_body),
        r("GET", "/signing-keys", Public, T::None, no_body),
        r("POST", "/v1/tenants", Platform, T::None, || {
            Some(
                json!({"slug": format!("t{}", &Uuid::new_v4().simple().to_string()[..10]), "name": "N", "home_region": "us-east1",
                        "owner": {"email": "o@n.example", "display_name": "O"}}),
            )
        }),
        r("GET", "/v1/tenants", Platform, T::None, no_body),
        r("GET", "/v1/directory", Platform, T::None, no_body),
        r(
            "GET",
            "/v1/tenants/{id}",
            Either(Role::Viewer),
            T::Tenant,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/tenants/{id}",
            Either(Role::Owner),
            T::Tenant,
            || Some(json!({"name": "Renamed"})),
        ),
        r("POST", "/v1/users", Tenant(Role::Admin), T::None, || {
            Some(
                json!({"email": format!("{}@x.example", Uuid::new_v4().simple()), "display_name": "U", "role": "member"}),
            )
        }),
        r("GET", "/v1/users", Tenant(Role::Viewer), T::None, no_body),
        r(
            "GET",
            "/v1/users/{id}",
            Tenant(Role::Viewer),
            T::User,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/users/{id}",
            Tenant(Role::Admin),
            T::User,
            || Some(json!({"display_name": "Changed"})),
        ),
        r(
            "DELETE",
            "/v1/users/{id}",
            Tenant(Role::Admin),
            T::User,
            no_body,
        ),
        r("POST", "/v1/channels", Tenant(Role::Admin), T::None, || {
            Some(json!({"name": format!("c{}", Uuid::new_v4().simple())}))
        }),
        r(
            "GET",
            "/v1/channels",
            Tenant(Role::Viewer),
            T::None,
            no_body,
        ),
        r(
            "GET",
            "/v1/channels/{id}",
            Tenant(Role::Viewer),
            T::Channel,
            no_body,
        ),
        r(
            "DELETE",
            "/v1/channels/{id}",
            Tenant(Role::Admin),
            T::Channel,
            no_body,
        ),
        r(
            "POST",
            "/v1/channels/{id}/messages",
            Tenant(Role::Member),
            T::Channel,
            || Some(json!({"body": "hello"})),
        ),
        r(
            "GET",
            "/v1/channels/{id}/messages",
            Tenant(Role::Viewer),
            T::Channel,
            no_body,
        ),
        r(
            "GET",
            "/v1/channels/{id}/messages/{message_id}",
            Tenant(Role::Viewer),
            T::Channel,
            no_body,
        ),
        r(
            "GET",
            "/v1/search?q=hello",
            Tenant(Role::Viewer),
            T::None,
            no_body,
        ),
        r("GET", "/v1/audit", Either(Role::Admin), T::None, no_body),
        r(
            "GET",
            "/v1/audit/verify?tenant={id}",
            Either(Role::Admin),
            T::Tenant,
            no_body,
        ),
        r(
            "GET",
            "/v1/audit/export?tenant={id}",
            Either(Role::Admin),
            T::Tenant,
            no_body,
        ),
        r(
            "GET",
            "/v1/access-log",
            Tenant(Role::Owner),
            T::None,
            no_body,
        ),
        r("GET", "/v1/usage", Tenant(Role::Admin), T::None, no_body),
        r(
            "GET",
            "/v1/usage/history",
            Tenant(Role::Admin),
            T::None,
            no_body,
        ),
        r("GET", "/v1/regions", Either(Role::Viewer), T::None, no_body),
        r("GET", "/v1/regions/tenants", Platform, T::None, no_body),
        r(
            "GET",
            "/v1/regions/{id}/top-tenants",
            Platform,
            T::Region,
            no_body,
        ),
        r(
            "POST",
            "/v1/tenants/{id}/relocation",
            Platform,
            T::Tenant,
            || Some(json!({"to_region": "europe-west1"})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/relocation",
            Either(Role::Admin),
            T::Tenant,
            no_body,
        ),
        r(
            "POST",
            "/v1/regions/{id}/evacuate",
            Platform,
            T::Region,
            no_body,
        ),
        r(
            "POST",
            "/v1/regions/{id}/drain",
            Platform,
            T::Region,
            || Some(json!({"dry_run": true})),
        ),
        r(
            "POST",
            "/v1/regions/{id}/undrain",
            Platform,
            T::Region,
            no_body,
        ),
        r("POST", "/v1/webhooks", Tenant(Role::Admin), T::None, || {
            Some(json!({"url": "http://hooks.example/in"}))
        }),
        r("GET", "/v1/webhooks", Tenant(Role::Admin), T::None, no_body),
        r(
            "GET",
            "/v1/webhooks/{id}",
            Tenant(Role::Admin),
            T::Webhook,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/webhooks/{id}",
            Tenant(Role::Admin),
            T::Webhook,
            || Some(json!({"description": "changed"})),
        ),
        r(
            "DELETE",
            "/v1/webhooks/{id}",
            Tenant(Role::Admin),
            T::Webhook,
            no_body,
        ),
        r(
            "GET",
            "/v1/webhooks/{id}/deliveries",
            Tenant(Role::Admin),
            T::Webhook,
            no_body,
        ),
        r(
            "GET",
            "/v1/tenants/{id}/ai-engine",
            Tenant(Role::Viewer),
            T::Tenant,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/tenants/{id}/ai-engine",
            Tenant(Role::Owner),
            T::Tenant,
            || Some(json!({"ai_engine": "extractive"})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/encryption",
            Tenant(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/tenants/{id}/encryption",
            Tenant(Role::Owner),
            T::Tenant,
            || Some(json!({"messages": false})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/keys",
            Either(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "GET",
            "/v1/tenants/{id}/residency-report",
            Either(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "POST",
            "/v1/tenants/{id}/keys/rotate",
            Either(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "DELETE",
            "/v1/tenants/{id}/keys",
            Platform,
            T::Tenant,
            || Some(json!({"confirm": "not the id"})),
        ),
        // Tenant erasure: a wrong slug erases nothing (422), restore without
        // a pending erasure is a 409, and a tenant never erased has none (404).
        r("DELETE", "/v1/tenants/{id}", Platform, T::Tenant, || {
            Some(json!({"confirm": "not the slug"}))
        }),
        r(
            "POST",
            "/v1/tenants/{id}/restore",
            Platform,
            T::Tenant,
            no_body,
        ),
        r(
            "GET",
            "/v1/tenants/{id}/erasure",
            Platform,
            T::Tenant,
            no_body,
        ),
        r(
            "POST",
            "/v1/channels/{id}/summaries",
            Tenant(Role::Member),
            T::Channel,
            || Some(json!({"max_sentences": 3})),
        ),
        r(
            "GET",
            "/v1/channels/{id}/summaries/{summary_id}",
            Tenant(Role::Viewer),
            T::Channel,
            no_body,
        ),
        r(
            "POST",
            "/v1/identity-providers",
            Tenant(Role::Admin),
            T::None,
            || Some(crate::identity::oidc_body("https://idp.example")),
        ),
        r(
            "GET",
            "/v1/identity-providers",
            Tenant(Role::Admin),
            T::None,
            no_body,
        ),
        r(
            "GET",
            "/v1/identity-providers/{id}",
            Tenant(Role::Admin),
            T::Provider,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/identity-providers/{id}",
            Tenant(Role::Admin),
            T::Provider,
            || Some(json!({"name": "changed"})),
        ),
        r(
            "DELETE",
            "/v1/identity-providers/{id}",
            Tenant(Role::Admin),
            T::Provider,
            no_body,
        ),
        r(
            "POST",
            "/v1/identity-providers/{id}/test",
            Tenant(Role::Admin),
            T::Provider,
            no_body,
        ),
        // The platform's own sign-in and accounts: no tenant's; a tenant
        // token gets 403 on the accounts (`role_checks…`), 401 on the sign-in.
        r(
            "GET",
            "/v1/auth/platform/oidc/start?redirect_uri=http%3A%2F%2Fconsole.example%2Fcb",
            SignIn,
            T::None,
            no_body,
        ),
        r(
            "GET",
            "/v1/auth/platform/oidc/callback?code=c&state=mps_x",
            SignIn,
            T::None,
            no_body,
        ),
        r("POST", "/v1/auth/platform/refresh", SignIn, T::None, || {
            Some(json!({"refresh_token": "mpr_notatoken"}))
        }),
        r("POST", "/v1/auth/platform/logout", SignIn, T::None, || {
            Some(json!({"refresh_token": "mpr_notatoken"}))
        }),
        r("GET", "/v1/platform/users", Platform, T::None, no_body),
        r("POST", "/v1/platform/users", Platform, T::None, || {
            Some(json!({"issuer": "https://idp.example", "subject": "s",
                        "email": "s@example.com", "role": "operator"}))
        }),
        r(
            "PATCH",
            "/v1/platform/users/{id}",
            Platform,
            T::PlatformUser,
            || Some(json!({"status": "disabled"})),
        ),
        r("POST", "/v1/auth/refresh", SignIn, T::None, || {
            Some(json!({"refresh_token": "mrt_0123456789abcdef0123456789abcdef_notatoken"}))
        }),
        r("POST", "/v1/auth/logout", SignIn, T::None, || {
            Some(json!({"refresh_token": "mrt_0123456789abcdef0123456789abcdef_notatoken"}))
        }),
        r("GET", "/v1/me", Tenant(Role::Viewer), T::None, no_body),
        r(
            "GET",
            "/v1/auth/{tenant_slug}/oidc/start?redirect_uri=http%3A%2F%2Fapp.example%2Fcb",
            SignIn,
            T::Slug,
            no_body,
        ),
        r(
            "GET",
            "/v1/auth/oidc/callback?code=c&state=mst_0123456789abcdef0123456789abcdef_x",
            SignIn,
            T::None,
            no_body,
        ),
        // Where to sign in: names a region, never a tenant's data; an unknown
        // slug answers as one served here (`signin_origin.rs`).
        r(
            "GET",
            "/v1/auth/{tenant_slug}/origin",
            Public,
            T::Slug,
            no_body,
        ),
        r(
            "POST",
            "/v1/auth/{tenant_slug}/ldap",
            SignIn,
            T::Slug,
            || Some(json!({"username": "alice", "password": "pw"})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/usage",
            Platform,
            T::Tenant,
            no_body,
        ),
        r(
            "POST",
            "/v1/tenants/{id}/impersonations",
            Platform,
            T::Tenant,
            || Some(json!({"reason": "isolation suite", "minutes": 5})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/impersonations",
            Tenant(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "DELETE",
            "/v1/tenants/{id}/impersonations/{impersonation_id}",
            Either(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "GET",
            "/v1/tenants/{id}/impersonation-policy",
            Tenant(Role::Viewer),
            T::Tenant,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/tenants/{id}/impersonation-policy",
            Tenant(Role::Owner),
            T::Tenant,
            || Some(json!({"writes_allowed": false})),
        ),
        r(
            "POST",
            "/v1/calendar-accounts",
            Tenant(Role::Admin),
            T::None,
            || {
                Some(
                    json!({"base_url": "http://calendar.example/", "username": "u", "password": "p"}),
                )
            },
        ),
        r(
            "GET",
            "/v1/calendar-accounts",
            Tenant(Role::Admin),
            T::None,
            no_body,
        ),
        r(
            "GET",
            "/v1/calendar-accounts/{id}",
            Tenant(Role::Admin),
            T::CalendarAccount,
            no_body,
        ),
        r(
            "DELETE",
            "/v1/calendar-accounts/{id}",
            Tenant(Role::Admin),
            T::CalendarAccount,
            no_body,
        ),
        r(
            "POST",
            "/v1/calendar-accounts/{id}/sync",
            Tenant(Role::Admin),
            T::CalendarAccount,
            no_body,
        ),
        r(
            "POST",
            "/v1/calendar-accounts/{id}/grants",
            Tenant(Role::Admin),
            T::CalendarAccount,
            || Some(json!({"path": "/x/cal/", "user_id": null})),
        ),
        r(
            "GET",
            "/v1/calendar-accounts/{id}/grants",
            Tenant(Role::Admin),
            T::CalendarAccount,
            no_body,
        ),
        r(
            "DELETE",
            "/v1/calendar-accounts/{id}/grants/{grant_id}",
            Tenant(Role::Admin),
            T::CalendarAccount,
            no_body,
        ),
        r(
            "POST",
            "/v1/calendar-accounts/sync",
            Platform,
            T::None,
            no_body,
        ),
        r(
            "POST",
            "/v1/me/calendars",
            Tenant(Role::Member),
            T::None,
            || Some(json!({"account_id": Uuid::new_v4(), "path": "/x/cal/"})),
        ),
        r(
            "GET",
            "/v1/me/calendars",
            Tenant(Role::Member),
            T::None,
            no_body,
        ),
        r(
            "GET",
            "/v1/calendar-events?from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z",
            Tenant(Role::Member),
            T::None,
            no_body,
        ),
        r(
            "POST",
            "/v1/calendar-events",
            Tenant(Role::Member),
            T::None,
            || {
                Some(json!({"calendar_id": Uuid::new_v4(), "summary": "S",
                        "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T11:00:00Z"}))
            },
        ),
        r(
            "PATCH",
            "/v1/calendar-events/{id}",
            Tenant(Role::Member),
            T::CalendarEvent,
            || Some(json!({"summary": "Changed"})),
        ),
        r(
            "DELETE",
            "/v1/calendar-events/{id}",
            Tenant(Role::Member),
            T::CalendarEvent,
            no_body,
        ),
        r("GET", "/v1/calendar-health", Platform, T::None, no_body),
        r(
            "POST",
            "/v1/calendar-health/check",
            Platform,
            T::None,
            no_body,
        ),
        r("GET", "/v1/jobs", Tenant(Role::Admin), T::None, no_body),
        r("GET", "/v1/jobs/{id}", Tenant(Role::Admin), T::Job, no_body),
        r(
            "POST",
            "/v1/jobs/{id}/cancel",
            Tenant(Role::Admin),
            T::Job,
            no_body,
        ),
        r("POST", "/v1/exports", Tenant(Role::Viewer), T::None, || {
            Some(json!({"scope": "user"}))
        }),
        r("GET", "/v1/exports", Tenant(Role::Viewer), T::None, no_body),
        r(
            "GET",
            "/v1/exports/{id}",
            Tenant(Role::Viewer),
            T::Export,
            no_body,
        ),
        r(
            "GET",
            "/v1/exports/{id}/download",
            Tenant(Role::Viewer),
            T::Export,
            no_body,
        ),
        r(
            "POST",
            "/v1/users/{id}/erasure",
            Tenant(Role::Owner),
            T::User,
            no_body,
        ),
        r(
            "GET",
            "/v1/erasures/{id}",
            Tenant(Role::Owner),
            T::Erasure,
            no_body,
        ),
        r(
            "GET",
            "/v1/tenants/{id}/erasure-policy",
            Tenant(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "PATCH",
            "/v1/tenants/{id}/erasure-policy",
            Tenant(Role::Owner),
            T::Tenant,
            || Some(json!({"erasure": "anonymize"})),
        ),
        r(
            "GET",
            "/v1/tenants/{id}/retention",
            Either(Role::Owner),
            T::Tenant,
            no_body,
        ),
        r(
            "PUT",
            "/v1/tenants/{id}/retention",
            Either(Role::Owner),
            T::Tenant,
            || Some(json!({"messages_days": 30, "audit_days": 365})),
        ),
    ]
}

/// The next weaker role, whose token must be refused with 403.
fn weaker(role: Role) -> Option<Role> {
    match role {
        Role::Owner => Some(Role::Admin),
        Role::Admin => Some(Role::Member),
        Role::Member => Some(Role::Viewer),
        _ => None,
    }
}

fn bare_path(path: &str) -> &str {
    path.split('?').next().unwrap_or(path)
}

/// Tenant A's ids, which tenant B will try.
pub(crate) struct Victim {
    pub tenant: Uuid,
    pub user: Uuid,
    pub channel: Uuid,
    pub message: Uuid,
    pub webhook: Uuid,
    pub summary: Uuid,
    pub job: Uuid,
    pub provider: Uuid,
    pub export: Uuid,
    pub erasure: Uuid,
    /// One of the tenant's impersonations (`crate::impersonation::start`).
    pub impersonation: Uuid,
    /// The tenant's calendar account and a stored event of it
    /// (`crate::calendar::isolation_ids`).
    pub calendar_account: Uuid,
    pub calendar_event: Uuid,
    /// The account's grant (`{grant_id}`).
    pub calendar_grant: Uuid,
}

impl Victim {
    pub fn path(&self, route: &Route) -> String {
        let id = match route.target {
            Target::None => return route.path.to_owned(),
            Target::Region => return route.path.replace("{id}", "us-east1"),
            Target::Slug => return route.path.replace("{tenant_slug}", "no-such-tenant"),
            Target::PlatformUser => {
                return route
                    .path
                    .replace("{id}", "01234567-89ab-7def-8123-456789abcdef");
            }
            Target::Tenant => self.tenant,
            Target::User => self.user,
            Target::Channel => self.channel,
            Target::Webhook => self.webhook,
            Target::Job => self.job,
            Target::Provider => self.provider,
            Target::Export => self.export,
            Target::Erasure => self.erasure,
            Target::CalendarAccount => self.calendar_account,
            Target::CalendarEvent => self.calendar_event,
        };
        route
            .path
            .replace("{id}", &id.to_string())
            .replace("{message_id}", &self.message.to_string())
            .replace("{summary_id}", &self.summary.to_string())
            .replace("{impersonation_id}", &self.impersonation.to_string())
            .replace("{grant_id}", &self.calendar_grant.to_string())
    }
}

#[actix_web::test]
async fn route_table_lists_every_route() {
    let app = spawn_app().await;
    let doc = app.request("GET", "/openapi.json", None, None).await.body;
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.to_uppercase(), path.clone()));
        }
    }
    let listed: BTreeSet<_> = routes()
        .iter()
        .map(|r| (r.method.to_owned(), bare_path(r.path).to_owned()))
        .collect();
    assert_eq!(
        served, listed,
        "the route table and the app's routes differ"
    );
}

#[actix_web::test]
async fn another_tenants_ids_answer_404_on_every_route_and_are_audited() {
    let app = spawn_app().await;
    let a = app.provision("victim").await;
    let (a_member, _) = app.add_user(&a, "member").await;
    let a_channel = app.create_channel(&a, "secret-plans").await;
    let a_message = app
        .post_message(&a, a_channel, "the launch is on friday")
        .await;
    let a_webhook = app
        .create_webhook(&a, json!({"url": "http://hooks.example/a"}))
        .await
        .0;
    let a_job = crate::jobs::enqueue_as_node(&app, a.id, "isolation.test").await;
    let (calendar_account, calendar_event, calendar_grant) =
        crate::calendar::isolation_ids(&app, &a).await;
    let victim = Victim {
        tenant: a.id,
        user: a_member,
        channel: a_channel,
        message: a_message,
        webhook: a_webhook,
        summary: crate::summaries::request(&app, &a, a_channel).await,
        job: a_job,
        provider: crate::identity::create_provider(
            &app,
            &a,
            crate::identity::oidc_body("https://idp.example"),
        )
        .await,
        impersonation: crate::impersonation::start(&app, &a).await.0,
        export: crate::exports::request(&app, &a.owner_token, json!({"scope": "tenant"})).await,
        erasure: crate::erasure::spare_erasure(&app, &a).await,
        calendar_account,
        calendar_event,
        calendar_grant,
    };
    let b = app.provision("attacker").await;

    let mut probes = 0;
    for route in routes().iter().filter(|r| {
        !matches!(
            r.target,
            Target::None | Target::Region | Target::Slug | Target::PlatformUser
        )
    }) {
        let reply = app
            .request(
                route.method,
                &victim.path(route),
                Some(&b.owner_token),
                (route.body)(),
            )
            .await;
        assert_problem(&reply, 404, "not_found");
        probes += 1;
    }
    // The same 404 as for an id that exists nowhere.
    let missing = app
        .get(&format!("/v1/channels/{}", Uuid::new_v4()), &b.owner_token)
        .await;
    assert_problem(&missing, 404, "not_found");
    assert_eq!(missing.body["detail"], "channel not found");

    // Lists and search under B's token show nothing of A's.
    for path in [
        "/v1/channels",
        "/v1/users",
        "/v1/search?q=launch",
        "/v1/audit",
        "/v1/webhooks",
        "/v1/jobs",
        "/v1/exports",
        "/v1/identity-providers",
        "/v1/calendar-accounts",
        "/v1/me/calendars",
        "/v1/calendar-events?from=2026-12-01T00:00:00Z&to=2026-12-31T00:00:00Z",
    ] {
        let reply = app.get(path, &b.owner_token).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let text = reply.body.to_string();
        for id in [
            a.id,
            a_member,
            a_channel,
            a_webhook,
            a_job,
            victim.export,
            calendar_account,
            calendar_event,
            victim.calendar_grant,
        ] {
            assert!(
                !text.contains(&id.to_string()),
                "{path} leaked {id}: {text}"
            );
        }
        assert!(
            !text.contains("launch is on friday"),
            "{path} leaked a message"
        );
        assert!(!text.contains("Secret offsite"), "{path} leaked an event");
    }

    // A's data is untouched.
    let channel = app
        .get(&format!("/v1/channels/{a_channel}"), &a.owner_token)
        .await;
    assert_eq!(channel.status, 200);
    let member = app
        .get(&format!("/v1/users/{a_member}"), &a.owner_token)
        .await;
    assert_eq!(member.body["display_name"], "member");
    let tenant = app
        .get(&format!("/v1/tenants/{}", a.id), &a.owner_token)
        .await;
    assert_eq!(tenant.body["name"], "victim Inc");
    let page = app
        .get(
            &format!("/v1/channels/{a_channel}/messages"),
            &a.owner_token,
        )
        .await;
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);

    // Every probe is in the platform audit, naming both tenants.
    let denials = app.platform_events("cross_tenant_denied", probes).await;
    assert_eq!(denials.len(), probes, "{denials:?}");
    for event in denials {
        assert_eq!(event["details"]["actor_tenant_id"], b.id.to_string());
        assert_eq!(event["details"]["target_tenant_id"], a.id.to_string());
        assert_eq!(event["tenant_id"], a.id.to_string());
    }
}

fn claims(app: &TestApp, tenant: Uuid, user: Uuid) -> Claims {
    let now = meridian::auth::keys::unix_now();
    let _ = app;
    serde_json::from_value(json!({
        "sub": user.to_string(),
        "tid": tenant,
        "role": Role::Owner,
        "iss": "meridian-local",
        "aud": "meridian-api",
        "exp": now + 600,
        "iat": now,
        "nbf": now,
    }))
    .unwrap()
}

fn foreign_key_token(claims: &Claims) -> String {
    let dir = std::env::temp_dir().join(format!("meridian-foreign-key-{}", Uuid::new_v4()));
    let path = dir.join("keys.json");
    meridian::auth::KeySet::ensure_file(&path).unwrap();
    let token = meridian::auth::KeySet::load(&path)
        .unwrap()
        .sign(claims)
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
    token
}

fn unsigned_token(claims: &Claims) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

#[actix_web::test]
async fn missing_or_bad_tokens_answer_401_on_every_route() {
    let app = spawn_app().await;
    let a = app.provision("holder").await;
    let (member, _) = app.add_user(&a, "member").await;
    let channel = app.create_channel(&a, "general").await;
    let message = app.post_message(&a, channel, "hello").await;
    let webhook = app
        .create_webhook(&a, json!({"url": "http://hooks.example/a"}))
        .await
        .0;
    let job = crate::jobs::enqueue_as_node(&app, a.id, "isolation.test").await;
    let (calendar_account, calendar_event, calendar_grant) =
        crate::calendar::isolation_ids(&app, &a).await;
    let ids = Victim {
        tenant: a.id,
        user: member,
        channel,
        message,
        webhook,
        summary: crate::summaries::request(&app, &a, channel).await,
        job,
        provider: crate::identity::create_provider(
            &app,
            &a,
            crate::identity::oidc_body("https://idp.example"),
        )
        .await,
        impersonation: crate::impersonation::start(&app, &a).await.0,
        export: crate::exports::request(&app, &a.owner_token, json!({"scope": "tenant"})).await,
        erasure: crate::erasure::spare_erasure(&app, &a).await,
        calendar_account,
        calendar_event,
        calendar_grant,
    };
    let good = claims(&app, a.id, a.owner_id);
    let expired = Claims {
        exp: good.exp - 7200,
        iat: good.iat - 7300,
        ..good.clone()
    };
    let wrong_aud = Claims {
        aud: "another-api".into(),
        ..good.clone()
    };
    let wrong_iss = Claims {
        iss: "someone-else".into(),
        ..good.clone()
    };
    let bad_tokens = [
        ("wrong key", foreign_key_token(&good)),
        ("alg none", unsigned_token(&good)),
        ("expired", app.sign(&expired)),
        ("wrong aud", app.sign(&wrong_aud)),
        ("wrong iss", app.sign(&wrong_iss)),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for route in routes().iter().filter(|r| r.access != Access::Public) {
        let path = ids.path(route);
        let reply = app.request(route.method, &path, None, (route.body)()).await;
        assert_problem(&reply, 401, "unauthenticated");
        for (what, token) in &bad_tokens {
            let reply = app
                .request(route.method, &path, Some(token), (route.body)())
                .await;
            assert_eq!(
                reply.status, 401,
                "{what} on {} {path}: {}",
                route.method, reply.body
            );
        }
    }
    // The good claims, signed with the right key, do work.
    assert_eq!(app.get("/v1/channels", &app.sign(&good)).await.status, 200);
}

/// `nbf` and `iat` are honoured with the same leeway as `exp` (30 s): a token that
/// is not valid yet, or claims to be issued in the future, is refused.
#[actix_web::test]
async fn tokens_not_yet_valid_or_issued_in_the_future_are_refused() {
    let app = spawn_app().await;
    let a = app.provision("clock").await;
    let now = meridian::auth::keys::unix_now();
    let token = |nbf: Option<u64>, iat: u64| {
        let mut claims = json!({
            "sub": a.owner_id.to_string(),
            "tid": a.id,
            "role": "owner",
            "iss": "meridian-local",
            "aud": "meridian-api",
            "exp": now + 3600,
            "iat": iat,
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        app.sign_value(&claims)
    };
    for (what, refused) in [
        ("nbf in 10 minutes", token(Some(now + 600), now)),
        ("nbf just beyond the leeway", token(Some(now + 90), now)),
        ("iat in 10 minutes", token(None, now + 600)),
        ("iat in a day, nbf now", token(Some(now), now + 86_400)),
    ] {
        let reply = app.get("/v1/channels", &refused).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_problem(&reply, 401, "unauthenticated");
        // Refused every time: a refusal is never cached as a success.
        assert_eq!(
            app.get("/v1/channels", &refused).await.status,
            401,
            "{what}"
        );
    }
    for (what, accepted) in [
        ("nbf in the past", token(Some(now - 600), now - 600)),
        ("nbf now", token(Some(now), now)),
        ("nbf within the leeway", token(Some(now + 5), now + 5)),
        ("no nbf", token(None, now)),
    ] {
        let reply = app.get("/v1/channels", &accepted).await;
        assert_eq!(reply.status, 200, "{what}: {}", reply.body);
    }
    // Tokens minted by `meridian token` (and the harness) still work.
    assert_eq!(app.get("/v1/channels", &a.owner_token).await.status, 200);
}

#[actix_web::test]
async fn too_weak_a_role_answers_403() {
    let app = spawn_app().await;
    let a = app.provision("roles").await;
    let mut tokens = std::collections::HashMap::new();
    for role in ["admin", "member", "viewer"] {
        tokens.insert(role, app.add_user(&a, role).await.1);
    }
    tokens.insert("owner", a.owner_token.clone());
    let (target_user, _) = app.add_user(&a, "member").await;
    let channel = app.create_channel(&a, "general").await;
    let message = app.post_message(&a, channel, "hello").await;
    let webhook = app
        .create_webhook(&a, json!({"url": "http://hooks.example/a"}))
        .await
        .0;
    let job = crate::jobs::enqueue_as_node(&app, a.id, "isolation.test").await;
    let (calendar_account, calendar_event, calendar_grant) =
        crate::calendar::isolation_ids(&app, &a).await;
    let ids = Victim {
        tenant: a.id,
        user: target_user,
        channel,
        message,
        webhook,
        summary: crate::summaries::request(&app, &a, channel).await,
        job,
        provider: crate::identity::create_provider(
            &app,
            &a,
            crate::identity::oidc_body("https://idp.example"),
        )
        .await,
        impersonation: crate::impersonation::start(&app, &a).await.0,
        export: crate::exports::request(&app, &a.owner_token, json!({"scope": "tenant"})).await,
        erasure: crate::erasure::spare_erasure(&app, &a).await,
        calendar_account,
        calendar_event,
        calendar_grant,
    };
    let mut checked = 0;
    for route in routes() {
        let path = ids.path(&route);
        match route.access {
            Access::Platform => {
                let reply = app
                    .request(route.method, &path, Some(&a.owner_token), (route.body)())
                    .await;
                assert_problem(&reply, 403, "forbidden");
                checked += 1;
            }
            Access::Tenant(min) | Access::Either(min) => {
                if let Some(weak) = weaker(min) {
                    let token = &tokens[weak.as_str()];
                    let reply = app
                        .request(route.method, &path, Some(token), (route.body)())
                        .await;
                    assert_problem(&reply, 403, "forbidden");
                    checked += 1;
                }
                if matches!(route.access, Access::Tenant(_)) {
                    let reply = app
                        .request(
                            route.method,
                            &path,
                            Some(&app.platform_token()),
                            (route.body)(),
                        )
                        .await;
                    assert_problem(&reply, 403, "forbidden");
                }
            }
            Access::Public | Access::SignIn => {}
        }
    }
    assert!(checked >= 10, "only {checked} role checks ran");
}

#[actix_web::test]
async fn spoofed_tenant_ids_in_body_query_or_header_change_nothing() {
    let app = spawn_app().await;
    let a = app.provision("spoofed").await;
    let a_channel = app.create_channel(&a, "a-only").await;
    let b = app.provision("spoofer").await;

    // In the body: refused as an unknown field, nothing written anywhere.
    let reply = app
        .post(
            "/v1/channels",
            &b.owner_token,
            json!({ "name": "planted", "tenant_id": a.id.to_string() }),
        )
        .await;
    assert_problem(&reply, 400, "validation_failed");
    for tenant in [&a, &b] {
        let list = app.get("/v1/channels", &tenant.owner_token).await;
        assert!(!list.body.to_string().contains("planted"), "{}", list.body);
    }

    // In the query and in a header: ignored; B still sees only B.
    let mut req = app
        .client
        .get(format!("{}/v1/channels?tenant_id={}", app.base, a.id))
        .insert_header(("Authorization", format!("Bearer {}", b.owner_token)))
        .insert_header(("X-Tenant-Id", a.id.to_string()));
    req = req.insert_header(("X-Meridian-Tenant", a.id.to_string()));
    let mut res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["items"], json!([]), "{body}");

    let reply = app
        .client
        .get(format!("{}/v1/channels/{a_channel}", app.base))
        .insert_header(("Authorization", format!("Bearer {}", b.owner_token)))
        .insert_header(("X-Tenant-Id", a.id.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);

    // A token whose tid names A but is signed for a user of B is still only A's
    // user if that user exists in A: here it does not, so it is refused.
    let forged = app.token(a.id, b.owner_id, Role::Owner);
    assert_problem(
        &app.get("/v1/channels", &forged).await,
        401,
        "unauthenticated",
    );
}
