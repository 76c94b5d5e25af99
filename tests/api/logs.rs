//! The node's logs as one test binary's global tracing subscriber sees them, for
//! tests that assert what is (or is never) logged: at debug for the node and the
//! database driver, which logs statement parameters. One subscriber per test
//! binary, installed on first use; it holds every test's lines from then on, so
//! assertions look for values unique to their test.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Everything the node logs from now on, whatever the test (one global
/// subscriber for the test binary, at debug for the node and the database
/// driver, which logs statement parameters).
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn contains(&self, needle: &str) -> bool {
        let text = self.0.lock().unwrap();
        text.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    pub(crate) fn errors(&self) -> String {
        let text = self.0.lock().unwrap();
        String::from_utf8_lossy(&text)
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[derive(Clone)]
struct Tee(Arc<Mutex<Vec<u8>>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn capture_logs() -> Logs {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Tee(buffer.clone());
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "meridian=trace,tokio_postgres=debug,actix_web=debug,info",
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("another global subscriber (JOBS_TEST_LOG?) is installed");
        buffer
    });
    Logs(buffer.clone())
}
