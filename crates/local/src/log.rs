//! The local stack's log: one line per event on stderr, text ([`text`]: formatted straight into
//! the buffer) or JSON (with `BUTTERFLY_LOG_FORMAT=json`), written in batches by a log thread.
//!
//! A request only formats its line and appends it to a shared buffer (a short lock, no system
//! call, no thread woken); the log thread writes the buffer out every [`FLUSH_EVERY`], and a
//! request that finds [`FLUSH_AT`] bytes waiting writes them itself, so the buffer stays
//! bounded and no line is ever dropped. Lines reach stderr whole and in the order they were
//! appended. The guard [`init`] returns writes what is left when dropped; a line logged after
//! that is written as it comes.
//!
//! Text lines are escaped on the way in ([`escape_into`]): no value in an event (a header, a
//! provider's words) can start a line of its own or drive the terminal. JSON escapes by itself.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

mod text;

/// How often the log thread writes what has been appended.
pub const FLUSH_EVERY: Duration = Duration::from_millis(25);
/// Bytes waiting at which the appending thread writes them itself.
pub const FLUSH_AT: usize = 256 * 1024;

/// Sets up the process's log (level from `BUTTERFLY_LOG`, default `info`) on stderr.
pub fn init() -> LogGuard {
    let filter = EnvFilter::try_from_env("BUTTERFLY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("BUTTERFLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let (sink, guard) = BatchedLog::start(std::io::stderr(), !json);
    // An error means a subscriber is already set (a test's): events go there instead.
    if json {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(sink).json().try_init();
    } else {
        let _ = tracing_subscriber::registry().with(filter).with(text::TextLayer::new(sink)).try_init();
    }
    guard
}

struct Shared {
    /// Lines appended and not yet written.
    pending: Mutex<Vec<u8>>,
    /// Where lines go; held while a batch is taken and written, so batches keep their order.
    out: Mutex<Box<dyn Write + Send>>,
    escape: bool,
    stop: Mutex<bool>,
    wake: Condvar,
    /// There is no log thread (the guard was dropped, or it could not be started): each line is
    /// written as it comes.
    closed: AtomicBool,
}

impl Shared {
    fn append(&self, line: &[u8]) {
        let full = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if self.escape {
                escape_into(&mut p, line);
            } else {
                p.extend_from_slice(line);
            }
            p.len() >= FLUSH_AT
        };
        if full || self.closed.load(Ordering::Acquire) {
            self.flush();
        }
    }

    /// Writes every appended line out (a failed write loses only that batch: stderr is gone).
    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
        }
    }
}

/// The writer handed to the formatter: appends to the shared buffer.
#[derive(Clone)]
pub struct BatchedLog(Arc<Shared>);

impl BatchedLog {
    /// A log writing to `out` (escaping text lines if `escape`), and the guard that stops its
    /// thread and writes what is left.
    pub fn start(out: impl Write + Send + 'static, escape: bool) -> (BatchedLog, LogGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Vec::with_capacity(64 * 1024)),
            out: Mutex::new(Box::new(out)),
            escape,
            stop: Mutex::new(false),
            wake: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || loop {
                let stopped = {
                    let stop = worker.stop.lock().unwrap_or_else(|e| e.into_inner());
                    let (stop, _) = worker.wake.wait_timeout(stop, FLUSH_EVERY).unwrap_or_else(|e| e.into_inner());
                    *stop
                };
                worker.flush();
                if stopped {
                    return;
                }
            })
            .ok();
        // Without its thread the log still works: each line is written as it comes.
        shared.closed.store(thread.is_none(), Ordering::Release);
        (BatchedLog(shared.clone()), LogGuard { shared, thread })
    }
}

impl Write for BatchedLog {
    /// One call is one formatted event (the formatter hands over a whole line at once).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedLog {
    type Writer = BatchedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Stops the log thread and writes what is left (keep it until the process is done logging).
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.flush(); // a line that came in while the thread stopped
    }
}

/// Appends one formatted event to `out` with every control character but the final newline
/// (and the line and direction marks [`butterfly_core::text::is_unsafe`] names) escaped as
/// `\u{…}`. Printable ASCII, nearly every line, is copied as it is.
pub fn escape_into(out: &mut Vec<u8>, line: &[u8]) {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    if body.iter().all(|b| (0x20..0x7f).contains(b)) {
        out.extend_from_slice(body);
    } else {
        let text = String::from_utf8_lossy(body);
        let mut s = String::with_capacity(body.len() + 16);
        for c in text.chars() {
            if butterfly_core::text::is_unsafe(c) {
                s.push_str(&format!("\\u{{{:x}}}", c as u32));
            } else {
                s.push(c);
            }
        }
        out.extend_from_slice(s.as_bytes());
    }
    if body.len() != line.len() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_stays_one_line() {
        let mut out = Vec::new();
        escape_into(&mut out, b"INFO refused detail=x\n2026-11-30 INFO role changed to super_admin\x1b[2J\r\n");
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'));
        assert!(out.contains("\\u{a}2026") && out.contains("\\u{1b}") && out.contains("\\u{d}"), "{out}");
        let mut out = Vec::new();
        escape_into(&mut out, "name=\u{202e}gnp.exe café\n".as_bytes());
        assert_eq!(String::from_utf8(out).unwrap(), "name=\\u{202e}gnp.exe café\n");
        let mut out = Vec::new();
        escape_into(&mut out, b"plain ascii line\n");
        assert_eq!(out, b"plain ascii line\n");
    }

    /// A `Write` the test can read back while the log holds it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Eight threads append 5,000 lines each, some long enough to make the appender write:
    /// every line arrives once, whole, and each thread's lines in its own order.
    #[test]
    fn no_line_is_lost_split_or_reordered() {
        let out = Shared::default();
        let (log, guard) = BatchedLog::start(out.clone(), true);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let mut log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let pad = if i % 97 == 0 { "x".repeat(4096) } else { String::new() };
                        log.write_all(format!("t{t} n{i} {pad}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let mut next = [0u32; 8];
        let mut lines = 0;
        for line in text.lines() {
            let mut parts = line.split(' ');
            let t: usize = parts.next().unwrap()[1..].parse().unwrap();
            let i: u32 = parts.next().unwrap()[1..].parse().unwrap();
            assert_eq!(i, next[t], "thread {t}'s lines out of order or lost");
            next[t] += 1;
            lines += 1;
        }
        assert_eq!(lines, 40_000);
        assert!(next.iter().all(|n| *n == 5_000), "{next:?}");
    }

    /// A line appended is written within a few flush periods without anyone flushing, and the
    /// guard writes what is left.
    #[test]
    fn lines_are_written_soon_and_at_the_end() {
        let out = Shared::default();
        let (mut log, guard) = BatchedLog::start(out.clone(), false);
        log.write_all(b"first\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while out.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the log thread never wrote");
            std::thread::sleep(Duration::from_millis(5));
        }
        log.write_all(b"last \x1b line\n").unwrap();
        drop(guard);
        assert_eq!(out.0.lock().unwrap().as_slice(), b"first\nlast \x1b line\n", "JSON lines are not escaped");
        // A task still logging while the process shuts down: written at once, not lost.
        log.write_all(b"after\n").unwrap();
        assert_eq!(out.0.lock().unwrap().as_slice(), b"first\nlast \x1b line\nafter\n");
    }
}
