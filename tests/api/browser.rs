//! A real headless Chromium for the console tests, driven through chromedriver
//! (WebDriver) with `fantoccini` (recipe: /work/shared/FIXTURES.md "Browser").
//! Each `Browser::start` runs its own `chromedriver` on a free loopback port in
//! a process group of its own, with one Chromium session (a throwaway profile,
//! the browser's console and network logs on); `close` ends the session and
//! Drop ends the group (chromedriver and the Chromium it started). `.ci/run`
//! installs the Debian packages `chromium chromium-driver`; without them the
//! tests say so and skip, unless `MERIDIAN_REQUIRE_BROWSER` (or `CI=true`) is
//! set, when a missing browser fails them.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::free_port;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser can run here; `false` (after saying so) skips the test.
pub fn available() -> bool {
    let ok = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !ok {
        let required = std::env::var_os("MERIDIAN_REQUIRE_BROWSER").is_some()
            || std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !required,
            "MERIDIAN_REQUIRE_BROWSER or CI is set but chromium/chromedriver are not installed"
        );
        eprintln!(
            "meridian tests: chromium not installed (apt-get install chromium chromium-driver): browser test SKIPPED"
        );
    }
    ok
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

/// chromedriver's log endpoint (not in W3C WebDriver): the entries of `kind`
/// (`browser`: the page's console; `performance`: DevTools events) since the
/// last read.
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

impl Browser {
    /// The URLs requested since the last look during an OIDC sign-in: each
    /// checked to be the node's (`node`) or the provider's (`issuer`; the mock
    /// provider's own page also asks a CDN for its stylesheet, which fails
    /// here), with each path of `wanted` requested from the node.
    pub async fn oidc_sign_in_requests(
        &self,
        node: &str,
        issuer: &str,
        wanted: &[&str],
    ) -> Vec<String> {
        let urls = self.web_requests().await;
        for url in &urls {
            assert!(
                url.starts_with(&format!("{node}/"))
                    || url.starts_with(&format!("{issuer}/"))
                    || url.starts_with("https://cdn.jsdelivr.net/npm/@picocss/"),
                "{url} (all: {urls:#?})"
            );
        }
        for path in wanted {
            assert!(
                urls.iter().any(|u| u.starts_with(&format!("{node}{path}"))),
                "{path}: {urls:#?}"
            );
        }
        urls
    }

    /// chromedriver and one headless Chromium session at 1280×800.
    pub async fn start() -> Self {
        let port = free_port();
        let profile =
            std::env::temp_dir().join(format!("meridian-chromium-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&profile).unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver");
        crate::helpers::wait_listening(port, Duration::from_secs(10), "chromedriver");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-extensions", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL", "performance": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let browser = Self {
            client: ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
                .expect("a Chromium session"),
            driver,
            profile,
        };
        browser.client.set_window_size(1280, 800).await.unwrap();
        browser
    }

    /// The page's console messages since the last call: (level, message).
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let entries = self.client.issue_cmd(ReadLog("browser")).await.unwrap();
        entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The console messages since the last call that report a Content Security
    /// Policy violation.
    pub async fn csp_violations(&self) -> Vec<(String, String)> {
        let mut log = self.console_log().await;
        log.retain(|(_, m)| m.contains("Content Security Policy"));
        log
    }

    /// The window at a phone's size (390 × 844 CSS pixels).
    pub async fn phone_size(&self) {
        self.client.set_window_size(390, 844).await.unwrap();
    }

    /// Fails when the page is wider than the window (it would scroll sideways).
    pub async fn assert_fits_window(&self) {
        let overflow = self
            .client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "wider than the window by {overflow}px"
        );
    }

    /// Opens the console's sign-in form at `base` and types the tenant's slug,
    /// the user name and the password into it (the caller submits it).
    pub async fn fill_signin(&self, base: &str, slug: &str, user: &str, password: &str) {
        self.client.goto(&format!("{base}/console/")).await.unwrap();
        self.wait_for("#signin").await;
        for (id, text) in [
            ("#slug", slug),
            ("#username", user),
            ("#password", password),
        ] {
            let field = self.client.find(Locator::Css(id)).await.unwrap();
            field.send_keys(text).await.unwrap();
        }
    }

    /// Every URL the browser requested for web pages since the last call: the
    /// DevTools `Network.requestWillBeSent` events of the performance log, less
    /// those of the browser's own pages (`chrome:`, `chrome-untrusted:`,
    /// `data:`, `about:` documents, such as its start and new-tab pages) and
    /// requests for its own resources. A page's navigation elsewhere is in.
    pub async fn web_requests(&self) -> Vec<String> {
        let entries = self.client.issue_cmd(ReadLog("performance")).await.unwrap();
        let internal = |url: &Value| {
            url.as_str().is_some_and(|u| {
                [
                    "chrome:",
                    "chrome-untrusted:",
                    "data:",
                    "about:",
                    "devtools:",
                ]
                .iter()
                .any(|scheme| u.starts_with(scheme))
            })
        };
        entries
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .map(|m| m["message"]["params"].clone())
            .filter(|p| !internal(&p["documentURL"]) && !internal(&p["request"]["url"]))
            .filter_map(|p| Some(p["request"]["url"].as_str()?.to_owned()))
            .collect()
    }

    /// Waits (up to 10 s) for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    /// Waits (up to 10 s) until `css`'s text contains `text`; answers that text.
    pub async fn wait_for_text(&self, css: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(found) = el.text().await
                && found.contains(text)
            {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no {css} saying {text:?}; the page says {:?}; its console: {:?}",
                    self.page_text().await,
                    self.console_log().await
                );
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's visible text and URL (for failure messages).
    pub async fn page_text(&self) -> String {
        let text = self
            .client
            .execute(
                "return location.href + '\\n' + document.body.innerText",
                vec![],
            )
            .await;
        format!("{text:?}")
    }

    /// Ends the Chromium session (Drop then stops chromedriver).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group chromedriver leads holds the Chromium it started (`--`:
        // a negative pid is a process group, not an option).
        let group = format!("-{}", self.driver.id());
        let signal = |name: &str| {
            Command::new("kill")
                .args([name, "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        signal("-TERM");
        let _ = self.driver.wait();
        // Until the whole group is gone (Chromium may still be writing its
        // profile), then the profile.
        let deadline = Instant::now() + Duration::from_secs(5);
        while signal("-0") {
            if Instant::now() >= deadline {
                signal("-KILL");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
