//! Processes the supervisor started, identified so that a recycled pid is never mistaken for
//! them: a pid plus its start time in clock ticks since boot (`/proc/<pid>/stat` field 22,
//! `proc(5)`).

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A process the supervisor started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    /// Process id.
    pub pid: u32,
    /// Start time, clock ticks after boot.
    pub start_ticks: u64,
}

/// What `/proc/<pid>/stat` says about a pid: its state letter and start time.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces and parentheses, so split at the last ')'.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; start time is field 22, i.e. 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

impl ProcessRef {
    /// Identifies a process that is running now.
    pub fn of(pid: u32) -> Option<ProcessRef> {
        stat(pid).map(|(_, start_ticks)| ProcessRef { pid, start_ticks })
    }

    /// Whether this very process is alive (not exited, not a zombie, pid not reused).
    pub fn alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if start == self.start_ticks && state != 'Z' && state != 'X')
    }

    /// Sends `signal` if this process is still alive; `false` if it was not.
    pub fn signal(&self, signal: rustix::process::Signal) -> bool {
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        self.alive() && rustix::process::kill_process(pid, signal).is_ok()
    }

    /// Waits until the process is gone, at most `timeout`; whether it is gone.
    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`. Whether it is gone.
    pub fn terminate(&self, grace: Duration) -> bool {
        use rustix::process::Signal;
        if !self.signal(Signal::TERM) {
            return !self.alive();
        }
        if self.wait_gone(grace) {
            return true;
        }
        self.signal(Signal::KILL);
        self.wait_gone(grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_live_and_dead_processes() {
        let me = ProcessRef::of(std::process::id()).unwrap();
        assert!(me.alive());
        let recycled = ProcessRef {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(!recycled.alive());

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let r = ProcessRef::of(child.id()).unwrap();
        assert!(r.alive());
        assert!(r.terminate(Duration::from_secs(5)) || child.try_wait().unwrap().is_some());
        child.wait().unwrap();
        assert!(!r.alive());
        assert!(ProcessRef::of(u32::MAX).is_none());
    }
}
