//! Child servers that cannot outlive us: a server (the embedded PostgreSQL, the
//! local GeoDNS) runs under a small `sh` supervisor whose stdin is a pipe from this
//! process. When this process exits — normally, by panic, or killed with SIGKILL —
//! the kernel closes the pipe, the supervisor's `read` returns and it sends the
//! server its stop signal. Closing the pipe ourselves is how we stop it too.

use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the server (`$3`, arguments after it) with output appended to `$2`, and
/// sends it signal `$1` once stdin reaches EOF. The reader is a separate job so
/// that the shell also exits, and we notice, when the server exits on its own.
/// fd 3 keeps the pipe because background jobs get /dev/null as stdin. Background
/// jobs of a non-interactive shell also start with SIGINT ignored: a server that
/// keeps the default disposition must be stopped with TERM.
const SCRIPT: &str = r#"exec 3<&0
sig=$1; log=$2; bin=$3; shift 3
"$bin" "$@" >>"$log" 2>&1 </dev/null 3<&- &
pid=$!
{ read -r _line <&3; kill -"$sig" "$pid" 2>/dev/null; } &
watcher=$!
exec 3<&-
wait "$pid"; status=$?
kill "$watcher" 2>/dev/null
exit "$status""#;

/// The supervisor command for `server` (append its arguments to the result).
/// `sh` is how to run `/bin/sh` (e.g. through `runuser`); `stop_signal` is a
/// signal name for `kill`, e.g. `INT` or `TERM`.
pub fn command(
    mut sh: Command,
    stop_signal: &str,
    log: impl AsRef<OsStr>,
    server: impl AsRef<OsStr>,
) -> Command {
    sh.args(["-c", SCRIPT, "sh", stop_signal])
        .arg(log)
        .arg(server)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        // Keeps terminal Ctrl-C away from it: its owner decides when the server stops.
        .process_group(0);
    sh
}

/// Asks the server to stop (closes the supervisor's stdin) and waits up to
/// `timeout` for it to exit. `Ok(false)`: still running; the caller escalates.
pub fn stop(child: &mut Child, timeout: Duration) -> io::Result<bool> {
    drop(child.stdin.take());
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a server wrote to its log since `offset` (empty when unreadable): the
/// start-up errors to show when it fails to come up.
pub fn log_since(log: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_string(&mut text);
    }
    text
}
