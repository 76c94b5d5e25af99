//! A real CalDAV server for the calendar tests: Radicale (PyPI `radicale`,
//! pinned in tests/api/pytools.txt; recipe in /work/shared/FIXTURES.md) on a
//! free loopback port with htpasswd auth (plain, `delay = 0`) and
//! `[rights] type = owner_only` — so one user cannot read another's
//! calendars, which `auth type = none` would not enforce. Each `start` gets
//! its own storage and config in a temp dir; Drop kills the PID it started.
//! Without the package (no PyPI) the tests that need it say so and skip,
//! unless `MERIDIAN_REQUIRE_PYTOOLS` is set.

use crate::helpers::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Radicale {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    client: awc::Client,
}

pub struct Answer {
    pub status: u16,
    pub etag: Option<String>,
    pub body: String,
}

impl Radicale {
    /// Radicale with `users` (name, password), or None (skipped) without it.
    pub fn start(users: &[(&str, &str)]) -> Option<Self> {
        let bin = crate::pytool::bin(
            "radicale",
            "radicale",
            "radicale",
            "the calendar tests against Radicale are",
        )?;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("meridian-radicale-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("collections")).unwrap();
        let htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{p}\n")).collect();
        std::fs::write(dir.join("users"), htpasswd).unwrap();
        let config = format!(
            "[server]\nhosts = 127.0.0.1:{port}\n\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\ndelay = 0\n\
             [storage]\nfilesystem_folder = {storage}\n\
             [rights]\ntype = owner_only\n\
             [logging]\nlevel = warning\n",
            users = dir.join("users").display(),
            storage = dir.join("collections").display(),
        );
        std::fs::write(dir.join("config"), config).unwrap();
        let child = Command::new(bin)
            .arg("--config")
            .arg(dir.join("config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("radicale starts");
        crate::helpers::wait_listening(port, Duration::from_secs(15), "radicale");
        Some(Self {
            child,
            dir,

            base: format!("http://127.0.0.1:{port}"),
            // Not a timing assertion: storing a 2,000-object calendar (the
            // benchmarks) takes Radicale well over 30 s on a loaded machine.
            client: awc::Client::builder()
                .timeout(Duration::from_secs(300))
                .finish(),
        })
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        (user, password): (&str, &str),
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        // Radicale's server speaks HTTP/1.0 and may still be starting when its
        // port first accepts: a dropped connection is retried a few times.
        let mut attempt = 0;
        let mut res = loop {
            let mut req = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(user, password)
                .insert_header(("Connection", "close"));
            for (name, value) in headers {
                req = req.insert_header((*name, *value));
            }
            match req.send_body(body.to_owned()).await {
                Ok(res) => break res,
                // Only a refused or dropped connection is retried: a request
                // that timed out may still be running in Radicale, and
                // resending a 2,000-object PUT would pile up behind it.
                Err(awc::error::SendRequestError::Connect(_)) if attempt < 20 => {
                    attempt += 1;
                    actix_web::rt::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("{method} {path}: {err}"),
            }
        };
        let bytes = res.body().limit(64 * 1024 * 1024).await.unwrap();
        Answer {
            status: res.status().as_u16(),
            etag: res
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned()),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn mkcalendar(&self, auth: (&str, &str), path: &str) {
        let answer = self.request("MKCALENDAR", path, auth, &[], "").await;
        assert_eq!(answer.status, 201, "MKCALENDAR {path}: {}", answer.body);
    }

    /// PUTs `ics` at `path`; returns the new ETag.
    pub async fn put(&self, auth: (&str, &str), path: &str, ics: &str) -> String {
        let answer = self
            .request(
                "PUT",
                path,
                auth,
                &[("Content-Type", "text/calendar; charset=utf-8")],
                ics,
            )
            .await;
        assert!(
            matches!(answer.status, 201 | 204),
            "PUT {path}: {} {}",
            answer.status,
            answer.body
        );
        answer.etag.expect("PUT answers an ETag")
    }

    pub async fn delete(&self, auth: (&str, &str), path: &str) {
        let answer = self.request("DELETE", path, auth, &[], "").await;
        assert!(
            matches!(answer.status, 200 | 204),
            "DELETE {path}: {}",
            answer.status
        );
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-event VCALENDAR; `extra` lines go into the VEVENT.
pub fn ics(uid: &str, summary: &str, start: &str, end: &str, extra: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n{extra}\
         END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Radicale answers: owner_only refuses other users, wrong passwords get 401,
/// a PUT answers an ETag, and a sync-collection REPORT lists the object.
#[actix_web::test]
async fn radicale_enforces_owners_and_speaks_caldav() {
    let Some(server) = Radicale::start(&[("alice", "pw-a"), ("bob", "pw-b")]) else {
        return;
    };
    let alice = ("alice", "pw-a");
    server.mkcalendar(alice, "/alice/cal/").await;
    let etag = server
        .put(
            alice,
            "/alice/cal/e1.ics",
            &ics("e1", "Standup", "20261201T100000Z", "20261201T101500Z", ""),
        )
        .await;
    assert!(etag.starts_with('"'), "{etag}");
    let report = server
        .request(
            "REPORT",
            "/alice/cal/",
            alice,
            &[("Depth", "1"), ("Content-Type", "application/xml")],
            &meridian::calendar::dav::sync_collection(None),
        )
        .await;
    assert_eq!(report.status, 207, "{}", report.body);
    let parsed = meridian::calendar::dav::parse(report.body.as_bytes()).unwrap();
    assert!(parsed.sync_token.is_some());
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].etag.as_deref(), Some(etag.as_str()));
    let bob = server
        .request(
            "PROPFIND",
            "/alice/cal/",
            ("bob", "pw-b"),
            &[("Depth", "0")],
            "",
        )
        .await;
    assert_eq!(bob.status, 403, "owner_only must refuse bob");
    let wrong = server
        .request(
            "PROPFIND",
            "/alice/cal/",
            ("alice", "nope"),
            &[("Depth", "0")],
            "",
        )
        .await;
    assert_eq!(wrong.status, 401);
}
