//! Child processes the demo starts, stopped (SIGTERM, then SIGKILL) when dropped, so the demo
//! cleans up every process it started even when it fails half way.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A named child process.
pub struct Proc {
    name: String,
    child: Child,
}

/// Every process started so far.
#[derive(Default)]
pub struct Procs {
    list: Vec<Proc>,
}

impl Procs {
    /// Starts `cmd`, logging its stderr to `log`.
    pub fn start(&mut self, name: &str, cmd: &mut Command, log: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {name}: {e}"))?;
        self.list.push(Proc {
            name: name.to_string(),
            child,
        });
        Ok(())
    }

    /// Fails if any process has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for p in &mut self.list {
            if let Ok(Some(status)) = p.child.try_wait() {
                anyhow::bail!("{} exited early ({status})", p.name);
            }
        }
        Ok(())
    }
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Procs {
    fn drop(&mut self) {
        for p in self.list.iter_mut().rev() {
            terminate(&mut p.child);
        }
    }
}

/// A free TCP port P on loopback such that P+1 is free too (swtpm's control port).
pub fn free_port_pair() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let p = l.local_addr()?.port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    anyhow::bail!("no free port pair on loopback")
}

/// Waits until `cond` holds or `timeout` passes.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!("timed out waiting for {what}")
}
