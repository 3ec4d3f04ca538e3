//! The Slurm host ([`crate::remote::JobHost`]): each quire job one Slurm
//! job, started with Slurm's own `srun` so that the node's output arrives
//! as it is printed; ended with `scancel`, and asked about with `squeue`.
//!
//! Nothing secret is on a command line or in the job's environment as
//! Slurm records it: `srun` gets `--export=NONE` and names only
//! `quire-run node`; the job, its secrets included, goes over the node's
//! standard input.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::remote::{Connection, HostEnd, JobHost, Ticket};

/// What srun says, and it alone, when the node of its job died or left
/// the cluster under it (`srun: error: Node failure on qnode2`).
const NODE_FAILURE: &str = "srun: error: Node failure on ";

/// How srun ended (`success`, its `status` in words) with its stderr's
/// lines (`said`): srun exits 0 when the one node of its job dies, and
/// only its `Node failure` line says so. Its own line: a step's output
/// goes to the node's pipes, not to srun's stderr.
fn ended(success: bool, status: &str, said: String) -> Result<(), HostEnd> {
    let node_lost = said
        .lines()
        .chain(said.split("; "))
        .any(|l| l.starts_with(NODE_FAILURE));
    let said = match (success, said.is_empty()) {
        (true, true) => return Ok(()),
        (true, false) => said,
        (false, true) => format!("srun {status}"),
        (false, false) => format!("srun {status}: {said}"),
    };
    Err(HostEnd { said, node_lost })
}

/// config.toml's `[executor]` for `kind = "slurm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slurm {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Slurm's `srun`; `scancel` and `squeue` are looked for beside it.
    pub srun: PathBuf,
    /// The quire-run binary on the nodes.
    pub node_quire_run: PathBuf,
    /// Node-local directory for workspaces; none: the node's `$TMPDIR`,
    /// else `/tmp`.
    pub node_scratch: Option<PathBuf>,
}

impl Slurm {
    fn beside(&self, name: &str) -> PathBuf {
        match self.srun.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    }

    /// `srun`'s arguments for `ticket`.
    pub fn srun_args(&self, ticket: &Ticket) -> Vec<String> {
        let mut args = vec![
            format!("--job-name={}", ticket.name),
            "--nodes=1".into(),
            "--ntasks=1".into(),
            // Only SLURM_* variables: nothing of the worker's environment.
            "--export=NONE".into(),
            "--unbuffered".into(),
            "--quiet".into(),
            // The worker's own directory need not exist on a node.
            "--chdir=/".into(),
        ];
        if let Some(p) = &self.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            args.push(format!("--account={a}"));
        }
        if let Some(cpus) = ticket.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mb) = ticket.memory_mb {
            args.push(format!("--mem={mb}M"));
        }
        if let Some(gpus) = ticket.gpus.filter(|&n| n > 0) {
            args.push(format!("--gres=gpu:{gpus}"));
        }
        if let Some(c) = &ticket.constraint {
            args.push(format!("--constraint={c}"));
        }
        if let Some(t) = ticket.timeout {
            // Slurm counts minutes; one more than quire's own, which ends
            // the job first and says why.
            args.push(format!("--time={}", t.as_secs().div_ceil(60) + 1));
        }
        args.push("--".into());
        args.push(self.node_quire_run.to_string_lossy().into_owned());
        args.push("node".into());
        if let Some(dir) = &self.node_scratch {
            args.push("--scratch".into());
            args.push(dir.to_string_lossy().into_owned());
        }
        args
    }
}

impl JobHost for Slurm {
    fn kind(&self) -> &'static str {
        "slurm"
    }

    fn start(&self, ticket: &Ticket) -> io::Result<Box<dyn Connection>> {
        let mut child = Command::new(&self.srun)
            .args(self.srun_args(ticket))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {}: {e}", self.srun.display()),
                )
            })?;
        // quire's own helper, not a step's: the sweeps of the worker's
        // descendants (once a run's jobs have all ended) leave it to end
        // by itself, telling Slurm the job is done.
        crate::processes::spare(child.id());
        // srun's own lines (and Slurm's refusals): the last few kept.
        let said = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take();
        let kept = Arc::clone(&said);
        let drain = std::thread::spawn(move || {
            let Some(mut stderr) = stderr else { return };
            let mut text = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if text.len() < 64 * 1024 {
                    text.extend_from_slice(&buf[..n]);
                }
            }
            let text = String::from_utf8_lossy(&text);
            let mut lines: Vec<String> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            let skip = lines.len().saturating_sub(6);
            lines.drain(..skip);
            *kept.lock().unwrap_or_else(|e| e.into_inner()) = lines;
        });
        Ok(Box::new(SrunJob {
            name: ticket.name.clone(),
            child,
            said,
            drain: Some(drain),
            scancel: self.beside("scancel"),
            squeue: self.beside("squeue"),
        }))
    }

    fn listed(&self) -> io::Result<Vec<String>> {
        let out = Command::new(self.beside("squeue"))
            .args(["--noheader", "--format=%j", "--me"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other("squeue failed"));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with("quire-"))
            .map(String::from)
            .collect())
    }

    fn end(&self, name: &str) -> io::Result<()> {
        scancel(&self.beside("scancel"), name)
    }
}

fn scancel(scancel: &std::path::Path, name: &str) -> io::Result<()> {
    let status = Command::new(scancel)
        .arg(format!("--name={name}"))
        .arg("--me")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("scancel --name={name} failed")))
    }
}

/// A running `srun`.
struct SrunJob {
    name: String,
    child: Child,
    said: Arc<Mutex<Vec<String>>>,
    drain: Option<std::thread::JoinHandle<()>>,
    scancel: PathBuf,
    squeue: PathBuf,
}

impl Connection for SrunJob {
    fn input(&mut self) -> Option<Box<dyn Write + Send>> {
        self.child
            .stdin
            .take()
            .map(|s| Box::new(s) as Box<dyn Write + Send>)
    }

    fn output(&mut self) -> Option<Box<dyn Read + Send>> {
        self.child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>)
    }

    fn cancel(&mut self) {
        let _ = scancel(&self.scancel, &self.name);
        // srun ends once Slurm has ended the job; one that does not is
        // killed (Slurm ends a job whose srun is gone).
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }

    fn wait(&mut self) -> Result<(), HostEnd> {
        let status = self.child.wait().map_err(|e| HostEnd::said(e.to_string()));
        crate::processes::unspare(self.child.id());
        let status = status?;
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        let said = self
            .said
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("; ");
        ended(status.success(), &status.to_string(), said)
    }

    fn pending(&mut self) -> Option<String> {
        let out = Command::new(&self.squeue)
            .args([
                "--noheader",
                "--me",
                &format!("--name={}", self.name),
                "--format=%T|%r|%i|%P",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next()?.trim().to_string();
        let mut parts = line.split('|');
        let (state, reason, id, partition) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (state == "PENDING")
            .then(|| format!("queued in Slurm: {reason}, job {id}, partition {partition}"))
    }
}

impl Drop for SrunJob {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = scancel(&self.scancel, &self.name);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        crate::processes::unspare(self.child.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sruns_node_failure_line_says_a_node_was_lost() {
        assert_eq!(ended(true, "exit status: 0", String::new()), Ok(()));
        let lost = ended(
            true,
            "exit status: 0",
            "srun: error: Node failure on qnode2".into(),
        );
        assert!(lost.is_err_and(|e| e.node_lost && e.said.contains("qnode2")));
        // The job's process killed, out of memory, or a refusal: the job
        // failed, its node did not go.
        for said in [
            "srun: error: qnode1: task 0: Killed",
            "srun: error: qnode1: task 0: Out Of Memory",
            "srun: error: Unable to allocate resources: Invalid partition name specified",
            "quire: node said srun: error: Node failure on qnode9",
        ] {
            let end = ended(false, "exit status: 1", said.into());
            assert!(end.is_err_and(|e| !e.node_lost), "{said}");
        }
    }

    #[test]
    fn srun_is_told_the_resources_and_nothing_secret() {
        let slurm = Slurm {
            partition: Some("ci".into()),
            account: None,
            srun: "/usr/bin/srun".into(),
            node_quire_run: "/usr/local/bin/quire-run".into(),
            node_scratch: None,
        };
        let args = slurm.srun_args(&Ticket {
            name: "quire-abc-test".into(),
            cpus: Some(2),
            memory_mb: Some(4096),
            gpus: Some(1),
            constraint: Some("avx2".into()),
            timeout: Some(Duration::from_secs(90)),
        });
        for want in [
            "--job-name=quire-abc-test",
            "--partition=ci",
            "--cpus-per-task=2",
            "--mem=4096M",
            "--gres=gpu:1",
            "--constraint=avx2",
            "--time=3",
            "--export=NONE",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        assert_eq!(
            &args[args.len() - 2..],
            ["/usr/local/bin/quire-run", "node"]
        );
        assert_eq!(slurm.beside("scancel"), PathBuf::from("/usr/bin/scancel"));
    }
}
