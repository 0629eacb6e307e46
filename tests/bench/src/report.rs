//! Results: the printed table, `results.json` (+ a timestamped copy), `table.md` (to paste
//! into docs/performance.md) and the latency-vs-throughput SVG.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::load::{LoadResult, Mode};
use crate::system::Usage;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Machine-readable scenario name, e.g. `create-message-spread`.
    pub key: String,
    pub scenario: String,
    /// `baseline`, `embedded`, `mysql api×1`, `mysql api×2`.
    pub system: String,
    /// Items per operation (rows per multi-row INSERT, commands per pipeline); 1 for HTTP.
    pub per_op: u64,
    pub load: LoadResult,
    pub usage: Usage,
    pub ratio: Option<Ratio>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub value: f64,
    pub vs: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub pct: f64,
    pub rate: f64,
    pub load: LoadResult,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sweep {
    pub system: String,
    pub scenario: String,
    /// The closed-loop maximum the rates are fractions of.
    pub max_rps: f64,
    pub points: Vec<SweepPoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    pub system: String,
    /// `index` (201 → searchable), `count` (last 201 → messages_count equal) or `stream`
    /// (create sent → event at a live-stream subscriber).
    pub kind: String,
    /// The sustained create-message rate while sampling.
    pub rate: f64,
    pub samples: u64,
    /// Samples that never became visible within the time limit.
    pub missed: u64,
    pub limit_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Requests the sampler itself sent (creates + polls).
    pub sampler_requests: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub system: String,
    pub process: String,
    pub wanted: usize,
    pub open: usize,
    pub failed: usize,
    pub rss_before_mib: f64,
    pub rss_mib: f64,
    pub peak_mib: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchCheck {
    pub class: String,
    pub query: String,
    pub hits: usize,
    pub must_match: bool,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchInfo {
    pub messages: u64,
    pub sqlite_load_s: f64,
    pub index_load_s: f64,
    pub checks: Vec<SearchCheck>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// None: not measured in this run.
    pub pass: Option<bool>,
    pub shortfall: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub mariadb: String,
    pub redis: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Meta {
    pub tool: String,
    pub date: String,
    pub commit: String,
    pub args: String,
    pub quick: bool,
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub client_threads: usize,
    pub server_log: String,
    pub search_messages: u64,
    pub machine: Machine,
    pub loadavg_start: String,
    /// Share of all cores busy during one second before the run (other work on the machine).
    pub busy_before_pct: f64,
    pub loadavg_end: String,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub meta: Meta,
    pub complete: bool,
    pub error: Option<String>,
    pub rows: Vec<Row>,
    pub sweeps: Vec<Sweep>,
    pub lags: Vec<Lag>,
    pub connections: Vec<Connections>,
    pub search: Option<SearchInfo>,
    pub targets: Vec<TargetCheck>,
    pub warnings: Vec<String>,
}

fn fmt_rate(v: f64) -> String {
    if v >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn fmt_ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn errors_cell(load: &LoadResult) -> String {
    let failures = load.failures();
    if failures == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = load
        .statuses
        .iter()
        .map(|(code, n)| format!("{code}×{n}"))
        .collect();
    if load.errors > 0 {
        parts.push(format!("io×{}", load.errors));
    }
    if load.timeouts > 0 {
        parts.push(format!("timeout×{}", load.timeouts));
    }
    format!("!! {failures} ({})", parts.join(" "))
}

fn load_cell(mode: &Mode) -> String {
    mode.label()
}

fn rss_cell(usage: &Usage) -> String {
    if usage.peak_rss_mib.is_empty() {
        return "-".into();
    }
    usage
        .peak_rss_mib
        .iter()
        .map(|(name, mib)| format!("{} {mib:.0}", short_name(name)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_name(name: &str) -> &str {
    match name {
        "indexer" => "idx",
        "counter" => "cnt",
        "noop-server" => "noop",
        other => other,
    }
}

fn cpu_cell(usage: &Usage) -> String {
    let pct = |v: f64| format!("{:.0}", v.max(0.0));
    let server = if usage.peak_rss_mib.is_empty() {
        "-".to_string()
    } else {
        pct(usage.server_cpu_pct)
    };
    format!(
        "{}/{server}/{}/{}",
        pct(usage.client_cpu_pct),
        pct(usage.db_cpu_pct),
        pct(usage.redis_cpu_pct)
    )
}

fn ratio_cell(ratio: &Option<Ratio>) -> String {
    ratio
        .as_ref()
        .map(|r| format!("{:.2}× {}", r.value, r.vs))
        .unwrap_or_else(|| "-".into())
}

const HEADERS: [&str; 12] = [
    "scenario",
    "system",
    "load",
    "ops/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "errors",
    "ratio",
    "peak RSS MiB",
    "CPU% cli/srv/db/redis",
];

fn row_cells(row: &Row) -> Vec<String> {
    let l = &row.load;
    let mut rate = fmt_rate(l.rps);
    if row.per_op > 1 {
        rate = format!("{rate} ({} items/s)", fmt_rate(l.rps * row.per_op as f64));
    }
    vec![
        row.scenario.clone(),
        row.system.clone(),
        load_cell(&l.mode),
        rate,
        fmt_ms(l.p50_ms),
        fmt_ms(l.p90_ms),
        fmt_ms(l.p99_ms),
        fmt_ms(l.max_ms),
        errors_cell(l),
        ratio_cell(&row.ratio),
        rss_cell(&row.usage),
        cpu_cell(&row.usage),
    ]
}

/// One progress line, printed as each scenario finishes.
pub fn progress_line(row: &Row) -> String {
    let c = row_cells(row);
    let db = &row.usage.db_status;
    let db = if db.is_empty() {
        String::new()
    } else {
        let get = |k: &str| db.get(k).copied().unwrap_or(0);
        format!(
            "  db: {} commits {} rollbacks {} lock waits ({} ms) {} fsyncs",
            get("Com_commit"),
            get("Com_rollback"),
            get("Innodb_row_lock_waits"),
            get("Innodb_row_lock_time"),
            get("Innodb_data_fsyncs")
        )
    };
    format!(
        "  {:<38} {:<12} {:<14} {:>9} ops/s  p50 {:>6}  p99 {:>6}  max {:>6} ms  errors {}  rss {}  cpu {}{db}",
        c[0], c[1], c[2], c[3], c[4], c[6], c[7], c[8], c[10], c[11]
    )
}

impl Report {
    /// The main table's rows: sweep points have a table of their own.
    fn table_rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.key != "sweep")
    }

    pub fn text_table(&self) -> String {
        let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|s| s.to_string()).collect()];
        rows.extend(self.table_rows().map(row_cells));
        let widths: Vec<usize> = (0..HEADERS.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for (n, r) in rows.iter().enumerate() {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let pad = widths[i] - cell.chars().count();
                    if (3..=7).contains(&i) {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if n == 0 {
                let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
                out.push_str(&"-".repeat(total));
                out.push('\n');
            }
        }
        out
    }

    /// Everything but the main table, as text (sweeps, lags, connections, search, targets).
    pub fn text_details(&self) -> String {
        let mut out = String::new();
        for sweep in &self.sweeps {
            let _ = writeln!(
                out,
                "\nOpen-loop sweep, {} ({}), max {} req/s (closed loop c={}):",
                sweep.scenario,
                sweep.system,
                fmt_rate(sweep.max_rps),
                self.meta.concurrency
            );
            for p in &sweep.points {
                let _ = writeln!(
                    out,
                    "  {:>3.0}%  rate {:>7}/s  achieved {:>7}/s  p50 {:>6} ms  p90 {:>6} ms  p99 {:>6} ms  max {:>6} ms  errors {}  cpu {}",
                    p.pct,
                    fmt_rate(p.rate),
                    fmt_rate(p.load.rps),
                    fmt_ms(p.load.p50_ms),
                    fmt_ms(p.load.p90_ms),
                    fmt_ms(p.load.p99_ms),
                    fmt_ms(p.load.max_ms),
                    errors_cell(&p.load),
                    cpu_cell(&p.usage)
                );
            }
        }
        if !self.lags.is_empty() {
            let _ = writeln!(out, "\nLags at a sustained create-message rate:");
            for lag in &self.lags {
                let _ = writeln!(
                    out,
                    "  {:<6} lag, {:<12} at {:>7}/s: {} samples, p50 {} ms, p99 {} ms, max {} ms{}",
                    lag.kind,
                    lag.system,
                    fmt_rate(lag.rate),
                    lag.samples,
                    fmt_ms(lag.p50_ms),
                    fmt_ms(lag.p99_ms),
                    fmt_ms(lag.max_ms),
                    if lag.missed > 0 {
                        format!("  !! {} never seen within {:.0} s", lag.missed, lag.limit_s)
                    } else {
                        String::new()
                    }
                );
            }
        }
        for c in &self.connections {
            let _ = writeln!(
                out,
                "\n{} open keep-alive connections to {} ({}): RSS {:.1} MiB (idle before: {:.1} MiB, peak {:.1} MiB){}",
                c.open,
                c.process,
                c.system,
                c.rss_mib,
                c.rss_before_mib,
                c.peak_mib,
                if c.failed > 0 {
                    format!("  !! {} connections failed", c.failed)
                } else {
                    String::new()
                }
            );
        }
        if let Some(search) = &self.search {
            let _ = writeln!(
                out,
                "\nSearch corpus: one chat of {} messages (SQLite rows {:.1} s, index bulk load {:.1} s); checks:",
                search.messages, search.sqlite_load_s, search.index_load_s
            );
            for c in &search.checks {
                let _ = writeln!(
                    out,
                    "  {} {:<14} {:<28} {} hits{}",
                    if c.ok { "ok" } else { "!!" },
                    c.class,
                    format!("{:?}", c.query),
                    c.hits,
                    if c.must_match { "" } else { " (must be empty)" }
                );
            }
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\nTargets:");
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "  [{}] {}: {} (target {}){}",
                    match t.pass {
                        Some(true) => "met ",
                        Some(false) => "MISS",
                        None => " -- ",
                    },
                    t.name,
                    t.measured,
                    t.target,
                    t.shortfall
                        .as_ref()
                        .map(|s| format!(" — {s}"))
                        .unwrap_or_default()
                );
            }
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\n!! WARNINGS:");
            for w in &self.warnings {
                let _ = writeln!(out, "  !! {w}");
            }
        }
        out
    }

    pub fn markdown(&self) -> String {
        let m = &self.meta;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "chat-bench, {}, commit `{}`, {} run (`{}`); {} cores ({}), {} RAM, Linux {}, {}, Redis {}. \
             Closed loop c={} unless noted, warm-up {} s, measured {} s per scenario; client and servers share the cores. \
             Servers logged at `RUST_LOG={}`. Other load on the machine just before the run: {:.0}% of the cores.\n",
            m.date,
            m.commit,
            if m.quick { "quick" } else { "full" },
            m.args,
            m.machine.nproc,
            m.machine.cpu_model,
            m.machine.mem_total,
            m.machine.kernel,
            m.machine.mariadb,
            m.machine.redis,
            m.concurrency,
            m.warmup_s,
            m.duration_s,
            m.server_log,
            m.busy_before_pct,
        );
        if !self.complete {
            let _ = writeln!(
                out,
                "**!! Incomplete run: {}**\n",
                self.error.as_deref().unwrap_or("stopped early")
            );
        }
        let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            HEADERS
                .iter()
                .enumerate()
                .map(|(i, _)| if (3..=7).contains(&i) { "---:" } else { "---" })
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in self.table_rows() {
            let cells: Vec<String> = row_cells(row)
                .into_iter()
                .map(|c| {
                    if c.starts_with("!!") {
                        format!("**{c}**")
                    } else {
                        c
                    }
                })
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let _ = writeln!(
            out,
            "\nops/s counts successful operations only. CPU is percent of one core over the \
             scenario (200 = both cores): the load generator, the chat-system processes, \
             MariaDB, Redis.\n"
        );
        for sweep in &self.sweeps {
            let _ = writeln!(
                out,
                "Open-loop sweep, {}, {} (rates are fractions of the closed-loop maximum {} req/s; \
                 latency from the intended send time):\n",
                sweep.scenario,
                sweep.system,
                fmt_rate(sweep.max_rps)
            );
            let _ = writeln!(
                out,
                "| % of max | rate/s | achieved/s | p50 ms | p90 ms | p99 ms | max ms | errors | CPU% cli/srv/db/redis |\n|---:|---:|---:|---:|---:|---:|---:|---|---|"
            );
            for p in &sweep.points {
                let _ = writeln!(
                    out,
                    "| {:.0}% | {} | {} | {} | {} | {} | {} | {} | {} |",
                    p.pct,
                    fmt_rate(p.rate),
                    fmt_rate(p.load.rps),
                    fmt_ms(p.load.p50_ms),
                    fmt_ms(p.load.p90_ms),
                    fmt_ms(p.load.p99_ms),
                    fmt_ms(p.load.max_ms),
                    errors_cell(&p.load),
                    cpu_cell(&p.usage)
                );
            }
            out.push('\n');
        }
        if !self.lags.is_empty() {
            let _ = writeln!(
                out,
                "| lag | system | sustained rate/s | samples | p50 ms | p99 ms | max ms | never seen |\n|---|---|---:|---:|---:|---:|---:|---:|"
            );
            for lag in &self.lags {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    lag.kind,
                    lag.system,
                    fmt_rate(lag.rate),
                    lag.samples,
                    fmt_ms(lag.p50_ms),
                    fmt_ms(lag.p99_ms),
                    fmt_ms(lag.max_ms),
                    if lag.missed > 0 {
                        format!("**!! {}**", lag.missed)
                    } else {
                        "0".into()
                    }
                );
            }
            out.push('\n');
        }
        for c in &self.connections {
            let _ = writeln!(
                out,
                "{} idle keep-alive connections to `{}` ({}): RSS {:.1} MiB (idle before {:.1} MiB, peak {:.1} MiB){}.\n",
                c.open,
                c.process,
                c.system,
                c.rss_mib,
                c.rss_before_mib,
                c.peak_mib,
                if c.failed > 0 {
                    format!(", **!! {} failed**", c.failed)
                } else {
                    String::new()
                }
            );
        }
        if let Some(search) = &self.search {
            let _ = writeln!(
                out,
                "Search corpus: one chat of {} messages, preloaded directly (SQLite rows {:.1} s, \
                 index bulk load {:.1} s). Query checks: {}.\n",
                search.messages,
                search.sqlite_load_s,
                search.index_load_s,
                search
                    .checks
                    .iter()
                    .map(|c| format!(
                        "`{}` {}{}",
                        c.query,
                        c.hits,
                        if c.ok { "" } else { " **!!**" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                out,
                "| target | goal | measured | met? |\n|---|---|---|---|"
            );
            for t in &self.targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    t.name,
                    t.target,
                    t.measured,
                    match (t.pass, &t.shortfall) {
                        (Some(true), _) => "yes".to_string(),
                        (Some(false), Some(s)) => format!("**no**: {s}"),
                        (Some(false), None) => "**no**".to_string(),
                        (None, _) => "not measured".to_string(),
                    }
                );
            }
            out.push('\n');
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "**Warnings:**\n");
            for w in &self.warnings {
                let _ = writeln!(out, "- **!!** {w}");
            }
            out.push('\n');
        }
        out
    }

    /// Replaces what lies between `<!-- chat-bench:begin -->` and `<!-- chat-bench:end -->` in
    /// `doc` with this run's markdown.
    pub fn update_doc(&self, doc: &Path) -> anyhow::Result<()> {
        const BEGIN: &str = "<!-- chat-bench:begin -->";
        const END: &str = "<!-- chat-bench:end -->";
        let text = std::fs::read_to_string(doc)?;
        let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) else {
            anyhow::bail!("{}: no {BEGIN} … {END} markers", doc.display());
        };
        if e < b {
            anyhow::bail!("{}: {END} before {BEGIN}", doc.display());
        }
        let updated = format!("{}{BEGIN}\n{}{}", &text[..b], self.markdown(), &text[e..]);
        std::fs::write(doc, updated)?;
        Ok(())
    }

    /// Writes results.json, a timestamped copy, table.md and the SVG plot.
    pub fn write(&self, out_dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(out_dir)?;
        let json = serde_json::to_string_pretty(self)?;
        let stamp = self.meta.date.replace([':', '-'], "").replace('T', "-");
        let stamp = stamp
            .split('.')
            .next()
            .unwrap_or(&stamp)
            .trim_end_matches('Z');
        let files = vec![
            out_dir.join("results.json"),
            out_dir.join(format!("results-{stamp}.json")),
            out_dir.join("table.md"),
            out_dir.join("latency-throughput.svg"),
        ];
        std::fs::write(&files[0], &json)?;
        std::fs::write(&files[1], &json)?;
        std::fs::write(&files[2], self.markdown())?;
        std::fs::write(&files[3], crate::plot::svg(self))?;
        Ok(files)
    }
}
