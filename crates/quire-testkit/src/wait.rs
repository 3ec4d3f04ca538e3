//! The one wait: on a state (a store row, a process, a file a step wrote)
//! that has no event of its own to wait on, never for a time.

use std::time::{Duration, Instant};

/// How long any test waits for anything before it fails, naming what
/// never happened: long enough for a loaded machine of two cores, short
/// enough that a hung test ends.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Look at `ready` every 20 ms until it holds; panic after [`DEADLINE`],
/// naming what never happened.
pub fn wait_until(what: &str, ready: impl FnMut() -> bool) {
    assert!(
        within(DEADLINE.as_secs(), ready),
        "waited a minute for {what}"
    );
}

/// Whether `ready` came to hold within `secs` seconds, looked at every 20
/// ms: for a test whose claim is a bound (something happens within 20 s),
/// and the primitive [`wait_until`] waits with.
pub fn within(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Wait (up to [`DEADLINE`]) for a child to exit; its status.
pub fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let mut status = None;
    wait_until("the process to exit", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// A child's output read as it comes, a line at a time, on a thread of its
/// own, so that a test can wait for a line without ever blocking past
/// [`DEADLINE`].
pub struct LineReader {
    lines: std::sync::mpsc::Receiver<String>,
}

impl LineReader {
    pub fn new(source: impl std::io::Read + Send + 'static) -> LineReader {
        use std::io::BufRead;
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut source = std::io::BufReader::new(source);
            loop {
                let mut line = Vec::new();
                match source.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.trim_end_matches(['\n', '\r']).to_string();
                        if send.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        LineReader { lines }
    }

    /// The next line (without its line ending); None at the end of the
    /// output. Panics after [`DEADLINE`] without one, naming `what`.
    pub fn next(&self, what: &str) -> Option<String> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("waited a minute for {what}"),
        }
    }

    /// The lines up to and including the first that contains `text`.
    pub fn until(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.next(&format!("a line with {text:?} after {seen:#?}")) {
                Some(line) => {
                    let found = line.contains(text);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                None => panic!("the output ended without {text:?}: {seen:#?}"),
            }
        }
    }

    /// Every line left, to the end of the output.
    pub fn rest(&self) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(line) = self.next("the end of the output") {
            seen.push(line);
        }
        seen
    }
}
