//! The run: baselines, then each system's scenarios, then the search corpus; ratios and
//! targets at the end; everything cleaned up also on error and Ctrl-C.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::Connection;

use crate::Opts;
use crate::baselines::{self, IncrWorker, InsertWorker};
use crate::load::{self, HttpWorker, Mode, Plan, Requests};
use crate::procs::{self, Server, free_port, loopback};
use crate::report::{Machine, Meta, Ratio, Report, Row, Sweep, SweepPoint, TargetCheck};
use crate::scenarios::{self, Fixture, LagPlan, http_row};
use crate::search::{self, SearchPlan};
use crate::system::{Cleanup, Ctx, Meter, System};

pub const SCENARIOS: &[&str] = &[
    "noop",
    "sql-insert",
    "redis-incr",
    "create-app",
    "create-chat",
    "create-message",
    "get-message",
    "list-messages",
    "sweep",
    "lag",
    "stream",
    "connections",
    "search",
];
const SYSTEMS: &[&str] = &["embedded", "mysql1", "mysql2"];

const EMBEDDED: &str = "embedded";
const MYSQL1: &str = "mysql api×1";
const MYSQL2: &str = "mysql api×2";

struct Run {
    opts: Opts,
    plan: Plan,
    settle: Duration,
    lag_duration: Duration,
    search_messages: u64,
}

impl Run {
    fn wants(&self, scenario: &str) -> bool {
        self.opts.only.is_empty() || self.opts.only.iter().any(|s| s == scenario)
    }

    fn wants_system(&self, system: &str) -> bool {
        self.opts.systems.is_empty() || self.opts.systems.iter().any(|s| s == system)
    }

    fn closed(&self) -> Mode {
        Mode::Closed {
            concurrency: self.opts.concurrency,
        }
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command line as it matters for the numbers: without `--run-by` and `--update-doc`.
fn shown_args() -> String {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--run-by" || arg == "--update-doc" {
            args.next();
        } else if !(arg.starts_with("--run-by=") || arg.starts_with("--update-doc=")) {
            out.push(arg);
        }
    }
    if out.is_empty() {
        "no flags".into()
    } else {
        out.join(" ")
    }
}

/// Busy share of all cores over `window`, from /proc/stat (idle + iowait count as idle).
async fn busy_pct(window: Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let stat = read("/proc/stat");
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((v.iter().take(8).sum(), idle))
    }
    let Some((t0, i0)) = sample() else { return 0.0 };
    tokio::time::sleep(window).await;
    let Some((t1, i1)) = sample() else { return 0.0 };
    let total = t1.saturating_sub(t0).max(1) as f64;
    100.0 * (1.0 - i1.saturating_sub(i0) as f64 / total)
}

fn git(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn machine(ctx: &Ctx, need_db: bool) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_total = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let mut m = Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu_model,
        mem_total,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        mariadb: "not used".into(),
        redis: "not used".into(),
    };
    if need_db {
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&ctx.mysql_url).await
            && let Ok(v) = sqlx::query_scalar::<_, String>("SELECT VERSION()")
                .fetch_one(&mut conn)
                .await
        {
            m.mariadb = if v.contains("MariaDB") {
                format!("MariaDB {}", v.split('-').next().unwrap_or(&v))
            } else {
                format!("MySQL {v}")
            };
        }
        if let Ok(client) = redis::Client::open(ctx.redis_url.as_str())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && let Ok(info) = redis::cmd("INFO")
                .arg("server")
                .query_async::<String>(&mut conn)
                .await
        {
            m.redis = info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or("?")
                .trim()
                .to_owned();
        }
    }
    m
}

pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let started = Instant::now();
    for s in &opts.only {
        if !SCENARIOS.contains(&s.as_str()) {
            bail!(
                "--only: unknown scenario {s:?}; known: {}",
                SCENARIOS.join(", ")
            );
        }
    }
    for s in &opts.systems {
        if !SYSTEMS.contains(&s.as_str()) {
            bail!(
                "--systems: unknown system {s:?}; known: {}",
                SYSTEMS.join(", ")
            );
        }
    }
    let quick = opts.quick;
    let secs = |v: Option<f64>, full: f64, q: f64| {
        Duration::from_secs_f64(v.unwrap_or(if quick { q } else { full }))
    };
    let run = Run {
        plan: Plan {
            warmup: secs(opts.warmup, 2.0, 0.5),
            duration: secs(opts.duration, 10.0, 2.0),
            timeout: Duration::from_secs(10),
        },
        settle: if quick {
            Duration::from_secs(4)
        } else {
            Duration::from_secs(15)
        },
        lag_duration: secs(opts.lag_duration, 20.0, 6.0),
        search_messages: opts
            .search_messages
            .unwrap_or(if quick { 100_000 } else { 1_000_000 }),
        opts,
    };
    let out_dir = run.opts.out.clone();
    let log_dir = out_dir.join("logs");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("create {}", log_dir.display()))?;
    let bench_exe = std::env::current_exe()?;
    let chat_system = match &run.opts.bin {
        Some(bin) => bin.clone(),
        None => bench_exe.with_file_name("chat-system"),
    };
    if !chat_system.exists() {
        bail!(
            "{} not found: build it first (`cargo build --release -p chat-system`) or pass --bin",
            chat_system.display()
        );
    }
    let work_dir: PathBuf = run.opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&work_dir)?;
    procs::raise_nofile_limit();

    let uses_db = ["sql-insert", "redis-incr"].iter().any(|s| run.wants(s))
        || run.wants_system("mysql1")
        || run.wants_system("mysql2");
    let ctx = Ctx {
        chat_system,
        bench_exe,
        log_dir,
        work_dir,
        mysql_url: run.opts.mysql.trim_end_matches('/').to_owned(),
        redis_url: run.opts.redis.clone(),
        server_log: run.opts.server_log.clone(),
        elasticsearch_url: std::env::var("ELASTICSEARCH_URL")
            .ok()
            .filter(|v| !v.is_empty()),
        cleanup: Cleanup::default(),
        db_pids: procs::pids_named(&["mariadbd", "mysqld"]),
        redis_pids: procs::pids_named(&["redis-server"]),
    };
    if uses_db {
        system_check(&ctx).await?;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let mut report = Report {
        meta: Meta {
            tool: format!("chat-bench {}", env!("CARGO_PKG_VERSION")),
            date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            commit: if dirty {
                format!("{commit} (with uncommitted changes)")
            } else {
                commit
            },
            args: shown_args(),
            quick,
            concurrency: run.opts.concurrency,
            warmup_s: run.plan.warmup.as_secs_f64(),
            duration_s: run.plan.duration.as_secs_f64(),
            client_threads: run.opts.client_threads,
            server_log: run.opts.server_log.clone(),
            search_messages: run.search_messages,
            machine: machine(&ctx, uses_db).await,
            loadavg_start: loadavg(),
            ..Meta::default()
        },
        ..Report::default()
    };
    report.meta.busy_before_pct = busy_pct(Duration::from_secs(1)).await;
    if report.meta.busy_before_pct > 20.0 {
        report.warnings.push(format!(
            "the machine was busy when the run started ({:.0}% of all cores during 1 s; load average {}): \
             numbers may be disturbed",
            report.meta.busy_before_pct, report.meta.loadavg_start
        ));
    }
    eprintln!(
        "bench: {} run, {} s warm-up + {} s per scenario, c={}, {} client threads; logs in {}",
        if quick { "quick" } else { "full" },
        run.plan.warmup.as_secs_f64(),
        run.plan.duration.as_secs_f64(),
        run.opts.concurrency,
        run.opts.client_threads,
        ctx.log_dir.display()
    );

    let outcome = tokio::select! {
        r = run_all(&ctx, &run, &mut report) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (Ctrl-C)")),
    };
    // The run's processes are gone (kill_on_drop) once run_all is dropped; now their data.
    ctx.cleanup.run(&ctx.mysql_url, &ctx.redis_url).await;

    report.complete = outcome.is_ok();
    report.error = outcome.as_ref().err().map(|e| format!("{e:#}"));
    finish(&mut report, &run);
    report.meta.loadavg_end = loadavg();
    report.meta.total_s = started.elapsed().as_secs_f64();
    println!("\n{}", report.text_table());
    println!("{}", report.text_details());
    let files = report.write(&out_dir)?;
    if let Some(doc) = &run.opts.update_doc {
        if report.complete {
            report.update_doc(doc)?;
            println!("bench: updated the results in {}", doc.display());
        } else {
            println!(
                "bench: !! not updating {}: the run is incomplete",
                doc.display()
            );
        }
    }
    println!(
        "bench: {} in {:.0} s; wrote {}",
        if report.complete {
            "done"
        } else {
            "INCOMPLETE"
        },
        report.meta.total_s,
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    outcome
}

/// MySQL and Redis reachable; leftovers of killed runs removed.
async fn system_check(ctx: &Ctx) -> anyhow::Result<()> {
    system_cleanup_stale(ctx).await.context(
        "MariaDB/MySQL and Redis must be running (`make bench` starts them: scripts/ensure-services.sh)",
    )
}

async fn system_cleanup_stale(ctx: &Ctx) -> anyhow::Result<()> {
    crate::system::remove_stale(&ctx.mysql_url, &ctx.redis_url).await
}

async fn run_all(ctx: &Ctx, run: &Run, report: &mut Report) -> anyhow::Result<()> {
    baselines_suite(ctx, run, report).await?;

    let system_scenarios = [
        "create-app",
        "create-chat",
        "create-message",
        "get-message",
        "list-messages",
        "sweep",
        "lag",
        "stream",
    ];
    let wants_any = |list: &[&str]| list.iter().any(|s| run.wants(s));
    if run.wants_system("embedded") && wants_any(&system_scenarios) {
        eprintln!("bench: embedded (serve)");
        let mut system = System::embedded(ctx, EMBEDDED, "serve", None).await?;
        let mut fixture = scenarios::fixture(&system.api, count_chats(run)).await?;
        system_suite(ctx, run, report, &mut system, &mut fixture, true).await?;
        system.stop().await?;
    }
    let mysql_scenarios = [&system_scenarios[..], &["connections"]].concat();
    if (run.wants_system("mysql1") && wants_any(&mysql_scenarios))
        || (run.wants_system("mysql2")
            && (wants_any(&system_scenarios[..5]) || run.wants("stream")))
    {
        eprintln!("bench: MySQL + Redis (migrate, indexer, counter, api ×1)");
        let mut system = System::mysql(ctx, MYSQL1).await?;
        let mut fixture = scenarios::fixture(&system.api, count_chats(run)).await?;
        if run.wants_system("mysql1") {
            system_suite(ctx, run, report, &mut system, &mut fixture, true).await?;
            if run.wants("connections") {
                system.settle(ctx, run.settle).await;
                let c = scenarios::connections(&system, &fixture, run.opts.connections).await?;
                report.connections.push(c);
                system.check_alive()?;
            }
        }
        if run.wants_system("mysql2") && (wants_any(&system_scenarios[..5]) || run.wants("stream"))
        {
            eprintln!("bench: MySQL + Redis, api ×2");
            system.start_api(ctx, "api2", "api").await?;
            system.label = MYSQL2.into();
            system_suite(ctx, run, report, &mut system, &mut fixture, false).await?;
        }
        system.stop().await?;
    }
    if run.wants("search") && run.wants_system("embedded") {
        eprintln!(
            "bench: search in one chat of {} messages (embedded)",
            run.search_messages
        );
        let plan = SearchPlan {
            messages: run.search_messages,
            class_plan: Plan {
                warmup: run.plan.warmup.min(Duration::from_secs(1)),
                duration: run.plan.duration.mul_f64(0.5).max(Duration::from_secs(2)),
                timeout: run.plan.timeout,
            },
            mixed_plan: run.plan,
            concurrency: run.opts.concurrency,
        };
        let (rows, info) = search::run(ctx, &plan).await?;
        report.rows.extend(rows);
        report.search = Some(info);
    }
    Ok(())
}

fn count_chats(run: &Run) -> usize {
    (run.lag_duration.as_secs_f64() / count_period(run).as_secs_f64()).ceil() as usize + 5
}

fn count_period(run: &Run) -> Duration {
    if run.opts.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(1)
    }
}

async fn baselines_suite(ctx: &Ctx, run: &Run, report: &mut Report) -> anyhow::Result<()> {
    let c = run.opts.concurrency;
    if run.wants("noop") {
        eprintln!("bench: baselines");
        let port = free_port();
        let server = Server::start(
            "noop-server",
            &ctx.bench_exe,
            &["noop-server", "--port", &port.to_string()],
            &[],
            loopback(port),
            &ctx.log_dir,
        )
        .await?;
        let body = format!(r#"{{"body":"{}"}}"#, baselines::MESSAGE_BODY);
        let requests = Requests::Fixed(crate::http::request("POST", "/noop", Some(&body)));
        let workers = HttpWorker::many(&[loopback(port)], c, std::sync::Arc::new(requests));
        let meter = Meter::start(ctx, &[(server.name.clone(), server.pid)]);
        let load = load::run(workers, run.closed(), run.plan).await;
        push(
            report,
            "noop",
            "axum no-op POST",
            1,
            load,
            meter.finish(ctx),
        );
        server.stop(Duration::from_secs(5)).await?;
    }
    if run.wants("sql-insert") {
        let db = format!("chat_bench_{}_baseline", std::process::id());
        ctx.cleanup.database(&db);
        let url = baselines::prepare_insert_db(&ctx.mysql_url, &db).await?;
        for (key, scenario, rows, plan) in [
            ("sql-insert", "sqlx single-row INSERT", 1, run.plan),
            (
                "sql-insert-100",
                "sqlx 100-row INSERT",
                100,
                short(run.plan),
            ),
        ] {
            let workers = InsertWorker::many(&url, c, rows).await?;
            let meter = Meter::start(ctx, &[]);
            let load = load::run(workers, run.closed(), plan).await;
            push(report, key, scenario, rows as u64, load, meter.finish(ctx));
        }
    }
    if run.wants("redis-incr") {
        let prefix = format!("chat_bench_{}_baseline:", std::process::id());
        ctx.cleanup.prefix(&prefix);
        for (key, scenario, pipeline, plan) in [
            ("redis-incr", "Redis INCR, unpipelined", 1, run.plan),
            (
                "redis-incr-pipelined",
                "Redis INCR, 100 per pipeline",
                100,
                short(run.plan),
            ),
        ] {
            let workers = IncrWorker::many(&ctx.redis_url, &prefix, c, pipeline).await?;
            let meter = Meter::start(ctx, &[]);
            let load = load::run(workers, run.closed(), plan).await;
            push(
                report,
                key,
                scenario,
                pipeline as u64,
                load,
                meter.finish(ctx),
            );
        }
    }
    Ok(())
}

/// Half the measurement for secondary baselines.
fn short(plan: Plan) -> Plan {
    Plan {
        duration: plan.duration.mul_f64(0.5).max(Duration::from_secs(1)),
        ..plan
    }
}

fn push(
    report: &mut Report,
    key: &str,
    scenario: &str,
    per_op: u64,
    load: load::LoadResult,
    usage: crate::system::Usage,
) {
    let row = Row {
        key: key.into(),
        scenario: scenario.into(),
        system: "baseline".into(),
        per_op,
        load,
        usage,
        ratio: None,
        note: None,
    };
    eprintln!("{}", crate::report::progress_line(&row));
    report.rows.push(row);
}

fn find<'a>(report: &'a Report, key: &str, system: &str) -> Option<&'a Row> {
    report
        .rows
        .iter()
        .find(|r| r.key == key && r.system == system)
}

async fn system_suite(
    ctx: &Ctx,
    run: &Run,
    report: &mut Report,
    system: &mut System,
    fixture: &mut Fixture,
    full: bool,
) -> anyhow::Result<()> {
    let plan = run.plan;
    let closed = run.closed();
    let settle = run.settle;
    if run.wants("create-app") {
        let row = http_row(
            ctx,
            system,
            "create-app",
            "create application",
            scenarios::create_app_requests(),
            closed,
            plan,
            settle,
        )
        .await?;
        report.rows.push(row);
    }
    if run.wants("create-chat") {
        let row = http_row(
            ctx,
            system,
            "create-chat",
            "create chat (200 applications)",
            scenarios::create_chat_requests(fixture),
            closed,
            plan,
            settle,
        )
        .await?;
        report.rows.push(row);
    }
    if run.wants("create-message") {
        let requests = scenarios::create_message_requests(fixture, &[fixture.hot]);
        let row = http_row(
            ctx,
            system,
            "create-message-hot",
            "create message (one hot chat)",
            requests,
            closed,
            plan,
            settle,
        )
        .await?;
        fixture.hot_messages += row.load.ok;
        report.rows.push(row);
    }
    let wants_max = full && (run.wants("sweep") || run.wants("lag"));
    if run.wants("create-message")
        || (wants_max && find(report, "create-message-spread", &system.label).is_none())
    {
        let requests = scenarios::create_message_requests(fixture, &fixture.spread);
        let row = http_row(
            ctx,
            system,
            "create-message-spread",
            "create message (1,000 chats)",
            requests,
            closed,
            plan,
            settle,
        )
        .await?;
        report.rows.push(row);
    }
    if run.wants("get-message") {
        let row = http_row(
            ctx,
            system,
            "get-message",
            "get message",
            scenarios::get_message_requests(fixture),
            closed,
            plan,
            settle,
        )
        .await?;
        report.rows.push(row);
    }
    if run.wants("list-messages") {
        let row = http_row(
            ctx,
            system,
            "list-messages",
            "list messages (page of 50)",
            scenarios::list_messages_requests(fixture),
            closed,
            plan,
            settle,
        )
        .await?;
        report.rows.push(row);
    }
    // Streams: embedded, and across two api replicas (create on one, subscribe on the other).
    if run.wants("stream") && (system.label == EMBEDDED || system.api.len() > 1) {
        let max = find(report, "create-message-spread", &system.label).map_or(0.0, |r| r.load.rps);
        let rate = run
            .opts
            .stream_rate
            .or(run.opts.lag_rate)
            .unwrap_or(if max > 0.0 { max * 0.5 } else { 200.0 });
        let plan = crate::streams::StreamPlan {
            rate,
            subscribers: run.opts.stream_subscribers,
            connections: run.opts.concurrency.min(16),
            warmup: plan.warmup.max(Duration::from_millis(500)),
            duration: run.lag_duration,
        };
        let lag = crate::streams::stream_phase(ctx, system, fixture, &plan).await?;
        report.lags.push(lag);
    }
    if !full {
        return Ok(());
    }
    let max = find(report, "create-message-spread", &system.label).map_or(0.0, |r| r.load.rps);
    if run.wants("sweep") {
        let rates: Vec<(f64, f64)> = if run.opts.sweep_rates.is_empty() {
            run.opts
                .sweep
                .iter()
                .map(|p| (*p, max * p / 100.0))
                .collect()
        } else {
            run.opts
                .sweep_rates
                .iter()
                .map(|r| (100.0 * r / max.max(1.0), *r))
                .collect()
        };
        let mut sweep = Sweep {
            system: system.label.clone(),
            scenario: "create message (1,000 chats)".into(),
            max_rps: max,
            points: Vec::new(),
        };
        let sweep_plan = Plan {
            warmup: plan.warmup.max(Duration::from_millis(500)),
            ..plan
        };
        for (pct, rate) in rates {
            if rate < 1.0 {
                continue;
            }
            let mode = Mode::Open {
                rate,
                connections: run.opts.concurrency,
            };
            let requests = scenarios::create_message_requests(fixture, &fixture.spread);
            let mut row = http_row(
                ctx,
                system,
                "sweep",
                &format!("create message (1,000 chats) {pct:.0}% of max"),
                requests,
                mode,
                sweep_plan,
                settle,
            )
            .await?;
            row.note = Some(format!(
                "open-loop sweep point, {pct:.0}% of the closed-loop maximum"
            ));
            sweep.points.push(SweepPoint {
                pct,
                rate,
                load: row.load.clone(),
                usage: row.usage.clone(),
            });
            report.rows.push(row);
        }
        report.sweeps.push(sweep);
    }
    if run.wants("lag") {
        let rate = run.opts.lag_rate.unwrap_or(max * 0.5).max(1.0);
        let lag_plan = LagPlan {
            rate,
            connections: run.opts.concurrency,
            warmup: plan.warmup.max(Duration::from_millis(500)),
            duration: run.lag_duration,
            index_period: Duration::from_millis(50),
            index_poll: Duration::from_millis(10),
            count_period: count_period(run),
            count_poll: Duration::from_millis(20),
            count_messages: 20,
        };
        let (row, index, count) = scenarios::lag_phase(ctx, system, fixture, &lag_plan).await?;
        report.rows.push(row);
        report.lags.push(index);
        report.lags.push(count);
    }
    Ok(())
}

/// Ratios against the same run's baselines, the issue's targets, and loud warnings.
fn finish(report: &mut Report, run: &Run) {
    let noop = find(report, "noop", "baseline").map(|r| r.load.rps);
    let insert = find(report, "sql-insert", "baseline").map(|r| r.load.rps);
    for row in &mut report.rows {
        let relevant = row.key.starts_with("create-")
            || row.key == "get-message"
            || row.key == "list-messages";
        if row.system == "baseline" || !relevant {
            continue;
        }
        let mysql_create = row.system.starts_with("mysql") && row.key.starts_with("create-message");
        row.ratio = match (mysql_create, insert, noop) {
            (true, Some(base), _) if base > 0.0 => Some(Ratio {
                value: row.load.rps / base,
                vs: "INSERT".into(),
            }),
            (_, _, Some(base)) if base > 0.0 && !mysql_create => Some(Ratio {
                value: row.load.rps / base,
                vs: "no-op".into(),
            }),
            _ => None,
        };
    }

    let mut targets = Vec::new();
    let ratio_target = |name: &str,
                        row: Option<&Row>,
                        base: Option<f64>,
                        base_name: &str,
                        goal: f64| {
        let (pass, measured, shortfall) = match (row, base) {
            (Some(row), Some(base)) if base > 0.0 => {
                let r = row.load.rps / base;
                let shortfall = (r < goal).then(|| {
                    format!(
                        "{:.0}% short: {:.0} req/s vs the {:.0} req/s that {goal}× {base_name} ({:.0}/s) needs",
                        100.0 * (1.0 - r / goal),
                        row.load.rps,
                        goal * base,
                        base
                    )
                });
                (
                    Some(r >= goal),
                    format!("{r:.2}× ({:.0} vs {:.0} req/s)", row.load.rps, base),
                    shortfall,
                )
            }
            _ => (None, "not measured".into(), None),
        };
        TargetCheck {
            name: name.into(),
            target: format!("≥ {goal}× {base_name}"),
            measured,
            pass,
            shortfall,
        }
    };
    for system in [MYSQL1, MYSQL2] {
        targets.push(ratio_target(
            &format!(
                "create message (1,000 chats), {system}, c={}",
                run.opts.concurrency
            ),
            find(report, "create-message-spread", system),
            insert,
            "single-row INSERT",
            1.5,
        ));
    }
    for sweep in &report.sweeps {
        let point = sweep
            .points
            .iter()
            .min_by(|a, b| (a.pct - 50.0).abs().total_cmp(&(b.pct - 50.0).abs()));
        let (pass, measured, shortfall) = match point {
            Some(p) => (
                Some(p.load.p99_ms <= 10.0 && p.load.failures() == 0),
                format!(
                    "p99 {:.2} ms at {:.0}% of max ({:.0}/s)",
                    p.load.p99_ms, p.pct, p.load.rps
                ),
                (p.load.p99_ms > 10.0).then(|| {
                    format!(
                        "{:.0}% over ({:.1} ms)",
                        100.0 * (p.load.p99_ms / 10.0 - 1.0),
                        p.load.p99_ms
                    )
                }),
            ),
            None => (None, "not measured".into(), None),
        };
        targets.push(TargetCheck {
            name: format!(
                "create message p99 at half the maximum rate, {}",
                sweep.system
            ),
            target: "≤ 10 ms".into(),
            measured,
            pass,
            shortfall,
        });
    }
    targets.push(ratio_target(
        "create message (1,000 chats), embedded",
        find(report, "create-message-spread", EMBEDDED),
        noop,
        "axum no-op",
        0.25,
    ));
    let search_rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.key.starts_with("search-") && r.key != "search-mixed")
        .collect();
    let worst = search_rows
        .iter()
        .max_by(|a, b| a.load.p99_ms.total_cmp(&b.load.p99_ms));
    targets.push(match worst {
        Some(w) => TargetCheck {
            name: format!(
                "search p99, one chat of {} messages{}, c=1, worst query class",
                search::short_count(run.search_messages),
                if run.search_messages < 1_000_000 {
                    " (not the 1M of the target)"
                } else {
                    ""
                }
            ),
            target: "≤ 20 ms".into(),
            measured: format!("{:.2} ms ({})", w.load.p99_ms, w.scenario),
            pass: Some(w.load.p99_ms <= 20.0),
            shortfall: (w.load.p99_ms > 20.0)
                .then(|| format!("{:.0}% over", 100.0 * (w.load.p99_ms / 20.0 - 1.0))),
        },
        None => TargetCheck {
            name: "search p99, one chat of 1M messages".into(),
            target: "≤ 20 ms".into(),
            measured: "not measured".into(),
            pass: None,
            shortfall: None,
        },
    });
    for lag in &report.lags {
        let (goal, value, what) = match lag.kind.as_str() {
            "index" => (1000.0, lag.p99_ms, "p99"),
            // Created → delivered to a live-stream subscriber.
            "stream" => (50.0, lag.p99_ms, "p99"),
            _ => (5000.0, lag.max_ms, "max"),
        };
        let ok = value <= goal && lag.missed == 0;
        targets.push(TargetCheck {
            name: format!("{} lag at {:.0} req/s, {}", lag.kind, lag.rate, lag.system),
            target: if goal < 1000.0 {
                format!("{what} ≤ {goal:.0} ms")
            } else {
                format!("{what} ≤ {:.0} s", goal / 1000.0)
            },
            measured: format!(
                "{what} {:.0} ms (p50 {:.0} ms, {} samples{})",
                value,
                lag.p50_ms,
                lag.samples,
                if lag.missed > 0 {
                    format!(", {} never seen", lag.missed)
                } else {
                    String::new()
                }
            ),
            pass: Some(ok),
            shortfall: (!ok).then(|| {
                if lag.missed > 0 {
                    format!(
                        "{} samples not visible within {:.0} s",
                        lag.missed, lag.limit_s
                    )
                } else {
                    format!("{:.0}% over", 100.0 * (value / goal - 1.0))
                }
            }),
        });
    }
    for c in &report.connections {
        let ok = c.rss_mib <= 64.0 && c.failed == 0;
        targets.push(TargetCheck {
            name: format!(
                "{} RSS with {} idle keep-alive connections, {}",
                c.process, c.wanted, c.system
            ),
            target: "≤ 64 MiB".into(),
            measured: format!(
                "{:.1} MiB ({} open, {} failed)",
                c.rss_mib, c.open, c.failed
            ),
            pass: Some(ok),
            shortfall: (!ok).then(|| {
                if c.failed > 0 {
                    format!("{} connections failed", c.failed)
                } else {
                    format!(
                        "{:.1} MiB ({:.0}%) over",
                        c.rss_mib - 64.0,
                        100.0 * (c.rss_mib / 64.0 - 1.0)
                    )
                }
            }),
        });
    }
    report.targets = targets;

    let failing: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.load.failures() > 0)
        .map(|r| {
            format!(
                "{} / {}: {} failed requests ({}){}",
                r.scenario,
                r.system,
                r.load.failures(),
                crate::report::errors_cell(&r.load),
                r.load
                    .first_error
                    .as_ref()
                    .map(|e| format!("; first: {e}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    report.warnings.extend(failing);
    if let Some(search) = &report.search {
        for c in search.checks.iter().filter(|c| !c.ok) {
            report.warnings.push(format!(
                "search check failed: {:?} ({}) returned {} hits{}",
                c.query,
                c.class,
                c.hits,
                if c.must_match {
                    ", expected some"
                } else {
                    ", expected none"
                }
            ));
        }
    }
    if run.opts.quick {
        report.warnings.push(format!(
            "quick mode: {} s per scenario and a search corpus of {} messages (the target is for 1,000,000)",
            run.plan.duration.as_secs_f64(),
            run.search_messages
        ));
    }
    if let Some(err) = &report.error {
        report
            .warnings
            .push(format!("the run did not complete: {err}"));
    }
}
