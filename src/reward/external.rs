//! A reward computed by an external program, over a line-based JSON protocol.
//!
//! The command is started once, through `sh -c`, and kept running. For every batch the
//! trainer writes ONE line to its stdin:
//!
//! ```text
//! {"sequences": ["ACDK", "WYV"]}
//! ```
//!
//! and reads ONE line back from its stdout, either a JSON array of numbers or an object
//! with a `rewards` array, one reward `>= 0` per sequence, in order:
//!
//! ```text
//! [0.25, 0.5]
//! {"rewards": [0.25, 0.5]}
//! ```
//!
//! The program must flush stdout after each line (`print(..., flush=True)` in Python).
//! Its stderr is free for logging: a thread drains it continuously and keeps the last
//! 4 KiB, which is quoted in errors. `examples/score.py` is a complete, dependency-free
//! implementation.
//!
//! Failures are reported, never panicked on: the process exiting or crashing (exit
//! status and stderr tail), no answer within the timeout (the process is then killed),
//! a line that is not JSON, the wrong number of rewards, non-numbers (`null`, strings such
//! as `"NaN"`), NaN (including the bare `NaN` Python's `json.dumps` writes), infinity and
//! negative values. After the process has died or been killed, every later call returns
//! [`RewardError::ProcessDead`]; a bad but complete answer leaves it running.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::{excerpt, RewardError, RewardModel, EXCERPT_CHARS};

/// How much of the process's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 4096;
/// Longest response line accepted; a longer one is a protocol error.
const MAX_LINE_BYTES: usize = 64 << 20;
/// After stdout closes, how long to wait for the process to exit on its own.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the stderr drain to reach end-of-file before quoting it.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// What the I/O threads report to [`ExternalReward::score`].
enum Event {
    /// One complete line from stdout, without its line ending.
    Line(String),
    /// Stdout reached end-of-file.
    Eof,
    /// Reading stdout failed.
    ReadFailed(String),
    /// A stdout line exceeded [`MAX_LINE_BYTES`]; its beginning.
    LineTooLong(String),
    /// Writing a request to stdin failed.
    WriteFailed(String),
}

#[derive(Default)]
struct StderrTail {
    bytes: VecDeque<u8>,
    /// Whether anything was dropped from the front.
    cut: bool,
    /// Whether stderr reached end-of-file (or failed).
    done: bool,
}

type SharedTail = Arc<(Mutex<StderrTail>, Condvar)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Serialize)]
struct Request<'a> {
    sequences: &'a [&'a str],
}

/// A [`RewardModel`] backed by a long-running external process; see the
/// [module documentation](self) for the protocol.
///
/// The child is started in its own process group; dropping an `ExternalReward` kills
/// that whole group (so grandchildren started by `sh -c` go too) and reaps the child.
pub struct ExternalReward {
    command: String,
    timeout: Duration,
    child: Child,
    /// Set once the child has been reaped.
    status: Option<ExitStatus>,
    /// Requests to the writer thread; `None` once the process is shut down.
    requests: Option<Sender<Vec<u8>>>,
    events: Receiver<Event>,
    stderr: SharedTail,
    /// Why the process is unusable, once it is.
    dead: Option<String>,
}

impl ExternalReward {
    /// Starts `sh -c cmd` with piped stdin, stdout and stderr. `timeout` bounds each call
    /// to [`score`](RewardModel::score), from sending the request to the end of the
    /// answer line.
    ///
    /// A command that cannot be found is only noticed by the first `score`, as an
    /// exit (status 127) with the shell's message in the stderr tail.
    pub fn spawn(cmd: &str, timeout: Duration) -> Result<Self, RewardError> {
        let spawn_err = |message: String| RewardError::Spawn {
            command: cmd.to_string(),
            message,
        };
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(|e| spawn_err(e.to_string()))?;
        let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = pipes else {
            kill_and_wait(&mut child);
            return Err(spawn_err("a standard stream was not piped".to_string()));
        };

        let tail: SharedTail = Arc::default();
        let (event_tx, events) = mpsc::channel();
        let (requests, request_rx) = mpsc::channel::<Vec<u8>>();

        let started = start_thread("reward-stderr", {
            let tail = Arc::clone(&tail);
            move || drain_stderr(stderr, &tail)
        })
        .and_then(|()| {
            start_thread("reward-stdout", {
                let tx = event_tx.clone();
                move || read_stdout(stdout, &tx)
            })
        })
        .and_then(|()| start_thread("reward-stdin", move || write_stdin(stdin, &request_rx, &event_tx)));
        if let Err(e) = started {
            kill_and_wait(&mut child);
            return Err(spawn_err(format!("could not start an I/O thread: {e}")));
        }

        Ok(ExternalReward {
            command: cmd.to_string(),
            timeout,
            child,
            status: None,
            requests: Some(requests),
            events,
            stderr: tail,
            dead: None,
        })
    }

    /// The command line this reward runs.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The operating-system id of the child (the `sh -c` process, or the command itself
    /// when the shell execs it).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The last few KiB the process wrote to stderr (lossily decoded), waiting up to
    /// `grace` for the drain to reach end-of-file first.
    fn stderr_tail(&self, grace: Duration) -> String {
        let (mutex, cond) = &*self.stderr;
        let guard = lock(mutex);
        let (guard, _) = cond
            .wait_timeout_while(guard, grace, |t| !t.done)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (a, b) = guard.bytes.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if guard.cut {
            format!("…{text}")
        } else {
            text
        }
    }

    /// Kills the process group unless the child is already reaped, then reaps it.
    fn kill(&mut self) -> String {
        if self.status.is_none() {
            self.status = kill_and_wait(&mut self.child);
        }
        self.status_text()
    }

    fn status_text(&self) -> String {
        match self.status {
            Some(s) => s.to_string(),
            None => "exit status unknown".to_string(),
        }
    }

    /// Marks the process unusable and stops feeding it.
    fn mark_dead(&mut self, err: &RewardError) {
        self.requests = None;
        self.dead = Some(err.to_string());
    }

    /// Stdout closed (or stdin broke): wait briefly for the process to exit on its own,
    /// kill it otherwise, and describe what happened.
    fn exited(&mut self) -> RewardError {
        self.requests = None;
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            if self.status.is_some() {
                break self.status_text();
            }
            match self.child.try_wait() {
                Ok(Some(s)) => self.status = Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let s = self.kill();
                    break format!("its pipes closed but it kept running, so it was killed: {s}");
                }
            }
        };
        let err = RewardError::ProcessExited {
            command: self.command.clone(),
            status,
            stderr: self.stderr_tail(STDERR_GRACE),
        };
        self.mark_dead(&err);
        err
    }

    /// Kills the process after an unrecoverable failure and builds the error.
    fn fatal(&mut self, make: impl FnOnce(String, String) -> RewardError) -> RewardError {
        self.kill();
        let err = make(self.command.clone(), self.stderr_tail(STDERR_GRACE));
        self.mark_dead(&err);
        err
    }

    /// Turns a non-line event (or a vanished thread) into the matching error.
    fn failure(&mut self, event: Option<Event>) -> RewardError {
        match event {
            None | Some(Event::Eof) => self.exited(),
            Some(Event::WriteFailed(message)) => {
                // Usually a broken pipe because the process is gone: report its exit if so.
                let err = self.exited();
                match err {
                    RewardError::ProcessExited { ref status, .. } if status.starts_with("its pipes closed") => err,
                    RewardError::ProcessExited {
                        command,
                        status,
                        stderr,
                    } => RewardError::ProcessExited {
                        command,
                        status: format!("{status}; writing the request failed: {message}"),
                        stderr,
                    },
                    other => other,
                }
            }
            Some(Event::ReadFailed(message)) => self.fatal(|command, stderr| RewardError::Io {
                command,
                message: format!("reading its stdout failed: {message}"),
                stderr,
            }),
            Some(Event::LineTooLong(start)) => self.fatal(|command, _| RewardError::BadResponse {
                command,
                problem: format!("response line longer than {MAX_LINE_BYTES} bytes"),
                line: start,
            }),
            Some(Event::Line(line)) => RewardError::BadResponse {
                command: self.command.clone(),
                problem: "unexpected line on stdout before the request was sent (one line \
                          per request, please; log to stderr)"
                    .to_string(),
                line,
            },
        }
    }
}

impl RewardModel for ExternalReward {
    /// Sends the batch as one JSON line and reads one line back; see the module docs.
    /// An empty batch returns an empty vector without talking to the process.
    fn score(&mut self, seqs: &[&str]) -> Result<Vec<f64>, RewardError> {
        if let Some(cause) = &self.dead {
            return Err(RewardError::ProcessDead {
                command: self.command.clone(),
                cause: cause.clone(),
            });
        }
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        // Anything already waiting is output nobody asked for, or a death notice.
        match self.events.try_recv() {
            Ok(event) => return Err(self.failure(Some(event))),
            Err(TryRecvError::Disconnected) => return Err(self.failure(None)),
            Err(TryRecvError::Empty) => {}
        }

        let mut request = serde_json::to_vec(&Request { sequences: seqs })
            .map_err(|e| RewardError::Other(format!("could not encode the request as JSON: {e}")))?;
        request.push(b'\n');
        let sent = match &self.requests {
            Some(tx) => tx.send(request).is_ok(),
            None => false,
        };
        if !sent {
            // The writer thread has stopped, after reporting why; find that report.
            let event = self.events.recv_timeout(STDERR_GRACE).ok();
            return Err(self.failure(event));
        }

        match self.events.recv_timeout(self.timeout) {
            Ok(Event::Line(line)) => parse_response(&line, seqs).map_err(|problem| RewardError::BadResponse {
                command: self.command.clone(),
                problem,
                line: excerpt(&line, EXCERPT_CHARS),
            }),
            Ok(event) => Err(self.failure(Some(event))),
            Err(RecvTimeoutError::Disconnected) => Err(self.failure(None)),
            Err(RecvTimeoutError::Timeout) => {
                let timeout = self.timeout;
                Err(self.fatal(|command, stderr| RewardError::Timeout {
                    command,
                    timeout,
                    stderr,
                }))
            }
        }
    }

    fn name(&self) -> String {
        format!("external:{}", self.command)
    }
}

impl Drop for ExternalReward {
    fn drop(&mut self) {
        self.requests = None;
        self.kill();
    }
}

impl std::fmt::Debug for ExternalReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalReward")
            .field("command", &self.command)
            .field("timeout", &self.timeout)
            .field("pid", &self.child.id())
            .field("dead", &self.dead)
            .finish()
    }
}

fn start_thread(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new().name(name.to_string()).spawn(f).map(|_| ())
}

/// Kills the child's process group (it leads one, see `spawn`) and the child itself,
/// then reaps it. Errors are ignored: the child may already be gone.
fn kill_and_wait(child: &mut Child) -> Option<ExitStatus> {
    #[cfg(unix)]
    {
        // std has no killpg; kill(1) with a negative id signals the whole group.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    child.wait().ok()
}

fn drain_stderr(mut stderr: ChildStderr, tail: &SharedTail) {
    let (mutex, cond) = &**tail;
    let mut chunk = [0u8; 8192];
    loop {
        match stderr.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let mut t = lock(mutex);
                t.bytes.extend(&chunk[..n]);
                let excess = t.bytes.len().saturating_sub(STDERR_TAIL_BYTES);
                if excess > 0 {
                    t.bytes.drain(..excess);
                    t.cut = true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    lock(mutex).done = true;
    cond.notify_all();
}

enum LineRead {
    Line(Vec<u8>),
    Eof,
    TooLong(Vec<u8>),
}

/// Reads one `\n`-terminated line (a final unterminated one counts), refusing to buffer
/// more than `cap` bytes.
fn read_capped_line(r: &mut impl BufRead, cap: usize) -> io::Result<LineRead> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Line(line)
            });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(if done { take + 1 } else { take });
        if line.len() > cap {
            line.truncate(4 * EXCERPT_CHARS);
            return Ok(LineRead::TooLong(line));
        }
        if done {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok(LineRead::Line(line));
        }
    }
}

fn read_stdout(stdout: ChildStdout, events: &Sender<Event>) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    loop {
        let event = match read_capped_line(&mut reader, MAX_LINE_BYTES) {
            Ok(LineRead::Line(l)) => Event::Line(String::from_utf8_lossy(&l).into_owned()),
            Ok(LineRead::Eof) => Event::Eof,
            Ok(LineRead::TooLong(start)) => Event::LineTooLong(String::from_utf8_lossy(&start).into_owned()),
            Err(e) => Event::ReadFailed(e.to_string()),
        };
        let last = !matches!(event, Event::Line(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

fn write_stdin(mut stdin: ChildStdin, requests: &Receiver<Vec<u8>>, events: &Sender<Event>) {
    for request in requests {
        if let Err(e) = stdin.write_all(&request).and_then(|()| stdin.flush()) {
            let _ = events.send(Event::WriteFailed(e.to_string()));
            return;
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first bare word outside JSON strings that spells NaN or infinity, if any.
fn bare_non_finite(line: &str) -> Option<String> {
    let mut in_string = false;
    let mut escaped = false;
    let mut word = String::new();
    for ch in line.chars().chain(std::iter::once(' ')) {
        if in_string {
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
            continue;
        }
        if ch.is_ascii_alphabetic() {
            word.push(ch);
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if matches!(lower.as_str(), "nan" | "inf" | "infinity") {
            return Some(word);
        }
        word.clear();
        if ch == '"' {
            in_string = true;
        }
    }
    None
}

fn describe_json_error(line: &str, err: &serde_json::Error) -> String {
    if line.trim().is_empty() {
        return "not valid JSON (an empty line)".to_string();
    }
    if let Some(word) = bare_non_finite(line) {
        return if word.eq_ignore_ascii_case("nan") {
            format!(
                "not valid JSON: it contains a bare {word} (JSON cannot carry NaN; this is how \
                 Python's json.dumps writes float('nan')); NaN is not a valid reward"
            )
        } else {
            format!(
                "not valid JSON: it contains a bare {word} (JSON cannot carry infinity); an \
                 infinite reward is not valid"
            )
        };
    }
    let message = err.to_string();
    if message.contains("number out of range") {
        format!("a number is too large for f64 (it would be infinite): {message}")
    } else {
        format!("not valid JSON ({message})")
    }
}

fn element(i: usize, v: &Value, seq: &str) -> Result<f64, String> {
    let what = || format!("reward {i} (for sequence {:?})", excerpt(seq, 60));
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_nan() => Err(format!("{} is NaN", what())),
            Some(x) if x.is_infinite() => Err(format!("{} is infinite ({x})", what())),
            Some(x) if x < 0.0 => Err(format!("{} is negative ({x}); rewards must be >= 0", what())),
            Some(x) => Ok(x),
            None => Err(format!("{} ({n}) is not representable as f64", what())),
        },
        Value::String(s) => {
            let t = s.trim().trim_start_matches(['+', '-']).to_ascii_lowercase();
            if t == "nan" {
                Err(format!(
                    "{} is the string {s:?}, not a number: NaN is not a valid reward \
                     (JSON cannot carry NaN)",
                    what()
                ))
            } else if t == "inf" || t == "infinity" {
                Err(format!(
                    "{} is the string {s:?}, not a number: an infinite reward is not valid",
                    what()
                ))
            } else {
                Err(format!("{} is the string {s:?}, not a number", what()))
            }
        }
        Value::Null => Err(format!(
            "{} is null, not a number (some encoders write NaN or infinity as null)",
            what()
        )),
        other => Err(format!("{} is {}, not a number", what(), kind(other))),
    }
}

/// Parses one response line into one reward per sequence, or says what is wrong with it.
fn parse_response(line: &str, seqs: &[&str]) -> Result<Vec<f64>, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| describe_json_error(line, &e))?;
    let items = match &value {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("rewards") {
            Some(Value::Array(items)) => items,
            Some(other) => return Err(format!("\"rewards\" is {}, expected an array of numbers", kind(other))),
            None => {
                return Err(
                    "expected a JSON array of numbers or an object with a \"rewards\" array, \
                     got an object without \"rewards\""
                        .to_string(),
                )
            }
        },
        other => {
            return Err(format!(
                "expected a JSON array of numbers or an object with a \"rewards\" array, got {}",
                kind(other)
            ))
        }
    };
    if items.len() != seqs.len() {
        return Err(format!(
            "expected {} rewards (one per sequence), got {}",
            seqs.len(),
            items.len()
        ));
    }
    items
        .iter()
        .zip(seqs)
        .enumerate()
        .map(|(i, (v, s))| element(i, v, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_tokens_are_found_outside_strings_only() {
        assert_eq!(bare_non_finite("[1, NaN]").as_deref(), Some("NaN"));
        assert_eq!(bare_non_finite("[-Infinity]").as_deref(), Some("Infinity"));
        assert_eq!(bare_non_finite("[\"NaN\", 1]"), None);
        assert_eq!(bare_non_finite("[\"a\\\"NaN\"]"), None);
        assert_eq!(bare_non_finite("{\"rewards\": [null, true]}"), None);
    }

    #[test]
    fn capped_lines() {
        let mut r = io::Cursor::new(b"ab\r\ncd\nlast".to_vec());
        let mut got = Vec::new();
        loop {
            match read_capped_line(&mut r, 10).unwrap() {
                LineRead::Line(l) => got.push(String::from_utf8(l).unwrap()),
                LineRead::Eof => break,
                LineRead::TooLong(_) => panic!("too long"),
            }
        }
        assert_eq!(got, ["ab", "cd", "last"]);
        let mut r = io::Cursor::new(vec![b'x'; 100]);
        assert!(matches!(read_capped_line(&mut r, 10).unwrap(), LineRead::TooLong(_)));
    }

    use proptest::prelude::*;

    fn cases(default: u32) -> u32 {
        std::env::var("GFN_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The response contract on one line: never a panic; what is accepted is
    /// one finite, non-negative reward per sequence.
    fn check_line(line: &str, seqs: &[&str]) -> Result<(), TestCaseError> {
        match parse_response(line, seqs) {
            Ok(r) => {
                prop_assert_eq!(r.len(), seqs.len());
                prop_assert!(r.iter().all(|x| x.is_finite() && *x >= 0.0), "{:?}", r);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(512)))]

        /// Any text, against sequences with any characters (the error quotes them).
        #[test]
        fn response_parser_on_arbitrary_lines(line in ".{0,120}", seqs in proptest::collection::vec(".{0,80}", 0..4)) {
            let seqs: Vec<&str> = seqs.iter().map(String::as_str).collect();
            check_line(&line, &seqs)?;
        }

        /// Near-valid lines: arrays and objects of number-like tokens, cut or
        /// with one byte changed.
        #[test]
        fn response_parser_on_damaged_lines(
            tokens in proptest::collection::vec(
                prop_oneof![
                    "-?[0-9]{1,4}(\\.[0-9]{1,3})?(e-?[0-9]{1,3})?",
                    Just("NaN".to_string()),
                    Just("-Infinity".to_string()),
                    Just("null".to_string()),
                    Just("\"0.5\"".to_string()),
                    Just("1e999".to_string()),
                ],
                0..5,
            ),
            object in any::<bool>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            damage in 0u8..3,
        ) {
            let list = format!("[{}]", tokens.join(", "));
            let line = if object { format!("{{\"rewards\": {list}}}") } else { list };
            let mut bytes = line.into_bytes();
            let i = at.index(bytes.len());
            match damage {
                0 => {}
                1 => bytes.truncate(i),
                _ => bytes[i] = byte,
            }
            let line = String::from_utf8_lossy(&bytes);
            let seqs = vec!["ACDEFGHIK"; tokens.len()];
            check_line(&line, &seqs)?;
        }
    }

    #[test]
    fn one_reward_per_sequence_neither_fewer_nor_more() {
        assert_eq!(parse_response("[1, 2]", &["A", "C"]), Ok(vec![1.0, 2.0]));
        for line in ["[1]", "[1, 2, 3]", "{\"rewards\": [1, 2, 3]}"] {
            let err = parse_response(line, &["A", "C"]).unwrap_err();
            assert!(err.contains("expected 2 rewards"), "{line}: {err}");
        }
    }

    #[test]
    fn huge_number_is_called_infinite() {
        let err = parse_response("[1e999]", &["A"]).unwrap_err();
        assert!(err.contains("infinite"), "{err}");
    }
}
