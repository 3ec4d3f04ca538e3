//! A job's whole log as plain text, as `quire-runs logs RUN JOB` prints it:
//! each step under a `==> JOB step N: CMD <==` line, then the text its
//! lines hold, every control character escaped as the CLI escapes it
//! (`quire_view::text::terminal_safe`), colours left out. Read a chunk
//! at a time, so a long log is never held whole.

use quire_model::cri::Record;
use quire_store::Store;
use quire_store::logs::LogAt;
use quire_view::text::{Colours, flat, printable, terminal_safe};

/// What one read of a step's log takes at most.
const CHUNK: u64 = 64 << 10;

/// Where the reader of a job's log is.
#[derive(Debug)]
pub struct RawLog {
    run: String,
    job: String,
    /// The job's steps, `(seq, cmd)`, in order.
    steps: Vec<(i64, String)>,
    /// The step read now, as an index into `steps`.
    at: usize,
    /// Where in that step's log the next read starts.
    offset: u64,
    /// Whether that step's header was written.
    headed: bool,
    /// Bytes after the last newline read: a record not ended yet.
    pending: Vec<u8>,
    /// Whether the output is at the start of a line.
    at_line_start: bool,
}

impl RawLog {
    pub fn new(run: String, job: String, steps: Vec<(i64, String)>) -> RawLog {
        RawLog {
            run,
            job,
            steps,
            at: 0,
            offset: 0,
            headed: false,
            pending: Vec::new(),
            at_line_start: true,
        }
    }

    /// The next bytes of the text; `None` once it has all been given.
    pub fn next_chunk(&mut self, store: &Store) -> quire_store::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        while out.is_empty() {
            let Some((seq, cmd)) = self.steps.get(self.at) else {
                return Ok(None);
            };
            let seq = *seq;
            if !self.headed {
                let cmd = flat(cmd);
                let header = format!(
                    "==> {} step {seq}: {} <==\n",
                    printable(&self.job),
                    printable(&cmd)
                );
                out.extend_from_slice(header.as_bytes());
                self.headed = true;
            }
            let read = store.read_step_log(
                &self.run,
                &self.job,
                seq,
                LogAt::Offset(self.offset),
                CHUNK,
            )?;
            let Some(log) = read else {
                out.extend_from_slice(b"(no log: none was kept for this step)\n");
                self.next_step();
                continue;
            };
            if log.bytes.is_empty() {
                // The end of what the step wrote (so far): an unended
                // record is shown as it is, and the step's text ends its
                // line.
                let rest = std::mem::take(&mut self.pending);
                if !rest.is_empty() {
                    self.record(&rest, &mut out);
                }
                if !self.at_line_start {
                    out.push(b'\n');
                }
                self.next_step();
                continue;
            }
            self.offset += log.bytes.len() as u64;
            self.pending.extend_from_slice(&log.bytes);
            let mut pending = std::mem::take(&mut self.pending);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
                self.record(&pending[start..start + end], &mut out);
                start += end + 1;
            }
            pending.drain(..start);
            self.pending = pending;
        }
        Ok(Some(out))
    }

    fn next_step(&mut self) {
        self.at += 1;
        self.offset = 0;
        self.headed = false;
        self.pending.clear();
        self.at_line_start = true;
    }

    /// One CRI record's text (anything else, escaped, as a line).
    fn record(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let record = Record::parse(line);
        if record.stamp.is_empty() {
            out.extend_from_slice(&terminal_safe(line, Colours::Drop));
            out.push(b'\n');
            self.at_line_start = true;
            return;
        }
        out.extend_from_slice(&terminal_safe(record.text, Colours::Drop));
        if !record.partial {
            out.push(b'\n');
        }
        self.at_line_start = !record.partial;
    }
}
