//! The text log line, formatted straight into the log's buffer. The layout is
//! tracing-subscriber's default `fmt` format without colours (a test holds the two to the same
//! bytes):
//!
//! ```text
//! 2026-11-30T19:16:01.686534Z  INFO request{request_id=… method=GET path=/scim/v2/Users}: tower_http::trace::on_response: finished processing request latency=0 ms status=200
//! ```
//!
//! It exists because every request logs a line: `fmt` builds the line through the formatting
//! machinery field by field, and its share of a lookup's time was the largest after the store's
//! (docs/performance.md). Here a span's fields are written once when it opens, strings and
//! numbers are copied without `fmt`, and the line is built in a reused buffer.

use super::BatchedLog;
use std::cell::RefCell;
use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::{span, Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where finished lines go (the log's buffer; a test's vector).
pub trait LineSink: Send + Sync + 'static {
    fn line(&self, line: &[u8]);
}

impl LineSink for BatchedLog {
    fn line(&self, line: &[u8]) {
        self.0.append(line);
    }
}

/// The layer writing text lines to `S`.
pub struct TextLayer<S> {
    sink: S,
}

impl<S: LineSink> TextLayer<S> {
    pub fn new(sink: S) -> Self {
        TextLayer { sink }
    }
}

/// A span's fields as the line shows them (`k=v k=v`), written when the span opens.
struct SpanFields(String);

thread_local! {
    /// The line being built, reused from event to event on a thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

impl<S, W> Layer<S> for TextLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: LineSink,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = String::with_capacity(128);
        attrs.record(&mut Fields::new(&mut fields));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanFields>() {
            Some(SpanFields(fields)) => {
                let empty = fields.is_empty();
                values.record(&mut Fields { out: fields, empty });
            }
            None => {
                let mut fields = String::new();
                values.record(&mut Fields::new(&mut fields));
                ext.insert(SpanFields(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let write = |line: &mut String| {
            line.clear();
            format_line(line, event, &ctx);
            self.sink.line(line.as_bytes());
        };
        // A value whose formatting logs (re-entry) gets a buffer of its own.
        let reused = LINE.try_with(|l| l.try_borrow_mut().map(|mut l| write(&mut l)).is_ok());
        if reused != Ok(true) {
            write(&mut String::with_capacity(256));
        }
    }
}

/// `TIME LEVEL span{fields}:…: target: fields`, and the newline.
fn format_line<S>(line: &mut String, event: &Event<'_>, ctx: &Context<'_, S>)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // Events from the `log` crate name their real target in fields (`log.target`).
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    push_now(line);
    line.push(' ');
    line.push_str(match *meta.level() {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    });
    line.push(' ');
    if let Some(scope) = ctx.event_scope(event) {
        let mut seen = false;
        for span in scope.from_root() {
            line.push_str(span.name());
            seen = true;
            if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                if !fields.is_empty() {
                    line.push('{');
                    line.push_str(fields);
                    line.push('}');
                }
            }
            line.push(':');
        }
        if seen {
            line.push(' ');
        }
    }
    line.push_str(meta.target());
    line.push_str(": ");
    event.record(&mut Fields::new(line));
    line.push('\n');
}

/// The current time as `fmt`'s default timer writes it: RFC 3339, microseconds, `Z`.
fn push_now(line: &mut String) {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => butterfly_core::clock::write_rfc3339(
            line,
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_micros(),
            6,
        ),
        Err(_) => line.push_str("<unknown time>"),
    }
}

/// Writes fields as `fmt`'s default visitor does: the message bare, then `name=value` with
/// strings quoted (Rust `Debug`), everything separated by one space.
struct Fields<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut String) -> Self {
        Fields { out, empty: true }
    }

    /// Starts a field (the space before it, its name unless it is the message); `false` for
    /// the `log.*` fields the target was taken from.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if self.empty {
            self.empty = false;
        } else {
            self.out.push(' ');
        }
        if name != "message" {
            self.out.push_str(name.strip_prefix("r#").unwrap_or(name));
            self.out.push('=');
        }
        true
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        if field.name() == "message" {
            self.out.push_str(value);
        } else if value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\') {
            // What `Debug` writes for a string that needs no escape.
            self.out.push('"');
            self.out.push_str(value);
            self.out.push('"');
        } else {
            let _ = write!(self.out, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            push_u64(self.out, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            if value < 0 {
                self.out.push('-');
            }
            push_u64(self.out, value.unsigned_abs());
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.out.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if !self.start(field) {
            return;
        }
        let _ = write!(self.out, "{value}");
        if let Some(mut source) = value.source() {
            let _ = write!(self.out, " {}.sources=[{source}", field.name());
            while let Some(next) = source.source() {
                let _ = write!(self.out, ", {next}");
                source = next;
            }
            self.out.push(']');
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.start(field) {
            let _ = write!(self.out, "{value:?}");
        }
    }
}

/// `v` in decimal.
fn push_u64(out: &mut String, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);
    impl LineSink for Lines {
        fn line(&self, line: &[u8]) {
            self.0.lock().unwrap().extend_from_slice(line);
        }
    }
    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.line(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);
    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// Every kind of field and span the service logs, and some it does not yet.
    fn events() {
        let id = "89362c2f-bccc-432a-85ae-15f96959defb";
        let span = tracing::info_span!("request", request_id = %id, method = %"GET", path = %"/scim/v2/Users");
        span.in_scope(|| {
            tracing::info!(latency = %"0 ms", status = 200, "finished processing request");
            let inner = tracing::info_span!("store", table = "users", attempt = 2_u64);
            inner.in_scope(|| tracing::warn!(error = %"timed out", retry = true, "the store did not answer"));
            tracing::info_span!("empty").in_scope(|| tracing::error!("no fields at all"));
        });
        let late = tracing::info_span!("late", first = 1_i64, second = tracing::field::Empty);
        late.record("second", "set later");
        late.in_scope(|| tracing::info!(r#type = "user", "raw identifier"));
        tracing::info!(
            quoted = "say \"hi\" \\ there",
            accented = "café ünïcode",
            negative = -42_i64,
            big = u64::MAX,
            float = 1.5_f64,
            debug = ?Some(vec![1, 2]),
            "mixed values {}",
            7
        );
        let err = Failure("outer", Some(Box::new(Failure("middle", Some(Box::new(Failure("root", None)))))));
        tracing::warn!(error = &err as &(dyn std::error::Error + 'static), "with sources");
        let alone = Failure("alone", None);
        tracing::warn!(error = &alone as &(dyn std::error::Error + 'static));
        tracing::info!(target: "custom::target", count = 0_u64, "a custom target");
        let record = tracing_log::log::Record::builder()
            .args(format_args!("from the log crate"))
            .level(tracing_log::log::Level::Warn)
            .target("rustls::client")
            .module_path(Some("rustls::client"))
            .file(Some("client.rs"))
            .line(Some(7))
            .build();
        tracing_log::format_trace(&record).unwrap();
    }

    /// The lines without their timestamps (the first word).
    fn untimed(text: &str) -> Vec<String> {
        text.lines().map(|l| l.split_once(' ').unwrap().1.to_string()).collect()
    }

    #[test]
    fn lines_are_those_of_the_fmt_format() {
        let ours = Lines::default();
        let subscriber = tracing_subscriber::registry().with(TextLayer::new(ours.clone()));
        tracing::subscriber::with_default(subscriber, events);

        let theirs = Lines::default();
        let writer = theirs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, events);

        let (ours, theirs) = (ours.text(), theirs.text());
        assert_eq!(untimed(&ours), untimed(&theirs), "ours:\n{ours}\ntheirs:\n{theirs}");
        assert_eq!(ours.lines().count(), 9, "{ours}");
        assert!(ours.contains(" WARN rustls::client: from the log crate"), "{ours}");
        assert!(ours.contains("with sources error=outer error.sources=[middle, root]"), "{ours}");
        // The timestamps: RFC 3339 with microseconds, now.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for line in ours.lines() {
            let stamp = line.split_once(' ').unwrap().0;
            assert_eq!(stamp.len(), 27, "{line}");
            assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.', "{line}");
            let at = butterfly_core::clock::Timestamp::parse_rfc3339(stamp).unwrap();
            assert!((at.millis() as u64 / 1000).abs_diff(now) <= 5, "{line}");
        }
    }

    #[test]
    fn numbers_are_written_in_full() {
        for v in [0, 1, 9, 10, 99, 100, 12_345, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }
}
