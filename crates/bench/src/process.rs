//! The worker processes under test: spawned as `<herald> worker`, measured through `/proc`
//! (CPU time and peak resident memory), stopped with SIGTERM.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};
use tokio::process::{Child, Command};

/// How long a stopped worker may take to drain and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// One or more `herald worker` processes sharing a queue. Dropping this kills them.
#[derive(Debug)]
pub struct WorkerProcesses {
    children: Vec<(u32, Child)>,
}

impl WorkerProcesses {
    /// Starts `count` workers: `exe worker` with `env` added to this process's environment.
    /// Their stderr is this process's, so a worker's warnings and errors show up.
    pub fn spawn(exe: &Path, count: usize, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut children = Vec::with_capacity(count);
        for _ in 0..count {
            let child = Command::new(exe)
                .arg("worker")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting `{} worker`", exe.display()))?;
            let pid = child.id().context("a just-spawned worker has a pid")?;
            children.push((pid, child));
        }
        Ok(WorkerProcesses { children })
    }

    /// Fails if a worker has exited: a benchmark waiting on it would only time out.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for (pid, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "worker process {pid} exited ({status}) during the benchmark; see its messages above"
                );
            }
        }
        Ok(())
    }

    /// User plus system CPU time of every worker so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let mut total = 0.0;
        for (pid, _) in &self.children {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .with_context(|| format!("reading /proc/{pid}/stat"))?;
            let used = cpu_ticks(&stat)
                .with_context(|| format!("/proc/{pid}/stat has no CPU times: {stat:?}"))?;
            total += used as f64 / ticks;
        }
        Ok(total)
    }

    /// The largest peak resident set (VmHWM) among the workers, in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let mut peak = 0;
        for (pid, _) in &self.children {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .with_context(|| format!("reading /proc/{pid}/status"))?;
            let hwm = peak_rss(&status)
                .with_context(|| format!("/proc/{pid}/status has no VmHWM line"))?;
            peak = peak.max(hwm);
        }
        Ok(peak)
    }

    /// Sends SIGTERM to every worker and waits for each to drain and exit (killing one that
    /// takes longer than 30 s). Returns how they exited.
    pub async fn stop(mut self) -> anyhow::Result<Vec<ExitStatus>> {
        for (pid, _) in &self.children {
            let target = i32::try_from(*pid).ok().and_then(Pid::from_raw);
            if let Some(target) = target {
                // An already exited worker is reported by `wait` below.
                let _ = kill_process(target, Signal::TERM);
            }
        }
        let mut statuses = Vec::with_capacity(self.children.len());
        for (pid, child) in &mut self.children {
            match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
                Ok(status) => statuses.push(status?),
                Err(_) => {
                    eprintln!("note: worker {pid} did not exit within 30 s of SIGTERM; killing it");
                    child.kill().await?;
                    statuses.push(child.wait().await?);
                }
            }
        }
        Ok(statuses)
    }
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`), in clock ticks. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 (state) is index 0
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmHWM from `/proc/<pid>/status`, in bytes.
fn peak_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_after_the_command_name() {
        let stat = "4242 (herald (w) 1) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    731 96 0 0 20 0 9 0 12345 123456789 4000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(731 + 96));
        assert_eq!(cpu_ticks("4242 (herald) S 1"), None);
    }

    #[test]
    fn peak_rss_is_read_in_bytes() {
        let status =
            "Name:\therald\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(peak_rss(status), Some(41_234 * 1024));
        assert_eq!(peak_rss("Name:\therald\n"), None);
    }

    #[test]
    fn this_process_can_be_measured() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(cpu_ticks(&own).is_some(), "{own}");
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        assert!(peak_rss(&status).unwrap() > 0);
    }
}
