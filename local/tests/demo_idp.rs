//! `meridian dev --identity`'s providers, for real: the demo OpenLDAP and OIDC
//! mock started and stopped by `demo_idp`, a demo user signed in with an LDAP
//! bind (and refused with a wrong password), the OIDC discovery document fetched
//! from the printed issuer. Without slapd (or PyPI for the mock) the test says
//! so and skips, unless `MERIDIAN_REQUIRE_SLAPD` (`MERIDIAN_REQUIRE_PYTOOLS`) is set.

use std::path::Path;
use std::time::Duration;

use ldap3::LdapConnAsync;
use meridian_local::demo_idp::{DemoIdentity, GROUPS, PEOPLE, SERVICE_DN};

fn skip(var: &str, err: &anyhow::Error) {
    assert!(
        std::env::var_os(var).is_none(),
        "{var} is set but the demo provider cannot start: {err:#}"
    );
    eprintln!("meridian tests: demo identity providers cannot start ({err:#}): SKIPPED");
}

async fn bind(url: &str, dn: &str, password: &str) -> ldap3::result::Result<u32> {
    let (conn, mut ldap) = LdapConnAsync::new(url).await?;
    ldap3::drive!(conn);
    let rc = ldap.simple_bind(dn, password).await?.rc;
    let _ = ldap.unbind().await;
    Ok(rc)
}

#[actix_web::test]
async fn demo_users_sign_in_by_ldap_and_the_oidc_issuer_answers_discovery() {
    if !Path::new("/usr/sbin/slapd").exists()
        && std::env::var_os("MERIDIAN_REQUIRE_SLAPD").is_none()
    {
        eprintln!(
            "meridian tests: slapd not installed (apt-get install slapd ldap-utils): SKIPPED"
        );
        return;
    }
    // The mock's venv (`<dir>/oidc-mock`) is kept across runs under target/,
    // where the api tests keep theirs (the same pin).
    let venv_parent = Path::new(env!("CARGO_TARGET_TMPDIR")).to_owned();
    let started = tokio::task::spawn_blocking(move || DemoIdentity::start(&venv_parent)).await;
    let identity = match started.unwrap() {
        Ok(identity) => identity,
        Err(err) if err.to_string().contains("slapd is not installed") => {
            return skip("MERIDIAN_REQUIRE_SLAPD", &err);
        }
        Err(err)
            if err.to_string().contains("oidc-provider-mock")
                || err.to_string().contains("venv") =>
        {
            return skip("MERIDIAN_REQUIRE_PYTOOLS", &err);
        }
        Err(err) => panic!("{err:#}"),
    };
    let printed = identity.describe();
    assert!(
        printed.starts_with(&format!(
            "oidc {}\nldap {}\n",
            identity.oidc.issuer, identity.ldap.url
        )),
        "{printed}"
    );

    // Each demo user binds with the printed password, and only with it.
    for user in &identity.users {
        assert!(printed.contains(&format!(
            "demo user {} password {}",
            user.uid, user.password
        )));
        let dn = format!("uid={},{PEOPLE}", user.uid);
        assert_eq!(
            bind(&identity.ldap.url, &dn, &user.password).await.unwrap(),
            0,
            "{dn}"
        );
        assert_eq!(
            bind(&identity.ldap.url, &dn, "wrong").await.unwrap(),
            49,
            "{dn}"
        );
    }
    // The service account searches the groups the server maps to roles.
    let (conn, mut ldap) = LdapConnAsync::new(&identity.ldap.url).await.unwrap();
    ldap3::drive!(conn);
    ldap.simple_bind(SERVICE_DN, &identity.ldap.service_password)
        .await
        .unwrap()
        .success()
        .unwrap();
    let (entries, _) = ldap
        .search(
            GROUPS,
            ldap3::Scope::OneLevel,
            &format!("(member=uid=alice,{PEOPLE})"),
            vec!["cn"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    let groups: Vec<_> = entries
        .into_iter()
        .map(|e| ldap3::SearchEntry::construct(e).attrs["cn"][0].clone())
        .collect();
    assert_eq!(groups, ["engineering"]);
    let _ = ldap.unbind().await;

    // The OIDC issuer's discovery document names it.
    let mut reply = awc::Client::new()
        .get(format!(
            "{}/.well-known/openid-configuration",
            identity.oidc.issuer
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let doc: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(doc["issuer"], identity.oidc.issuer);
    assert!(doc["jwks_uri"].as_str().is_some(), "{doc}");

    // Stopped on drop: both ports close (slapd waited for).
    let ldap_port = identity
        .ldap
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let oidc_port = identity
        .oidc
        .issuer
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    tokio::task::spawn_blocking(move || drop(identity))
        .await
        .unwrap();
    for port in [ldap_port, oidc_port] {
        assert!(
            std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_secs(1)
            )
            .is_err(),
            "port {port} still open"
        );
    }
}
