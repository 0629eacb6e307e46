//! Search in one chat of N messages (default 1,000,000) on the embedded engine. Preloaded by a
//! bulk path, not through HTTP: `serve` creates the application and chat, stops, then the
//! harness writes the SQLite rows (multi-row INSERTs in big transactions; no outbox rows, so
//! nothing is re-indexed) and the tantivy index (`TantivyIndex::bulk_load`, one commit), and
//! starts `serve` again on the same data directory.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use chat_core::search::SearchDocument;
use chat_search::corpus::Words;
use chat_search::tantivy::TantivyIndex;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::http::{self, Client};
use crate::load::{Mode, Plan, Requests};
use crate::report::{Row, SearchCheck, SearchInfo};
use crate::scenarios::http_row;
use crate::system::{Ctx, System};

fn created_at(base: DateTime<Utc>, number: i64) -> DateTime<Utc> {
    base + chrono::Duration::microseconds(number)
}

/// Rare words that occur in the corpus (taken from a few generated bodies).
fn rare_words(n: u64) -> Vec<String> {
    let mut words = Words::new();
    let picks = [n / 7, n / 3, n - 1];
    let mut out = Vec::new();
    for i in 0..n {
        let body = words.body();
        if picks.contains(&i)
            && let Some(w) = body.split(' ').find(|w| w.starts_with('w'))
        {
            out.push(w.to_owned());
        }
    }
    out
}

async fn load_sqlite(db: &std::path::Path, n: u64, base: DateTime<Utc>) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let chat_id: i64 = sqlx::query_scalar("SELECT id FROM chats WHERE number = 1")
        .fetch_one(&pool)
        .await
        .context("the chat serve created")?;
    let mut words = Words::new();
    const ROWS: u64 = 500;
    const PER_TX: u64 = 40;
    let mut number: i64 = 1;
    let last = n as i64;
    while number <= last {
        let mut tx = pool.begin().await?;
        for _ in 0..PER_TX {
            if number > last {
                break;
            }
            let upto = (number + ROWS as i64 - 1).min(last);
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO messages (chat_id, number, body, created_at, updated_at, version) ",
            );
            q.push_values(number..=upto, |mut b, num| {
                let at = created_at(base, num);
                b.push_bind(chat_id)
                    .push_bind(num)
                    .push_bind(words.body())
                    .push_bind(at)
                    .push_bind(at)
                    .push_bind(1_i64);
            });
            q.build().execute(&mut *tx).await?;
            number = upto + 1;
        }
        tx.commit().await?;
    }
    // Counts as the counter would have left them (the settled watermark at the last row).
    sqlx::query(
        "UPDATE chats SET messages_count = ?, counted_number = ?, counted_messages = ? WHERE id = ?",
    )
    .bind(last)
    .bind(last)
    .bind(last)
    .bind(chat_id)
    .execute(&pool)
    .await?;
    pool.close().await;
    Ok(())
}

async fn load_index(
    dir: &std::path::Path,
    chat_id: i64,
    n: u64,
    base: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let index = TantivyIndex::open_writer(dir).await?;
    let mut words = Words::new();
    let docs = (1..=n as i64).map(move |number| SearchDocument {
        chat_id,
        number,
        body: words.body(),
        version: 1,
        created_at: created_at(base, number),
    });
    let written = index.bulk_load(docs).await?;
    drop(index);
    Ok(written)
}

pub struct SearchPlan {
    pub messages: u64,
    pub class_plan: Plan,
    pub mixed_plan: Plan,
    pub concurrency: usize,
}

pub async fn run(ctx: &Ctx, plan: &SearchPlan) -> anyhow::Result<(Vec<Row>, SearchInfo)> {
    let data = tempfile::Builder::new()
        .prefix("chat-bench-search-")
        .tempdir_in(&ctx.work_dir)?;
    let label = "embedded 1M".replace("1M", &short_count(plan.messages));
    let system = System::embedded(ctx, &label, "serve-search", Some(data.path())).await?;
    let addr = system.api[0];
    let mut client = Client::new(addr);
    let app = client
        .expect(
            "POST",
            "/chat_applications",
            Some(r#"{"name":"search bench"}"#),
            201,
        )
        .await?;
    let token = app["token"].as_str().context("token")?.to_owned();
    client
        .expect(
            "POST",
            &format!("/chat_applications/{token}/chats"),
            None,
            201,
        )
        .await?;
    drop(client);
    system.stop().await?;

    let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let started = Instant::now();
    eprintln!("bench:   preloading {} messages into SQLite", plan.messages);
    load_sqlite(&data.path().join("chat.db"), plan.messages, base).await?;
    let sqlite_load_s = started.elapsed().as_secs_f64();
    let chat_id = {
        let options = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            data.path().join("chat.db").display()
        ))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM chats WHERE number = 1")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        id
    };
    let started = Instant::now();
    eprintln!("bench:   bulk-loading the search index ({sqlite_load_s:.1} s for SQLite)");
    let written = load_index(&data.path().join("search"), chat_id, plan.messages, base).await?;
    let index_load_s = started.elapsed().as_secs_f64();
    eprintln!("bench:   {written} documents indexed in {index_load_s:.1} s");

    let mut system = System::embedded(ctx, &label, "serve-search", Some(data.path())).await?;
    let addr = system.api[0];
    let path = format!("/chat_applications/{token}/chats/1/messages/search?q=");
    let rare = rare_words(plan.messages);
    let partial: Vec<String> = rare
        .iter()
        .map(|w| w[..w.len().min(4)].to_owned())
        .chain(["w12".to_owned()])
        .collect();
    let classes: Vec<(&str, &str, Vec<String>, bool)> = vec![
        (
            "search-common",
            "common word",
            vec!["hello".into(), "meeting".into(), "project".into()],
            true,
        ),
        (
            "search-prefix",
            "prefix of common",
            vec!["hel".into(), "h".into(), "mee".into(), "pro".into()],
            true,
        ),
        (
            "search-two-words",
            "two words",
            vec!["hello world".into(), "please review".into()],
            true,
        ),
        ("search-rare", "rare word", rare.clone(), true),
        ("search-partial", "partial rare word", partial, true),
        (
            "search-none",
            "no match",
            vec!["zzzz".into(), "nothingatall".into()],
            false,
        ),
    ];
    let mut checks = Vec::new();
    let mut client = Client::new(addr);
    for (_, class, queries, must) in &classes {
        for q in queries {
            let answer = client
                .expect(
                    "GET",
                    &format!("{path}{}", http::encode_query(q)),
                    None,
                    200,
                )
                .await?;
            let hits = answer["data"].as_array().map_or(0, Vec::len);
            checks.push(SearchCheck {
                class: class.to_string(),
                query: q.clone(),
                hits,
                must_match: *must,
                ok: if *must { hits > 0 } else { hits == 0 },
            });
        }
    }
    drop(client);
    let size = short_count(plan.messages);
    let mut rows = Vec::new();
    let mut all = Vec::new();
    for (key, class, queries, _) in &classes {
        let requests: Vec<Vec<u8>> = queries
            .iter()
            .map(|q| http::request("GET", &format!("{path}{}", http::encode_query(q)), None))
            .collect();
        all.extend(requests.iter().cloned());
        rows.push(
            http_row(
                ctx,
                &mut system,
                key,
                &format!("search {size}: {class}"),
                Requests::Choice(requests),
                Mode::Closed { concurrency: 1 },
                plan.class_plan,
                Duration::from_secs(5),
            )
            .await?,
        );
    }
    rows.push(
        http_row(
            ctx,
            &mut system,
            "search-mixed",
            &format!("search {size}: all classes mixed"),
            Requests::Choice(all),
            Mode::Closed {
                concurrency: plan.concurrency,
            },
            plan.mixed_plan,
            Duration::from_secs(5),
        )
        .await?,
    );
    system.stop().await?;
    drop(data);
    Ok((
        rows,
        SearchInfo {
            messages: plan.messages,
            sqlite_load_s,
            index_load_s,
            checks,
        },
    ))
}

pub fn short_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}
