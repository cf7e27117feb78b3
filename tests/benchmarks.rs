//! `scripts/bench` rewrites BENCHMARKS.md from the `figure` lines the benchmarks print. The
//! benchmarks stay out of the suite; this checks only that their figures parse: the line format
//! the benchmarks print, and the checked-in document.

#[path = "common/figures.rs"]
#[allow(dead_code)]
mod figures;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

fn bench_script() -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench"))
}

#[test]
fn figure_lines_parse_and_the_rest_of_a_benchmarks_output_is_ignored() {
    let output = [
        "load average at start: 0.42 0.30 0.20".to_owned(),
        figures::figure_line("submissions.req_per_s", 5123.4, "req/s"),
        "SSE fan-out: 1000 subscribers x 100 events: latency p50 3.1 ms".to_owned(),
        figures::figure_line("sse.fan_out_1000_p99_ms", 17.7, "ms"),
        "figure without a value".to_owned(),
    ]
    .join("\n");
    let mut child = bench_script()
        .arg("--parse")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scripts/bench runs (it needs python3: apt-get install python3)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(output.as_bytes())
        .expect("the output is written");
    let parsed = child.wait_with_output().expect("scripts/bench ends");
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let figures: Value = serde_json::from_slice(&parsed.stdout).expect("JSON figures");
    assert_eq!(
        figures,
        json!({
            "submissions.req_per_s": [5123.4, "req/s"],
            "sse.fan_out_1000_p99_ms": [17.7, "ms"],
        })
    );
}

#[test]
fn the_checked_in_benchmarks_document_parses() {
    let checked = bench_script()
        .args([
            "--check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md"),
        ])
        .output()
        .expect("scripts/bench runs (it needs python3: apt-get install python3)");
    assert!(
        checked.status.success(),
        "BENCHMARKS.md does not parse (rewrite it with scripts/bench): {}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
