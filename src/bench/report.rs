//! The printed table (every latency and throughput beside the floor and as
//! a ratio to it), and the files: `results.json` and the charts.

use std::fmt::Write as _;

use super::error::BenchError;
use super::floor::FloorResult;
use super::stats::{Summary, fmt_ops, fmt_us};
use super::{Report, Settings, charts};

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub figure: String,
    /// The floor's figure, if it has one.
    pub floor: String,
    /// roomcast's (or a peer's) figure.
    pub value: String,
    /// The ratio to the floor, or another comparison.
    pub ratio: String,
}

fn row(figure: impl Into<String>, floor: impl Into<String>, value: impl Into<String>, ratio: impl Into<String>) -> Row {
    Row { figure: figure.into(), floor: floor.into(), value: value.into(), ratio: ratio.into() }
}

/// A latency against the floor's: `1.5×`.
fn times(value_us: f64, floor_us: Option<f64>) -> String {
    match floor_us {
        Some(f) if f > 0.0 => format!("{:.2}× the floor", value_us / f),
        _ => String::new(),
    }
}

/// A throughput against the floor's: `67%`.
fn share(value: f64, floor: Option<f64>) -> String {
    match floor {
        Some(f) if f > 0.0 => format!("{:.0}% of the floor", 100.0 * value / f),
        _ => String::new(),
    }
}

/// Rows for one load measurement: p50, p99 and ops/s.
fn load_rows(rows: &mut Vec<Row>, name: &str, clients: &str, value: &Summary, floor: Option<&Summary>) {
    let f50 = floor.map(|f| f.p50_us);
    let f99 = floor.map(|f| f.p99_us);
    let fops = floor.map(Summary::ops);
    let show = |v: Option<f64>, fmt: fn(f64) -> String| v.map(fmt).unwrap_or_default();
    rows.push(row(
        format!("{name}, {clients}, p50"),
        show(f50, fmt_us),
        fmt_us(value.p50_us),
        times(value.p50_us, f50),
    ));
    rows.push(row(
        format!("{name}, {clients}, p99"),
        show(f99, fmt_us),
        fmt_us(value.p99_us),
        times(value.p99_us, f99),
    ));
    rows.push(row(
        format!("{name}, {clients}, ops/s"),
        show(fops, fmt_ops),
        fmt_ops(value.ops()),
        share(value.ops(), fops),
    ));
}

fn ms(v: f64) -> String {
    fmt_us(v * 1e3)
}

/// Every row of the report, part by part.
pub fn rows(report: &Report) -> Vec<Row> {
    let mut rows = Vec::new();
    let floor: Option<&FloorResult> = report.floor.as_ref();
    let one = floor.map(|f| &f.one_client);
    if let Some(f) = floor {
        rows.push(row("floor: multicast request → unicast reply, 1 client, p50", fmt_us(f.one_client.p50_us), "", ""));
        rows.push(row(format!("floor: {} clients, ops/s", f.clients), fmt_ops(f.many_clients.ops()), "", ""));
    }
    if let Some(r) = &report.requests {
        let n = format!("{} clients", r.clients);
        let (m1, mn) = (Some(&r.memory.floor.one_client), Some(&r.memory.floor.many_clients));
        load_rows(&mut rows, "read (check)", "1 client", &r.memory.reads_one, m1);
        load_rows(&mut rows, "read (check)", &n, &r.memory.reads_many, mn);
        load_rows(&mut rows, "write (reserve/cancel)", "1 client", &r.memory.writes_one, m1);
        load_rows(&mut rows, "write (reserve/cancel)", &n, &r.memory.writes_many, mn);
        let fs = &r.data_dir_filesystem;
        let (d1, dn) = (Some(&r.durable.floor.one_client), Some(&r.durable.floor.many_clients));
        load_rows(&mut rows, &format!("durable write ({fs})"), "1 client", &r.durable.writes_one, d1);
        load_rows(&mut rows, &format!("durable write ({fs})"), &n, &r.durable.writes_many, dn);
        let single = r.durable.writes_one.ops();
        if single > 0.0 {
            rows.push(row(
                format!("durable write, {n} / 1 client"),
                "",
                format!("{:.1}×", r.durable.writes_many.ops() / single),
                "(group commit would raise it)",
            ));
        }
        load_rows(&mut rows, &format!("durable read ({fs})"), "1 client", &r.durable.reads_one, d1);
    }
    if let Some(k) = &report.keys {
        // A control run compares two groups without keys: its ratios are the machine's noise.
        let (name, groups, with) = match k.control {
            false => ("keyed", "without keys / with", "with keys"),
            true => ("control (no keys in either group)", "first group / second", "second group"),
        };
        for cost in &k.cost {
            let (plain, keyed) = (&cost.plain, &cost.keyed);
            let mut ratios = cost.p50_ratios.clone();
            ratios.sort_by(f64::total_cmp);
            let quartile =
                |q: usize| ratios.get(q * ratios.len().saturating_sub(1) / 4).map_or(f64::NAN, |r| 100.0 * (r - 1.0));
            rows.push(row(
                format!("{name} {}, p50 ({groups})", cost.load),
                fmt_us(plain.p50_us),
                fmt_us(keyed.p50_us),
                format!(
                    "{:+.1}% {with} (median of {} pairs; middle half {:+.0}% to {:+.0}%)",
                    100.0 * (cost.p50_ratio - 1.0),
                    ratios.len(),
                    quartile(1),
                    quartile(3)
                ),
            ));
            rows.push(row(
                format!("{name} {}, ops/s ({groups})", cost.load),
                fmt_ops(plain.ops()),
                fmt_ops(keyed.ops()),
                format!("{:+.1}% {with}", 100.0 * (keyed.ops() / plain.ops() - 1.0)),
            ));
            rows.push(row(
                format!("{name} {}, servers' CPU per request ({groups})", cost.load),
                fmt_us(cost.plain_server_cpu_us),
                fmt_us(cost.keyed_server_cpu_us),
                format!("{:+.1}% {with}", 100.0 * (cost.keyed_server_cpu_us / cost.plain_server_cpu_us - 1.0)),
            ));
        }
    }
    if let Some(c) = &report.cache {
        let f50 = one.map(|f| f.p50_us);
        rows.push(row("cache hit (rooms), p50", "", fmt_us(c.hit.p50_us), times(c.hit.p50_us, f50)));
        rows.push(row(
            "round trip (rooms, empty cache), p50",
            f50.map(fmt_us).unwrap_or_default(),
            fmt_us(c.round_trip.p50_us),
            times(c.round_trip.p50_us, f50),
        ));
        rows.push(row(
            "revalidated check (NotModified), p50",
            f50.map(fmt_us).unwrap_or_default(),
            fmt_us(c.revalidated_check.p50_us),
            times(c.revalidated_check.p50_us, f50),
        ));
    }
    if let Some(f) = &report.failover {
        for t in &f.timings {
            let k = &t.kill_first_write;
            rows.push(row(
                format!("failover {}: kill -9 → first write, p50/p99 ({} trials)", t.label, k.count),
                "",
                format!("{} / {}", fmt_us(k.p50_us), fmt_us(k.p99_us)),
                format!("all named the new leader: p50 {}", fmt_us(t.kill_agreed.p50_us)),
            ));
            let s = &t.stop_first_write;
            rows.push(row(
                format!("failover {}: SIGTERM → first write, p50/p99 ({} trials)", t.label, s.count),
                "",
                format!("{} / {}", fmt_us(s.p50_us), fmt_us(s.p99_us)),
                "",
            ));
            let n = &t.newcomer_write;
            rows.push(row(
                format!("failover {}: higher newcomer start → its first write, p50", t.label),
                "",
                fmt_us(n.p50_us),
                format!("p99 {}", fmt_us(n.p99_us)),
            ));
        }
    }
    if let Some(f) = &report.false_failovers {
        rows.push(row(
            format!("false failovers: {:.0} s at {}, {} busy loops", f.seconds, f.server_args.join(" "), f.busy_loops),
            "",
            format!("{} role changes", f.role_changes),
            format!("{} heartbeat failures", f.heartbeat_failures),
        ));
    }
    if let Some(s) = &report.scale {
        let base = s.sizes.first().and_then(|b| median(&b.agreed_ms));
        for size in &s.sizes {
            let agreed = median(&size.agreed_ms);
            let relative = match (agreed, base) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}× the smallest group", a / b),
                _ => String::new(),
            };
            rows.push(row(
                format!("{} servers: kill → all agree, median of {}", size.servers, size.agreed_ms.len()),
                "",
                agreed.map(ms).unwrap_or_else(|| "-".into()),
                relative,
            ));
            let load = match (size.leader_datagrams_in_per_s, size.leader_datagrams_out_per_s) {
                (Some(i), Some(o)) => format!("{i:.0} in, {o:.0} out"),
                _ => format!("not measured: {}", size.load_not_measured.clone().unwrap_or_default()),
            };
            rows.push(row(format!("{} servers: leader heartbeat datagrams/s", size.servers), "", load, ""));
            let f50 = one.map(|f| f.p50_us);
            rows.push(row(
                format!("{} servers: write, 1 client, p50", size.servers),
                f50.map(fmt_us).unwrap_or_default(),
                fmt_us(size.writes.p50_us),
                times(size.writes.p50_us, f50),
            ));
        }
    }
    if let Some(c) = &report.catch_up {
        let snapshot = c.newcomers.first().and_then(|n| n.snapshot_ms).map(ms).unwrap_or_else(|| "-".into());
        rows.push(row(
            format!("catch-up of {} reservations: start → took over, p50", c.reservations),
            "",
            fmt_us(c.took_over.p50_us),
            format!("snapshot installed after {snapshot}"),
        ));
        let largest = c.rss_kib.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
        rows.push(row(
            format!("resident memory with {} reservations, largest server", c.reservations),
            "",
            format!("{:.1} MiB", largest as f64 / 1024.0),
            format!("an empty server: {:.1} MiB", c.empty_rss_kib as f64 / 1024.0),
        ));
    }
    if let Some(p) = &report.peers {
        rows.extend(super::peers::rows(p, floor));
    }
    rows
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// The table as text, columns aligned.
pub fn table(rows: &[Row]) -> String {
    let width = |f: fn(&Row) -> &str, title: &str| rows.iter().map(|r| f(r).chars().count()).chain([title.len()]).max();
    let w = [
        width(|r| &r.figure, "figure").unwrap_or(0),
        width(|r| &r.floor, "floor").unwrap_or(0),
        width(|r| &r.value, "roomcast").unwrap_or(0),
    ];
    let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n.saturating_sub(s.chars().count())));
    let mut out = String::new();
    let _ = writeln!(out, "| {} | {} | {} | ratio |", pad("figure", w[0]), pad("floor", w[1]), pad("roomcast", w[2]));
    let _ = writeln!(out, "|{}|{}|{}|---|", "-".repeat(w[0] + 2), "-".repeat(w[1] + 2), "-".repeat(w[2] + 2));
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            pad(&r.figure, w[0]),
            pad(&r.floor, w[1]),
            pad(&r.value, w[2]),
            r.ratio
        );
    }
    out
}

/// Prints the table, writes `results.json` and draws the charts under `--out`.
pub fn write_outputs(report: &mut Report, settings: &Settings) -> Result<(), BenchError> {
    let out = &settings.out;
    std::fs::create_dir_all(out).map_err(BenchError::io(format!("creating {}", out.display())))?;
    match charts::draw_all(report, settings) {
        Ok(files) => report.files.extend(files),
        Err(why) => report.warnings.push(format!("charts not drawn: {why}")),
    }
    let json_path = out.join("results.json");
    report.files.push(json_path.clone());
    let json = serde_json::to_string_pretty(&*report)
        .map_err(|e| BenchError::Unexpected(format!("encoding the results as JSON: {e}")))?;
    std::fs::write(&json_path, json).map_err(BenchError::io(format!("writing {}", json_path.display())))?;
    println!("roomcast bench on {}", report.machine.line());
    println!("load average at the start: {}; at the end: {}", report.load_average.0, report.load_average.1);
    println!("{}", table(&rows(report)));
    for failure in &report.failures {
        println!("FAILED: bench {}: {}", failure.part.name(), failure.error);
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for file in &report.files {
        println!("wrote {}", file.display());
    }
    println!("total {:.1} s", report.duration_s);
    Ok(())
}
