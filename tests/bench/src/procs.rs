//! Server processes started by the harness: spawn with a clean environment, wait for
//! `/readyz`, read peak RSS and CPU time from `/proc`, stop with SIGTERM (SIGKILL on drop or
//! when the harness dies: `kill_on_drop` and `PR_SET_PDEATHSIG`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A free loopback port (bound and released: good enough on a machine we own).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub struct Server {
    pub name: String,
    pub pid: u32,
    /// Where `/readyz` is answered (public port for api/serve, admin port otherwise).
    pub ready_addr: SocketAddr,
    pub log: PathBuf,
    child: Child,
}

/// Environment passed to every child: only what is set here (plus PATH/HOME), so settings of
/// the shell that runs the harness cannot leak into the system under test.
pub fn command(
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Command> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    for var in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGKILL this child when
    // the harness dies, so a killed harness leaves no servers behind.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    Ok(cmd)
}

impl Server {
    pub async fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(String, String)],
        ready_addr: SocketAddr,
        log_dir: &Path,
    ) -> anyhow::Result<Server> {
        let log = log_dir.join(format!("{name}.log"));
        let child = command(program, args, env, &log)?
            .spawn()
            .with_context(|| format!("start {} {}", program.display(), args.join(" ")))?;
        let pid = child.id().context("child pid")?;
        let mut server = Server {
            name: name.to_owned(),
            pid,
            ready_addr,
            log,
            child,
        };
        server.wait_ready(Duration::from_secs(60)).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before it was ready; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            if let Ok(Ok(r)) = tokio::time::timeout(
                Duration::from_secs(2),
                crate::http::once(self.ready_addr, "GET", "/readyz", None),
            )
            .await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready on {} after {limit:?}; log {}:\n{}",
                    self.name,
                    self.ready_addr,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (SIGKILL after `grace`).
    pub async fn stop(mut self, grace: Duration) -> anyhow::Result<()> {
        // SAFETY: sending a signal to our own child's pid.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                eprintln!(
                    "bench: {} did not stop within {grace:?}; killing it",
                    self.name
                );
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); log {}",
                self.name,
                self.log.display()
            )),
            _ => None,
        }
    }
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs a one-shot subcommand to completion.
pub async fn run_once(
    name: &str,
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    log_dir: &Path,
) -> anyhow::Result<()> {
    let log = log_dir.join(format!("{name}.log"));
    let status = command(program, args, env, &log)?.status().await?;
    if !status.success() {
        bail!(
            "{name} failed ({status}); log {}:\n{}",
            log.display(),
            tail(&log)
        );
    }
    Ok(())
}

/// `/proc/<pid>/status` fields in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Peak resident set since the last [`reset_peak`] (or the start), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0)
}

pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0: `echo 5 > /proc/<pid>/clear_refs`), so the
/// peak is per scenario. Returns false where the kernel refuses.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User + system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Pids of processes whose command name is one of `names` (the database and Redis servers,
/// whose CPU share the report shows; they are only read, never touched).
pub fn pids_named(names: &[&str]) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            && names.contains(&comm.trim())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Raises the open-files limit to its hard maximum (children inherit it): 1,000 client
/// connections plus the server's need more than a default 1,024.
pub fn raise_nofile_limit() {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
