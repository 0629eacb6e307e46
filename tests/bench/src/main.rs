//! `chat-bench`: the benchmark harness of chat-system. Starts the system itself as
//! separate processes of the release binary, drives it with a closed- or open-loop HTTP load,
//! measures same-run baselines, and writes a table, JSON and an SVG plot under `target/bench`.
//! See docs/performance.md.

mod baselines;
mod bench;
mod http;
mod load;
mod plot;
mod procs;
mod report;
mod scenarios;
mod search;
mod streams;
mod system;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chat-bench",
    about = "Benchmark harness of chat-system: starts the system, loads it, compares with same-run baselines"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The axum no-op baseline server (started by the harness itself).
    NoopServer {
        #[arg(long)]
        port: u16,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Short run (< 3 minutes): 0.5 s warm-up, 2 s per scenario, a 100k-message search corpus.
    #[arg(long)]
    pub quick: bool,

    /// Only these scenarios (comma-separated): noop, sql-insert, redis-incr, create-app,
    /// create-chat, create-message, get-message, list-messages, sweep, lag, stream, connections,
    /// search.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,

    /// Only these systems (comma-separated): embedded, mysql1, mysql2.
    #[arg(long, value_delimiter = ',')]
    pub systems: Vec<String>,

    /// Output directory (results.json, table.md, latency-throughput.svg, logs/).
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,

    /// The chat-system binary [default: chat-system next to chat-bench].
    #[arg(long)]
    pub bin: Option<PathBuf>,

    /// Where data directories go (the 1M-message search corpus needs ~1 GB) [default: the
    /// system temp directory].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,

    /// Concurrent clients (connections) of the closed-loop scenarios and baselines.
    #[arg(short = 'c', long, default_value_t = 64)]
    pub concurrency: usize,

    /// Measured seconds per scenario [default: 10, quick 2].
    #[arg(long)]
    pub duration: Option<f64>,

    /// Warm-up seconds before each measurement, excluded from it [default: 2, quick 0.5].
    #[arg(long)]
    pub warmup: Option<f64>,

    /// Worker threads of the load generator's runtime (it shares the cores with the servers).
    #[arg(long, default_value_t = 2)]
    pub client_threads: usize,

    /// Open-loop sweep rates, as percentages of the closed-loop create-message maximum.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50,75,90")]
    pub sweep: Vec<f64>,

    /// Open-loop sweep rates in requests/s (instead of percentages).
    #[arg(long, value_delimiter = ',')]
    pub sweep_rates: Vec<f64>,

    /// Sustained create-message rate while index and count lag are sampled [default: 50% of
    /// the closed-loop maximum].
    #[arg(long)]
    pub lag_rate: Option<f64>,

    /// Live-stream scenario: SSE subscribers following the chat (on the last api process).
    #[arg(long, default_value_t = 20)]
    pub stream_subscribers: usize,

    /// Live-stream scenario: sustained create rate [default: --lag-rate, else 50% of the
    /// closed-loop maximum when measured, else 200/s].
    #[arg(long)]
    pub stream_rate: Option<f64>,

    /// Seconds of lag sampling [default: 20, quick 6].
    #[arg(long)]
    pub lag_duration: Option<f64>,

    /// Messages in the search chat [default: 1,000,000, quick 100,000].
    #[arg(long)]
    pub search_messages: Option<u64>,

    /// Idle keep-alive connections of the RSS scenario.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,

    /// MariaDB/MySQL server (the harness creates and drops a database of its own).
    #[arg(
        long,
        env = "CHAT_BENCH_MYSQL",
        default_value = "mysql://root@127.0.0.1:3306"
    )]
    pub mysql: String,

    /// Redis (the harness uses and deletes a key prefix of its own).
    #[arg(
        long,
        env = "CHAT_BENCH_REDIS",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis: String,

    /// RUST_LOG of the servers (`info` logs a line per request).
    #[arg(long, default_value = "warn")]
    pub server_log: String,

    /// After the run, replace the results section of this markdown file (between
    /// `<!-- chat-bench:begin -->` and `<!-- chat-bench:end -->`) with the run's table.
    #[arg(long)]
    pub update_doc: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::NoopServer { port }) = cli.command {
        return match baselines::noop_server(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("chat-bench noop-server: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.opts.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chat-bench: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(cli.opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chat-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
