//! The systems under test, each a set of separate processes of the release binary: embedded
//! (`serve`) and MySQL + Redis (`migrate`, then `indexer`, `counter`, `api` ×1 or ×2). Also
//! the resource meter (CPU share, per-scenario peak RSS) and the clean-up of databases and
//! Redis keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use sqlx::Connection;

use crate::procs::{self, Server, free_port, loopback};

/// Everything scenarios need to know about the run's environment.
pub struct Ctx {
    pub chat_system: PathBuf,
    pub bench_exe: PathBuf,
    pub log_dir: PathBuf,
    pub work_dir: PathBuf,
    pub mysql_url: String,
    pub redis_url: String,
    pub server_log: String,
    pub elasticsearch_url: Option<String>,
    pub cleanup: Cleanup,
    /// The database and Redis servers (not ours: only their CPU time is read).
    pub db_pids: Vec<u32>,
    pub redis_pids: Vec<u32>,
}

impl Ctx {
    pub fn db_url(&self, db: &str) -> String {
        format!("{}/{db}", self.mysql_url.trim_end_matches('/'))
    }

    fn common_env(&self, data_dir: &Path) -> Vec<(String, String)> {
        vec![
            ("CHAT_DATA_DIR".into(), data_dir.display().to_string()),
            ("RUST_LOG".into(), self.server_log.clone()),
            ("CHAT_SHUTDOWN_GRACE_S".into(), "2".into()),
            // The bench drives thousands of requests a second through a handful of tokens
            // from one address: it measures the system, not its abuse limits (0 = unlimited).
            ("CHAT_RATE_WRITE_PER_S".into(), "0".into()),
            ("CHAT_RATE_READ_PER_S".into(), "0".into()),
            ("CHAT_RATE_CREATE_APP_PER_MIN".into(), "0".into()),
        ]
    }
}

/// Databases and Redis prefixes to remove at the end, also after an error or Ctrl-C.
#[derive(Default)]
pub struct Cleanup {
    dbs: Mutex<Vec<String>>,
    prefixes: Mutex<Vec<String>>,
}

impl Cleanup {
    pub fn database(&self, name: &str) {
        self.dbs.lock().unwrap().push(name.to_owned());
    }

    pub fn prefix(&self, prefix: &str) {
        self.prefixes.lock().unwrap().push(prefix.to_owned());
    }

    pub async fn run(&self, mysql_url: &str, redis_url: &str) {
        let dbs: Vec<String> = std::mem::take(&mut *self.dbs.lock().unwrap());
        let prefixes: Vec<String> = std::mem::take(&mut *self.prefixes.lock().unwrap());
        if !dbs.is_empty() {
            match sqlx::MySqlConnection::connect(mysql_url).await {
                Ok(mut conn) => {
                    for db in dbs {
                        if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS `{db}`"
                        )))
                        .execute(&mut conn)
                        .await
                        {
                            eprintln!("bench: could not drop database {db}: {err}");
                        }
                    }
                }
                Err(err) => eprintln!("bench: could not connect to drop databases: {err}"),
            }
        }
        for prefix in prefixes {
            match delete_keys(redis_url, &format!("{prefix}*")).await {
                Ok(_) => {}
                Err(err) => eprintln!("bench: could not delete Redis keys {prefix}*: {err}"),
            }
        }
    }
}

pub async fn delete_keys(redis_url: &str, pattern: &str) -> anyhow::Result<usize> {
    Ok(chat_core::testkit::delete_redis_keys(redis_url, pattern).await?)
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Databases `chat_bench_<pid>…` and keys `chat_bench_<pid>…` of harness runs that are gone
/// (a killed run cannot clean up after itself).
pub async fn remove_stale(mysql_url: &str, redis_url: &str) -> anyhow::Result<()> {
    let stale_pid = |name: &str| -> bool {
        name.strip_prefix("chat_bench_")
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|pid| pid != std::process::id() && !pid_alive(pid))
    };
    let mut conn = sqlx::MySqlConnection::connect(mysql_url)
        .await
        .with_context(|| format!("connect to MySQL at {mysql_url}"))?;
    let dbs: Vec<String> = sqlx::query_scalar("SHOW DATABASES LIKE 'chat\\_bench\\_%'")
        .fetch_all(&mut conn)
        .await?;
    for db in dbs.into_iter().filter(|db| stale_pid(db)) {
        eprintln!("bench: dropping database {db} of a run that is gone");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{db}`"
        )))
        .execute(&mut conn)
        .await?;
    }
    let client = redis::Client::open(redis_url)?;
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("connect to Redis at {redis_url}"))?;
    let mut cursor: u64 = 0;
    let mut prefixes = std::collections::BTreeSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("chat_bench_*")
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut redis)
            .await?;
        for key in keys {
            if stale_pid(&key)
                && let Some(prefix) = key.split(':').next()
            {
                prefixes.insert(prefix.to_owned());
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for prefix in prefixes {
        let n = delete_keys(redis_url, &format!("{prefix}:*")).await?;
        eprintln!("bench: deleted {n} Redis keys {prefix}:* of a run that is gone");
    }
    Ok(())
}

/// One system under test: its processes and the api addresses clients spread over.
pub struct System {
    pub label: String,
    /// MySQL mode: the server URL, for status counters.
    pub mysql: Option<String>,
    pub servers: Vec<Server>,
    pub api: Vec<SocketAddr>,
    env: Vec<(String, String)>,
    _data: Option<tempfile::TempDir>,
}

impl System {
    /// `chat-system serve` on a fresh data directory (or `data_dir`, kept by the caller).
    pub async fn embedded(
        ctx: &Ctx,
        label: &str,
        server: &str,
        data_dir: Option<&Path>,
    ) -> anyhow::Result<System> {
        let (data, dir) = match data_dir {
            Some(dir) => (None, dir.to_path_buf()),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("chat-bench-embedded-")
                    .tempdir_in(&ctx.work_dir)?;
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let env = ctx.common_env(&dir);
        let mut system = System {
            label: label.to_owned(),
            mysql: None,
            servers: Vec::new(),
            api: Vec::new(),
            env,
            _data: data,
        };
        system.start_api(ctx, server, "serve").await?;
        Ok(system)
    }

    /// A fresh database `chat_bench_<pid>` and Redis prefix, `migrate`, then indexer, counter
    /// and one api.
    pub async fn mysql(ctx: &Ctx, label: &str) -> anyhow::Result<System> {
        let db = format!("chat_bench_{}", std::process::id());
        let prefix = format!("chat_bench_{}", std::process::id());
        ctx.cleanup.database(&db);
        ctx.cleanup.prefix(&format!("{prefix}:"));
        let mut conn = sqlx::MySqlConnection::connect(&ctx.mysql_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS `{db}`"
        )))
        .execute(&mut conn)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut conn)
        .await?;
        drop(conn);
        let tmp = tempfile::Builder::new()
            .prefix("chat-bench-mysql-")
            .tempdir_in(&ctx.work_dir)?;
        let dir = tmp.path().to_path_buf();
        let mut env = ctx.common_env(&dir);
        env.push(("DATABASE_URL".into(), ctx.db_url(&db)));
        env.push(("REDIS_URL".into(), ctx.redis_url.clone()));
        env.push(("CHAT_REDIS_PREFIX".into(), format!("{prefix}:")));
        if let Some(es) = &ctx.elasticsearch_url {
            env.push(("ELASTICSEARCH_URL".into(), es.clone()));
            env.push(("CHAT_SEARCH_INDEX".into(), format!("{prefix}_messages")));
        }
        procs::run_once(
            "migrate",
            &ctx.chat_system,
            &["migrate"],
            &env,
            &ctx.log_dir,
        )
        .await?;
        let mut system = System {
            label: label.to_owned(),
            mysql: Some(ctx.mysql_url.clone()),
            servers: Vec::new(),
            api: Vec::new(),
            env,
            _data: Some(tmp),
        };
        for role in ["indexer", "counter"] {
            let admin = free_port();
            let mut env = system.env.clone();
            env.push(("CHAT_ADMIN_LISTEN".into(), loopback(admin).to_string()));
            let server = Server::start(
                role,
                &ctx.chat_system,
                &[role],
                &env,
                loopback(admin),
                &ctx.log_dir,
            )
            .await?;
            system.servers.push(server);
        }
        system.start_api(ctx, "api1", "api").await?;
        Ok(system)
    }

    /// Starts one more api-like process (`api` or `serve`) on fresh ports.
    pub async fn start_api(&mut self, ctx: &Ctx, name: &str, role: &str) -> anyhow::Result<()> {
        let (port, admin) = (free_port(), free_port());
        let mut env = self.env.clone();
        env.push(("CHAT_LISTEN".into(), loopback(port).to_string()));
        env.push(("CHAT_ADMIN_LISTEN".into(), loopback(admin).to_string()));
        let server = Server::start(
            name,
            &ctx.chat_system,
            &[role],
            &env,
            loopback(port),
            &ctx.log_dir,
        )
        .await?;
        self.servers.push(server);
        self.api.push(loopback(port));
        Ok(())
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for server in &mut self.servers {
            if let Some(msg) = server.exited() {
                bail!("{msg}:\n{}", procs::tail(&server.log));
            }
        }
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        // api processes first, so the workers see no new events while stopping.
        let mut servers = self.servers;
        servers.sort_by_key(|s| !(s.name.starts_with("api") || s.name == "serve"));
        for server in servers {
            server.stop(Duration::from_secs(10)).await?;
        }
        Ok(())
    }

    /// Waits until background work of the previous scenario (indexing, counting, relaying) has
    /// died down: the system's processes together below 10% of a core over 300 ms, at most
    /// `limit`. Returns how long it waited.
    pub async fn settle(&self, ctx: &Ctx, limit: Duration) -> Duration {
        let started = Instant::now();
        let pids: Vec<u32> = self
            .servers
            .iter()
            .map(|s| s.pid)
            .chain(ctx.db_pids.iter().copied())
            .collect();
        let total = |pids: &[u32]| {
            pids.iter()
                .filter_map(|p| procs::cpu_seconds(*p))
                .sum::<f64>()
        };
        loop {
            let before = total(&pids);
            tokio::time::sleep(Duration::from_millis(300)).await;
            let used = total(&pids) - before;
            if used < 0.03 || started.elapsed() > limit {
                return started.elapsed();
            }
        }
    }
}

/// CPU shares (percent of one core) over a measured window, and each server's peak RSS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub client_cpu_pct: f64,
    pub server_cpu_pct: f64,
    pub db_cpu_pct: f64,
    pub redis_cpu_pct: f64,
    /// (process, peak RSS in MiB during the scenario)
    pub peak_rss_mib: Vec<(String, f64)>,
    /// MySQL mode: deltas of server-wide status counters over the scenario (commits, inserts,
    /// rollbacks, row-lock waits, deadlocks, fsyncs); they include any other client's work.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub db_status: std::collections::BTreeMap<String, i64>,
}

const DB_STATUS: &str = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', 'Com_insert', \
     'Com_rollback', 'Innodb_row_lock_waits', 'Innodb_row_lock_time', 'Innodb_deadlocks', \
     'Innodb_data_fsyncs', 'Questions')";

/// The MySQL server's status counters (empty when unreachable).
pub async fn db_status(url: &str) -> std::collections::BTreeMap<String, i64> {
    let Ok(mut conn) = sqlx::MySqlConnection::connect(url).await else {
        return Default::default();
    };
    let rows: Vec<(String, String)> = sqlx::query_as(DB_STATUS)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    rows.into_iter()
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect()
}

pub fn status_delta(
    before: &std::collections::BTreeMap<String, i64>,
    after: &std::collections::BTreeMap<String, i64>,
) -> std::collections::BTreeMap<String, i64> {
    after
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v - before.get(k)?)))
        .collect()
}

pub struct Meter {
    started: Instant,
    client: f64,
    servers: Vec<(String, u32, f64)>,
    db: f64,
    redis: f64,
}

fn sum_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| procs::cpu_seconds(*p)).sum()
}

impl Meter {
    pub fn start(ctx: &Ctx, servers: &[(String, u32)]) -> Meter {
        for (_, pid) in servers {
            procs::reset_peak(*pid);
        }
        Meter {
            started: Instant::now(),
            client: procs::cpu_seconds(std::process::id()).unwrap_or(0.0),
            servers: servers
                .iter()
                .map(|(n, p)| (n.clone(), *p, procs::cpu_seconds(*p).unwrap_or(0.0)))
                .collect(),
            db: sum_cpu(&ctx.db_pids),
            redis: sum_cpu(&ctx.redis_pids),
        }
    }

    pub fn for_system(ctx: &Ctx, system: &System) -> Meter {
        let servers: Vec<(String, u32)> = system
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.pid))
            .collect();
        Meter::start(ctx, &servers)
    }

    pub fn finish(self, ctx: &Ctx) -> Usage {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = |v: f64| 100.0 * v / wall;
        let client = procs::cpu_seconds(std::process::id()).unwrap_or(0.0) - self.client;
        let server: f64 = self
            .servers
            .iter()
            .map(|(_, p, before)| procs::cpu_seconds(*p).unwrap_or(*before) - before)
            .sum();
        Usage {
            client_cpu_pct: pct(client),
            server_cpu_pct: pct(server),
            db_cpu_pct: pct(sum_cpu(&ctx.db_pids) - self.db),
            redis_cpu_pct: pct(sum_cpu(&ctx.redis_pids) - self.redis),
            peak_rss_mib: self
                .servers
                .iter()
                .filter_map(|(n, p, _)| Some((n.clone(), procs::peak_rss_mib(*p)?)))
                .collect(),
            db_status: Default::default(),
        }
    }
}
