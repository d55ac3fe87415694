//! `verify_gpu`: a thin command line over [`gpu_attest::verify_cli`], the shape `verify gpu`
//! takes in the `verify` binary.
//!
//! ```text
//! verify_gpu --report FILE --chain PEM --nonce HEX [--rim FILE]... [--json]
//!            [--now UNIX_SECONDS] [--no-rims-required] [--repeat N]
//! ```
//!
//! `--report` is the attestation report as hex text (as NVML tools and the vectors give it),
//! `--chain` the device certificate chain (PEM, leaf first), `--nonce` the 32-byte expected
//! nonce in hex, each `--rim` a driver or VBIOS RIM (SWID XML). `--now` sets the time
//! certificates are checked at (default: the system clock). `--repeat` verifies N times in
//! one process (for timing). Exit codes: 0 affirming, 1 not affirming, 2 usage or I/O error.

use gpu_attest::{verify_cli, GpuPolicy};
use std::process::ExitCode;

const USAGE: &str = "usage: verify_gpu --report FILE --chain PEM --nonce HEX [--rim FILE]... [--json] [--now UNIX_SECONDS] [--no-rims-required] [--repeat N]";

struct Args {
    report: String,
    chain: String,
    nonce: [u8; 32],
    rims: Vec<Vec<u8>>,
    json: bool,
    now: i64,
    require_rims: bool,
    repeat: u32,
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))
}

fn read_text(path: &str) -> Result<String, String> {
    String::from_utf8(read(path)?).map_err(|_| format!("`{path}` is not utf-8 text"))
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut report, mut chain, mut nonce) = (None, None, None);
    let mut rims = Vec::new();
    let mut json = false;
    let mut now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("system clock before 1970: {e}"))
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))?;
    let mut require_rims = true;
    let mut repeat = 1u32;
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("`{arg}` needs a value\n{USAGE}"));
        match arg.as_str() {
            "--report" => report = Some(read_text(&value()?)?),
            "--chain" => chain = Some(read_text(&value()?)?),
            "--nonce" => {
                let v = value()?;
                let bytes = hex::decode(v.trim()).map_err(|e| format!("--nonce: {e}"))?;
                nonce = Some(
                    <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| "--nonce must be 32 bytes (64 hex digits)".to_owned())?,
                );
            }
            "--rim" => rims.push(read(&value()?)?),
            "--json" => json = true,
            "--now" => now = value()?.parse().map_err(|e| format!("--now: {e}"))?,
            "--no-rims-required" => require_rims = false,
            "--repeat" => repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(Args {
        report: report.ok_or(format!("--report is required\n{USAGE}"))?,
        chain: chain.ok_or(format!("--chain is required\n{USAGE}"))?,
        nonce: nonce.ok_or(format!("--nonce is required\n{USAGE}"))?,
        rims,
        json,
        now,
        require_rims,
        repeat: repeat.max(1),
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("verify_gpu: {msg}");
            return ExitCode::from(2);
        }
    };
    let policy = GpuPolicy {
        require_rims: args.require_rims,
        ..GpuPolicy::default()
    };
    let mut appraisal = verify_cli(
        &args.report,
        &args.chain,
        &args.nonce,
        &args.rims,
        &policy,
        args.now,
    );
    for _ in 1..args.repeat {
        appraisal = verify_cli(
            &args.report,
            &args.chain,
            &args.nonce,
            &args.rims,
            &policy,
            args.now,
        );
    }
    if args.json {
        println!("{}", appraisal.to_json());
    } else {
        for c in &appraisal.claims {
            println!("{:<16} {:?}: {}", c.name, c.status, c.reason);
        }
        println!("gpu: {:?}", appraisal.status);
    }
    if appraisal.affirming() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
