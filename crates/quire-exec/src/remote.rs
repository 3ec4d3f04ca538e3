//! The executor seam: a job run somewhere else than the worker's machine.
//!
//! The worker keeps planning, recording and announcing a run; only "run
//! this job's steps and report what happened" moves to a [`JobHost`]. A
//! host starts `quire-run node` for one job wherever it runs jobs (Slurm:
//! one Slurm job, started with `srun`) and hands back a [`Connection`]: the
//! node's standard input and output. Over it the worker sends the job and
//! its commit, and the node streams back what the store ingests: events,
//! the job's log bytes, its kept artifacts and its saved cache. Nothing
//! else is shared: the node needs no access to the git server, the home or
//! a shared file system.
//!
//! The stream is a sequence of frames, each a tag byte, a big-endian
//! 32-bit length and that many bytes ([`write_frame`], [`read_frame`]).
//! Both ends treat what they read as untrusted: every length is capped
//! before it is allocated, every path checked ([`crate::beneath`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Worker to node: the job ([`NodeJob`], JSON), first.
pub const HEADER: u8 = b'H';
/// Worker to node: one object of the commit (a kind byte, then its data),
/// when it fits in [`CHUNK`] bytes.
pub const OBJECT: u8 = b'O';
/// Worker to node: an object larger than [`CHUNK`] bytes begins: its kind
/// byte and its size (8 bytes, little-endian); exactly that many bytes
/// follow in [`OBJECT_DATA`] frames of at most [`CHUNK`] bytes each.
pub const OBJECT_START: u8 = b'S';
pub const OBJECT_DATA: u8 = b'D';
/// Either way: a file starts ([`FileHead`], JSON); its bytes follow in
/// [`FILE_DATA`] frames, and [`FILE_END`] ends it.
pub const FILE_START: u8 = b'A';
pub const FILE_DATA: u8 = b'B';
pub const FILE_END: u8 = b'Z';
/// Worker to node: nothing more follows.
pub const END: u8 = b'E';
/// Node to worker: where the job runs ([`Hello`], JSON), first.
pub const HELLO: u8 = b'N';
/// Node to worker: bytes of the job's log, in order.
pub const LOG: u8 = b'L';
/// Node to worker: an event of the job's steps (its JSON line).
pub const EVENT: u8 = b'V';
/// Node to worker: how the job ended ([`Outcome`], JSON), last.
pub const OUTCOME: u8 = b'R';

/// The longest frame either end accepts: file data comes in frames of at
/// most [`CHUNK`] bytes, and nothing else is near this.
pub const MAX_FRAME: u32 = 8 << 20;
/// How much of a file one [`FILE_DATA`] frame carries.
pub const CHUNK: usize = 1 << 20;

/// The kinds of git object [`OBJECT`] frames carry.
pub const COMMIT: u8 = 1;
pub const TREE: u8 = 2;
pub const BLOB: u8 = 3;

/// Write one frame.
pub fn write_frame(out: &mut dyn Write, tag: u8, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n <= MAX_FRAME)
        .ok_or_else(|| io::Error::other(format!("a frame of {} bytes", payload.len())))?;
    let mut head = [0u8; 5];
    head[0] = tag;
    head[1..].copy_from_slice(&len.to_be_bytes());
    out.write_all(&head)?;
    out.write_all(payload)
}

/// Read one frame: `None` at the end of the stream (between frames); a
/// stream cut inside a frame, or a frame longer than `max`, is an error.
pub fn read_frame(input: &mut dyn Read, max: u32) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if len > max {
        return Err(io::Error::other(format!(
            "a frame of {len} bytes (at most {max})"
        )));
    }
    let mut payload = vec![0u8; len as usize];
    input.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// A file sent in frames: what it is for and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHead {
    /// `cache`: a file of the job's cache (to the node before its steps,
    /// back after they completed); `artifact`: a file the job kept.
    pub role: FileRole,
    /// Relative to the workspace (cache) or the job's artifacts.
    pub path: String,
    /// Unix permission bits; only 0o755 or 0o644 are kept.
    pub mode: u32,
    /// A symlink's target, for a symlink (no data follows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    Cache,
    Artifact,
    /// The checkout's file times kept with a cache (the worker's `mtimes`
    /// record): to the node with the restored cache, back with the saved
    /// one. Its path is `mtimes`; it is never written to the workspace.
    Times,
}

/// The largest record of file times either end takes.
pub const MAX_TIMES: u64 = 64 << 20;

/// What the node says first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The node's name (Slurm's `SLURMD_NODENAME`, else its host name).
    pub node: String,
    /// How the node confines the job's steps, as `show` says it.
    pub sandbox: String,
}

/// What the node says last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `complete`, `failed` or `aborted`.
    pub state: String,
    pub exit_code: Option<i64>,
}

/// A job for `quire-run node`: what the worker knows of its run, and the
/// settings of the worker's home that apply to its steps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeJob {
    pub run_id: String,
    pub repo: String,
    pub ref_name: String,
    pub sha: String,
    pub previous_sha: Option<String>,
    pub traceparent: String,
    /// The job's id: the node reads the pipeline from the commit it is
    /// sent, and runs this job of it alone.
    pub job: String,
    /// `max_pipeline_kb` of the worker's home.
    pub max_pipeline_bytes: u64,
    /// The home's `max_jobs` and `max_steps`: the node validates the
    /// pipeline as the hook did.
    pub max_jobs: usize,
    pub max_steps: usize,
    /// The home's `job_memory_mb` and `job_pids_max` (unset: the node's
    /// own defaults, three quarters of its memory): its job's cgroup.
    #[serde(default)]
    pub job_memory_mb: Option<u64>,
    #[serde(default)]
    pub job_pids_max: Option<u64>,
    /// The secrets the job asks for (name, value): sent only here.
    pub secrets: Vec<(String, String)>,
    /// config.toml's `[steps] env`.
    pub step_env: Vec<(String, String)>,
    /// The lines `quire: cache: ...` of its cache's restore, for the top
    /// of its log.
    pub cache_notes: Vec<String>,
    pub grace_ms: u64,
    pub max_line: usize,
    pub max_log_bytes: u64,
    pub tick_ms: u64,
    pub max_job_timeout_ms: Option<u64>,
    /// The home's `sandbox`, as config.toml spells it (`best-effort`).
    pub sandbox: String,
    /// The home's `step_network`, likewise (`isolated`).
    pub step_network: String,
}

/// What a host is asked to start.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The name the host shows the job under: `quire-<run>-<job>`.
    pub name: String,
    pub cpus: Option<u32>,
    pub memory_mb: Option<u64>,
    pub gpus: Option<u32>,
    pub constraint: Option<String>,
    /// The job's timeout (capped by `max_job_timeout`): the host's own
    /// limit, a little longer, so that quire's own ends it first.
    pub timeout: Option<Duration>,
}

/// The seam: somewhere jobs run, other than the worker's machine.
///
/// A Kubernetes Job or Nomad backend would implement this: start one
/// job's `quire-run node` with its standard input and output attached
/// (`kubectl attach`, Nomad's `alloc exec`), end it on request, and say
/// why it waits while it waits.
pub trait JobHost: Send + Sync + fmt::Debug {
    /// `slurm`.
    fn kind(&self) -> &'static str;
    /// Start `quire-run node` for `ticket`'s job.
    fn start(&self, ticket: &Ticket) -> io::Result<Box<dyn Connection>>;
    /// The host's jobs that quire started (their names), for reconcile.
    fn listed(&self) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// End the host's job named `name`, wherever it is.
    fn end(&self, name: &str) -> io::Result<()>;
}

/// One job's connection to its node.
pub trait Connection: Send {
    /// The node's standard input (taken once).
    fn input(&mut self) -> Option<Box<dyn Write + Send>>;
    /// The node's standard output (taken once).
    fn output(&mut self) -> Option<Box<dyn Read + Send>>;
    /// End the job wherever it runs; the output then ends.
    fn cancel(&mut self);
    /// Wait for the connection to end: what the host said when the job
    /// did not end well.
    fn wait(&mut self) -> Result<(), HostEnd>;
    /// While the job has not started: why it waits, when the host says.
    fn pending(&mut self) -> Option<String> {
        None
    }
}

/// How a job's connection ended badly, in its host's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEnd {
    /// What the host said (for the job's log).
    pub said: String,
    /// The host says the node the job ran on was lost (it died, or left
    /// the cluster): the host's own word, never the job's: a job whose
    /// node process was killed by one of its steps did not lose its node.
    pub node_lost: bool,
}

impl HostEnd {
    pub fn said(said: impl Into<String>) -> HostEnd {
        HostEnd {
            said: said.into(),
            node_lost: false,
        }
    }
}

/// Every object a commit's tree reaches, and the commit itself: what a
/// node needs to check it out.
pub trait CommitObjects: Send + Sync + fmt::Debug {
    /// Hand each object to `f`: its kind ([`COMMIT`], [`TREE`], [`BLOB`]),
    /// its size, and its bytes (exactly `size` of them) to read, so that a
    /// large blob is streamed, never held whole.
    fn each(&self, f: &mut dyn FnMut(u8, u64, &mut dyn Read) -> io::Result<()>) -> io::Result<()>;
}

/// Write one object of `size` bytes read from `data`: in one [`OBJECT`]
/// frame when it fits in [`CHUNK`] bytes, else an [`OBJECT_START`] frame
/// and [`OBJECT_DATA`] frames. Fails if `data` ends before `size` bytes.
pub fn write_object(
    out: &mut dyn Write,
    kind: u8,
    size: u64,
    data: &mut dyn Read,
) -> io::Result<()> {
    let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "an object ended early");
    if size <= CHUNK as u64 {
        let mut payload = Vec::with_capacity(size as usize + 1);
        payload.push(kind);
        let read = data.take(size).read_to_end(&mut payload)?;
        if read as u64 != size {
            return Err(short());
        }
        return write_frame(out, OBJECT, &payload);
    }
    let mut head = [0u8; 9];
    head[0] = kind;
    head[1..].copy_from_slice(&size.to_le_bytes());
    write_frame(out, OBJECT_START, &head)?;
    let mut buf = vec![0u8; CHUNK];
    let mut left = size;
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = data.read(&mut buf[..want])?;
        if n == 0 {
            return Err(short());
        }
        write_frame(out, OBJECT_DATA, &buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The kind and size an [`OBJECT_START`] frame's payload gives.
pub fn object_start(payload: &[u8]) -> io::Result<(u8, u64)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed object start");
    let (&kind, size) = payload.split_first().ok_or_else(bad)?;
    let size: [u8; 8] = size.try_into().map_err(|_| bad())?;
    Ok((kind, u64::from_le_bytes(size)))
}

/// The bytes of an object begun by an [`OBJECT_START`] frame, read from
/// the [`OBJECT_DATA`] frames that follow it: exactly its size, any other
/// frame in between refused.
pub struct ObjectData<'a> {
    input: &'a mut dyn Read,
    left: u64,
    frame: Vec<u8>,
    at: usize,
}

impl<'a> ObjectData<'a> {
    pub fn new(input: &'a mut dyn Read, size: u64) -> ObjectData<'a> {
        ObjectData {
            input,
            left: size,
            frame: Vec::new(),
            at: 0,
        }
    }

    /// Whether every byte of the object was read.
    pub fn is_done(&self) -> bool {
        self.left == 0 && self.at == self.frame.len()
    }
}

impl Read for ObjectData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.frame.len() {
            if self.left == 0 {
                return Ok(0);
            }
            let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
            let (tag, payload) = read_frame(self.input, MAX_FRAME)?
                .ok_or_else(|| bad("the input ended inside an object"))?;
            if tag != OBJECT_DATA {
                return Err(bad("another frame inside an object"));
            }
            if payload.len() as u64 > self.left {
                return Err(bad("an object longer than its size"));
            }
            self.left -= payload.len() as u64;
            self.frame = payload;
            self.at = 0;
        }
        let n = buf.len().min(self.frame.len() - self.at);
        buf[..n].copy_from_slice(&self.frame[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_larger_than_a_frame_streams_in_chunks_and_must_be_whole() {
        let big: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        write_object(&mut wire, BLOB, big.len() as u64, &mut &big[..]).unwrap();
        write_object(&mut wire, TREE, 3, &mut &b"abc"[..]).unwrap();
        let mut input = &wire[..];
        let (tag, payload) = read_frame(&mut input, MAX_FRAME).unwrap().unwrap();
        assert_eq!(tag, OBJECT_START);
        let (kind, size) = object_start(&payload).unwrap();
        assert_eq!((kind, size), (BLOB, big.len() as u64));
        let mut data = ObjectData::new(&mut input, size);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        assert!(data.is_done());
        assert_eq!(got, big);
        // A small object after it comes whole.
        let (tag, payload) = read_frame(&mut input, MAX_FRAME).unwrap().unwrap();
        assert_eq!((tag, &payload[..]), (OBJECT, &[TREE, b'a', b'b', b'c'][..]));

        // Data that ends before the size is an error on both ends.
        let mut cut = Vec::new();
        let err = write_object(&mut cut, BLOB, big.len() as u64 + 1, &mut &big[..]);
        assert!(err.is_err());
        let mut input = &cut[..];
        let (_, payload) = read_frame(&mut input, MAX_FRAME).unwrap().unwrap();
        let (_, size) = object_start(&payload).unwrap();
        let mut data = ObjectData::new(&mut input, size);
        assert!(data.read_to_end(&mut Vec::new()).is_err());

        // Another frame inside an object is refused.
        let mut mixed = Vec::new();
        let mut head = vec![BLOB];
        head.extend_from_slice(&(2 * CHUNK as u64).to_le_bytes());
        write_frame(&mut mixed, OBJECT_START, &head).unwrap();
        write_frame(&mut mixed, OBJECT_DATA, &big[..CHUNK]).unwrap();
        write_frame(&mut mixed, LOG, b"x").unwrap();
        let mut input = &mixed[..];
        read_frame(&mut input, MAX_FRAME).unwrap();
        let mut data = ObjectData::new(&mut input, 2 * CHUNK as u64);
        assert!(data.read_to_end(&mut Vec::new()).is_err());
        assert!(object_start(&[BLOB, 1, 2]).is_err());
    }

    #[test]
    fn frames_round_trip_and_a_cut_or_long_frame_is_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, LOG, b"hello").unwrap();
        write_frame(&mut buf, END, b"").unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r, 100).unwrap(),
            Some((LOG, b"hello".to_vec()))
        );
        assert_eq!(read_frame(&mut r, 100).unwrap(), Some((END, Vec::new())));
        assert_eq!(read_frame(&mut r, 100).unwrap(), None);
        let cut = &buf[..7];
        assert!(read_frame(&mut &cut[..], 100).is_err());
        assert!(read_frame(&mut &buf[..], 4).is_err(), "over the cap");
        let mut long = vec![LOG];
        long.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_frame(&mut &long[..], MAX_FRAME).is_err());
    }
}
