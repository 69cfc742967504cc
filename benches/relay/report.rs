//! The benchmark's tables, printed as Markdown so a run can be pasted into BENCHMARKS.md.

use std::time::Duration;

/// Whether a metric is better low (latency) or high (throughput).
#[derive(Clone, Copy)]
pub enum Better {
    /// Latency-like.
    Lower,
    /// Throughput-like.
    Higher,
}

/// One line of the main table.
pub struct Row {
    /// The workload.
    pub workload: String,
    /// What was measured.
    pub metric: String,
    /// Direct, socat, sidecar.
    pub values: [f64; 3],
    /// How the values print.
    pub unit: &'static str,
    /// Which way is better (shown next to the ratios).
    pub better: Better,
}

/// The p-th percentile (0..=100) of `samples`, in microseconds.
pub fn percentile_us(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    if samples.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank].as_secs_f64() * 1e6
}

fn fmt(value: f64, unit: &str) -> String {
    if value >= 100.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Prints the main table.
pub fn print_table(title: &str, rows: &[Row]) {
    println!("\n### {title}\n");
    println!("| workload | metric | direct | socat | sidecar | sidecar/direct | sidecar/socat |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let [direct, socat, sidecar] = row.values;
        let arrow = match row.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        };
        println!(
            "| {} | {} ({arrow}) | {} | {} | {} | {:.2}x | {:.2}x |",
            row.workload,
            row.metric,
            fmt(direct, row.unit),
            fmt(socat, row.unit),
            fmt(sidecar, row.unit),
            sidecar / direct,
            sidecar / socat,
        );
    }
}
