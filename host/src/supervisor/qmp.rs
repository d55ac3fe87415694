//! A minimal QMP client (QEMU Machine Protocol, `docs/interop/qmp-spec.rst`): enough to ask a
//! VM its status and to tell it to quit.
//!
//! QMP is line-delimited JSON over the socket QEMU was started with (`-qmp unix:…`). QEMU
//! is a local process the supervisor started, but its replies are still bounded: a line
//! longer than [`MAX_LINE_BYTES`] or a reply later than the timeout is an error.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest QMP line read.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Errors talking to QEMU.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// "could not reach the qmp socket `{path}`".
    #[error("could not reach the qmp socket `{path}`")]
    Connect {
        /// The socket.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// "qmp i/o failed".
    #[error("qmp i/o failed")]
    Io(#[source] std::io::Error),
    /// "qemu closed the qmp connection".
    #[error("qemu closed the qmp connection")]
    Closed,
    /// "qmp line is longer than 64 KiB".
    #[error("qmp line is longer than 64 KiB")]
    TooLong,
    /// "qmp reply is not json".
    #[error("qmp reply is not json")]
    Json(#[source] serde_json::Error),
    /// "qemu refused `{command}`: {desc}".
    #[error("qemu refused `{command}`: {desc}")]
    Refused {
        /// The command.
        command: String,
        /// QEMU's description.
        desc: String,
    },
}

/// A QMP session in command mode.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities. Every read and write
    /// waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let stream = UnixStream::connect(path).map_err(|source| QmpError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(QmpError::Io)?;
        let writer = stream.try_clone().map_err(QmpError::Io)?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Refused {
                command: "greeting".into(),
                desc: "no QMP greeting".into(),
            });
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<serde_json::Value, QmpError> {
        let mut line = Vec::new();
        let mut limited = (&mut self.reader).take(u64::try_from(MAX_LINE_BYTES).unwrap_or(0));
        let n = limited.read_until(b'\n', &mut line).map_err(QmpError::Io)?;
        if n == 0 {
            return Err(QmpError::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(QmpError::TooLong);
        }
        serde_json::from_slice(&line).map_err(QmpError::Json)
    }

    /// Runs `command` and returns its `return` value; asynchronous events that arrive in
    /// between are skipped.
    pub fn execute(&mut self, command: &str) -> Result<serde_json::Value, QmpError> {
        self.execute_with(command, serde_json::json!({}))
    }

    /// Runs `command` with `arguments` (a JSON object) and returns its `return` value.
    pub fn execute_with(
        &mut self,
        command: &str,
        arguments: serde_json::Value,
    ) -> Result<serde_json::Value, QmpError> {
        let request = serde_json::json!({ "execute": command, "arguments": arguments });
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(QmpError::Io)?;
        loop {
            let mut reply = self.read_message()?;
            if let Some(ret) = reply.get_mut("return") {
                return Ok(ret.take());
            }
            if let Some(err) = reply.get("error") {
                return Err(QmpError::Refused {
                    command: command.to_owned(),
                    desc: err
                        .get("desc")
                        .and_then(|d| d.as_str())
                        .unwrap_or("no description")
                        .to_owned(),
                });
            }
            // An event ({"event": …}): not ours.
        }
    }

    /// The VM's run state (`query-status`): `running`, `prelaunch`, `paused`, `shutdown`, ….
    pub fn status(&mut self) -> Result<String, QmpError> {
        let ret = self.execute("query-status")?;
        Ok(ret
            .get("status")
            .and_then(|s| s.as_str())
            .unwrap_or("unknown")
            .to_owned())
    }
}
