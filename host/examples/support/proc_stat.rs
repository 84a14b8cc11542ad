//! A process's CPU time from `/proc/<pid>/stat`, for the benchmarks (`loadgen`,
//! `call_loop`, `bench_poll_idle`).

use anyhow::{Context, Result};

/// User plus system CPU time of process `pid` (a number, or `self`) so far, in
/// clock ticks (USER_HZ: 100 per second on Linux), all its threads together.
pub fn cpu_ticks(pid: impl std::fmt::Display) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces: count fields after its `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name.
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .with_context(|| format!("{path} is short"))?
            .parse()
            .with_context(|| format!("parsing {path}"))
    };
    Ok(field(11)? + field(12)?)
}
