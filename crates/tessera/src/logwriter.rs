//! The log writer: every log line (the access log's and `tracing`'s) is
//! appended to one shared buffer, and a thread of its own writes the buffer
//! to stderr in large writes.
//!
//! Hand-written rather than `tracing-appender`'s non-blocking writer, which
//! sends each line through a channel to its thread: with a line per
//! request, waking that thread per line cost a fast route a fifth of its
//! throughput. Here a request pays for a short lock and a copy; the thread
//! is woken only when the buffer holds [`WAKE_AT`] bytes, and otherwise
//! writes what has gathered every [`FLUSH_EVERY`].
//!
//! Not lossy: past [`MAX_BUFFERED`] bytes (stderr is not being read), the
//! writers of new lines wait for the thread. A line is appended whole, so
//! lines never interleave. Dropping the [`FlushAtExit`] guard writes what is
//! left and stops the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tessera_axum::access_log::LineSink;
use tessera_axum::observe::with_current_request_id;
use tracing_subscriber::fmt::MakeWriter;

/// Bytes gathered before the thread is woken to write them.
const WAKE_AT: usize = 64 * 1024;

/// The longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Bytes the buffer may hold before writers wait.
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

struct State {
    lines: Vec<u8>,
    /// The thread was woken and has not taken the lines yet.
    woken: bool,
    /// Writers waiting for room (the thread wakes them only if there are:
    /// a notification is a system call).
    waiting: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the thread.
    work: Condvar,
    /// Wakes writers waiting for room.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.lock();
        while state.lines.len() >= MAX_BUFFERED && !state.closed {
            state.waiting += 1;
            state = self.room.wait(state).unwrap_or_else(|e| e.into_inner());
            state.waiting -= 1;
        }
        state.lines.extend_from_slice(line);
        if state.lines.len() >= WAKE_AT && !state.woken {
            state.woken = true;
            self.work.notify_one();
        }
    }
}

/// A handle that appends lines: give clones to the log subscriber
/// ([`MakeWriter`]) and to the access log ([`LineSink`]).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
    /// The subscriber writes JSON objects (else text lines): how the
    /// request id is added to its lines.
    json: bool,
}

/// Writes what is left and stops the thread when dropped.
pub struct FlushAtExit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Starts the thread writing to `out`; `json`: the subscriber's lines
    /// are JSON objects.
    ///
    /// # Errors
    ///
    /// The thread could not be started.
    pub fn start(
        out: impl Write + Send + 'static,
        json: bool,
    ) -> std::io::Result<(Self, FlushAtExit)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: Vec::with_capacity(WAKE_AT * 2),
                woken: false,
                waiting: 0,
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("tessera-log".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_until_closed(&shared, out)
            })?;
        Ok((
            Self {
                shared: Arc::clone(&shared),
                json,
            },
            FlushAtExit {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

fn write_until_closed(shared: &Shared, mut out: impl Write) {
    let mut spare = Vec::with_capacity(WAKE_AT * 2);
    loop {
        let (closed, waiting) = {
            let mut state = shared.lock();
            if !state.woken && !state.closed {
                state = shared
                    .work
                    .wait_timeout(state, FLUSH_EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            state.woken = false;
            std::mem::swap(&mut state.lines, &mut spare);
            (state.closed, state.waiting > 0)
        };
        if waiting {
            shared.room.notify_all();
        }
        if !spare.is_empty() {
            // Nowhere to report a failed write to: the line is dropped.
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
        }
        if closed && shared.lock().lines.is_empty() {
            return;
        }
    }
}

impl Drop for FlushAtExit {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl LineSink for LogWriter {
    fn write_line(&self, line: &[u8]) {
        self.shared.append(line);
    }
}

/// What the log subscriber writes an event into: a line buffer appended
/// whole when the event is formatted (dropped), with the id of the request
/// the thread is running added last (`"request_id":"..."` in a JSON
/// object, ` request_id=...` in a text line), so that every line a request
/// writes carries its id.
pub struct EventWriter {
    shared: Arc<Shared>,
    line: Vec<u8>,
    json: bool,
}

impl EventWriter {
    fn add_request_id(&mut self) {
        with_current_request_id(|id| {
            let Some(id) = id else { return };
            let line = &mut self.line;
            let had_newline = line.last() == Some(&b'\n');
            if had_newline {
                line.pop();
            }
            if self.json {
                if line.last() != Some(&b'}') {
                    // Not an object: leave it as it is.
                    if had_newline {
                        line.push(b'\n');
                    }
                    return;
                }
                line.pop();
                line.extend_from_slice(b",\"request_id\":\"");
                line.extend_from_slice(id.as_bytes());
                line.extend_from_slice(b"\"}");
            } else {
                line.extend_from_slice(b" request_id=");
                line.extend_from_slice(id.as_bytes());
            }
            line.push(b'\n');
        });
    }
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.add_request_id();
            self.shared.append(&self.line);
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter {
            shared: Arc::clone(&self.shared),
            line: Vec::with_capacity(256),
            json: self.json,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test reads.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_all_by_exit() {
        let out = Captured::default();
        let (writer, guard) = LogWriter::start(out.clone(), false).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        if i % 2 == 0 {
                            writer.write_line(format!("thread {t} line {i}\n").as_bytes());
                        } else {
                            let mut event = writer.make_writer();
                            write!(event, "thread {t} ").unwrap();
                            writeln!(event, "line {i}").unwrap();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 80_000);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("thread {t} ")))
                .collect();
            let expected: Vec<String> = (0..20_000)
                .map(|i| format!("thread {t} line {i}"))
                .collect();
            assert_eq!(mine, expected, "thread {t}: lost, torn or reordered lines");
        }
    }

    #[test]
    fn a_quiet_log_is_written_within_the_flush_interval() {
        let out = Captured::default();
        let (writer, _guard) = LogWriter::start(out.clone(), false).unwrap();
        writer.write_line(b"one line\n");
        std::thread::sleep(FLUSH_EVERY * 6);
        assert_eq!(&*out.0.lock().unwrap(), b"one line\n");
    }
}
