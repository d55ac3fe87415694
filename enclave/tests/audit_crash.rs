//! Crash durability of the audit log (KEE-1 P7): a writer process appends ALEs from many
//! concurrent tasks and closes session blocks while it runs; it is killed with SIGKILL at a
//! random moment, 20 times in a row on the same SQLite file. After every kill, every ALE the
//! writer acknowledged is present with the hash it was acknowledged with, the whole chain
//! verifies, and every stored block still gives its root and names its predecessor's root.
//!
//! The writer is this test binary itself, re-run with `GAR_CRASH_CHILD` set (a real process,
//! a real file, a real kill -9).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation,
    reason = "test code: any failure should stop the run loudly"
)]

use enclave::audit::{AuditLog, ClosePolicy, NewEvent};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "GAR_CRASH_CHILD";
const KILLS: usize = 20;

/// The writer: appends forever, printing `ack SEQ HASH` once each ALE is acknowledged.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let log = AuditLog::open(std::path::Path::new(&path)).unwrap();
        let out = std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let closer = log.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(30));
            let _ = closer.close_blocks(
                ClosePolicy {
                    all: true,
                    max_ales: 16,
                },
                [7u8; 32],
            );
        });
        let mut tasks = Vec::new();
        for t in 0..16u32 {
            let log = log.clone();
            let out = out.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let (seq, hash) = log
                        .append(NewEvent {
                            session_id: format!("session-{}", t % 5),
                            kind: "soos.test.crash".into(),
                            body: i.to_be_bytes().to_vec(),
                        })
                        .await
                        .unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ack {seq} {}", hex::encode(hash)).unwrap();
                    o.flush().unwrap();
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

#[test]
fn every_acknowledged_ale_survives_twenty_kill_minus_nine() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("audit.db");
    let mut acked: HashMap<u64, String> = HashMap::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() == Some("ack") {
                    let seq: u64 = parts.next().unwrap().parse().unwrap();
                    got.push((seq, parts.next().unwrap().to_string()));
                }
            }
            got
        });
        // Let it write for a while (it has to start first), then kill -9 at a random moment.
        let start = Instant::now();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run = Duration::from_millis(150 + seed % 400);
        while start.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(20));
            if db.exists() && start.elapsed() > run {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let got = reader.join().unwrap();
        assert!(
            !got.is_empty(),
            "round {round}: the writer acknowledged nothing"
        );
        for (seq, hash) in got {
            acked.insert(seq, hash);
        }

        // Reopen as the restarted kernel would.
        let log = AuditLog::open(&db).unwrap();
        let n = log.verify_chain().unwrap();
        let max_acked = *acked.keys().max().unwrap();
        assert!(
            n >= max_acked,
            "round {round}: {n} ALEs stored, {max_acked} acknowledged"
        );
        let stored: HashMap<u64, String> = log
            .read_range(1, max_acked)
            .unwrap()
            .into_iter()
            .map(|a| (a.seq, hex::encode(a.hash())))
            .collect();
        for (seq, hash) in &acked {
            assert_eq!(
                stored.get(seq),
                Some(hash),
                "round {round}: acknowledged ALE {seq}"
            );
        }
        let blocks = log.verify_blocks().unwrap();
        eprintln!(
            "round {}: {} acknowledged, {n} stored, {blocks} blocks verify",
            round + 1,
            acked.len()
        );
    }
}
