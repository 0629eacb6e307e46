//! Disaster-recovery commands: `reindex`, `recount`, `dlq`. For lost indexes, restored backups
//! and poison events, not for normal operation (the outbox covers that).

use std::time::{Duration, Instant};

use chat_core::config::Settings;
use chat_core::search::SearchDocument;
use chat_core::wiring::Schema;
use chat_core::workers::counter::SETTLE;
use chat_core::{Error, Result};
use chat_search::Access;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::open_backend as open;
use crate::cli::DlqAction;

const BATCH: u32 = 1000;
const CHECKPOINT: &str = "reindex_checkpoint";

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Writes every message (or one chat's) to the search index in id order, checkpointing after
/// each batch so a crash resumes where it stopped. Safe while the system runs: documents carry
/// their version, so a stale copy never replaces a newer edit the indexer wrote meanwhile.
pub async fn reindex(
    settings: &Settings,
    chat: Option<(String, i64)>,
    restart: bool,
) -> Result<()> {
    let backend = open(settings, Schema::Check, Access::Writer).await?;
    let store = &backend.store;
    let chat_id = match &chat {
        Some((token, number)) => Some(backend.service.chat(token, *number).await?.id),
        None => None,
    };
    // The checkpoint remembers which scope it belongs to, so `--chat` and a full run never mix.
    let scope = chat_id.map_or("all".to_owned(), |id| format!("chat {id}"));
    let mut saved = store.state(CHECKPOINT).await?;
    let mut after = match saved.as_deref().and_then(|s| s.split_once('@')) {
        Some((id, saved_scope)) if !restart && saved_scope == scope => id.parse().unwrap_or(0),
        _ => 0,
    };
    if after > 0 {
        println!("resuming {scope} after message id {after} (pass --restart to start over)");
    }
    let (_, _, total_messages) = store.totals().await?;
    let progress = bar(total_messages as u64, "reindex");
    let started = Instant::now();
    let mut written = 0u64;
    let mut rejected = 0u64;
    loop {
        let rows = store.messages_by_id(after, BATCH, chat_id).await?;
        let Some(last) = rows.last().map(|m| m.id) else {
            break;
        };
        let documents: Vec<SearchDocument> = rows
            .into_iter()
            .map(|m| SearchDocument {
                chat_id: m.chat_id,
                number: m.number,
                body: m.body,
                version: m.version,
                created_at: m.created_at,
            })
            .collect();
        let count = documents.len() as u64;
        let report = upsert_with_retry(&backend, documents).await?;
        for (key, reason) in &report.rejected {
            progress.println(format!("rejected {key}: {reason}"));
        }
        rejected += report.rejected.len() as u64;
        written += count - report.rejected.len() as u64;
        checkpoint(store, &mut saved, format!("{last}@{scope}")).await?;
        after = last;
        progress.inc(count);
    }
    progress.finish_and_clear();
    checkpoint(store, &mut saved, format!("0@{scope}")).await?;
    println!(
        "reindex done: {written} documents written, {rejected} rejected, in {:.1}s ({scope})",
        started.elapsed().as_secs_f64()
    );
    if rejected > 0 {
        return Err(Error::SearchUnavailable(format!(
            "{rejected} documents were rejected by the index"
        )));
    }
    Ok(())
}

/// Moves the checkpoint from the value this run last saw to `next`. Losing the swap means
/// another reindex is running at the same time: stop rather than interleave checkpoints.
async fn checkpoint(
    store: &std::sync::Arc<dyn chat_core::store::Store>,
    current: &mut Option<String>,
    next: String,
) -> Result<()> {
    if !store
        .swap_state(CHECKPOINT, current.as_deref(), &next)
        .await?
    {
        return Err(Error::Config(
            "another reindex moved the checkpoint: run one reindex at a time".into(),
        ));
    }
    *current = Some(next);
    Ok(())
}

async fn upsert_with_retry(
    backend: &chat_core::wiring::Backend,
    documents: Vec<SearchDocument>,
) -> Result<chat_core::search::UpsertReport> {
    let mut attempt = 0;
    loop {
        match backend.search.upsert(documents.clone()).await {
            Err(Error::SearchUnavailable(reason)) if attempt < 20 => {
                attempt += 1;
                tracing::warn!(%reason, attempt, "search index unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Recomputes every application's and chat's count from scratch.
pub async fn recount(settings: &Settings) -> Result<()> {
    let backend = open(settings, Schema::Check, Access::Reader).await?;
    let store = &backend.store;
    let (apps, chats, _) = store.totals().await?;
    let settled_before = chat_core::domain::now() - chrono_settle();
    let started = Instant::now();

    let progress = bar(apps as u64, "applications");
    let mut after = 0;
    loop {
        let ids = store.application_ids(after, BATCH).await?;
        let Some(&last) = ids.last() else { break };
        for id in ids {
            store.recount_application(id, settled_before, true).await?;
            progress.inc(1);
        }
        after = last;
    }
    progress.finish_and_clear();

    let progress = bar(chats as u64, "chats");
    let mut after = 0;
    loop {
        let ids = store.chat_ids(after, BATCH).await?;
        let Some(&last) = ids.last() else { break };
        for id in ids {
            store.recount_chat(id, settled_before, true).await?;
            progress.inc(1);
        }
        after = last;
    }
    progress.finish_and_clear();
    println!(
        "recount done: {apps} applications and {chats} chats recounted in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn chrono_settle() -> chrono::Duration {
    chrono::Duration::from_std(SETTLE).expect("small duration")
}

pub async fn dlq(settings: &Settings, action: DlqAction) -> Result<()> {
    if settings.redis_url.is_none() {
        return Err(Error::Config(
            "REDIS_URL: dead letters of the embedded queue live inside the `serve` process (each is logged with its error); `dlq` reads the Redis dead-letter stream".into(),
        ));
    }
    let backend = open(settings, Schema::Check, Access::Reader).await?;
    match action {
        DlqAction::List { limit } => {
            let letters = backend.queue.dead_letters(limit).await?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for d in &letters {
                let payload: String = d.payload.chars().take(120).collect();
                println!(
                    "{}  group={} attempts={} dead_at={} original={}\n    error: {}\n    payload: {}",
                    d.id,
                    d.group,
                    d.attempts,
                    d.dead_at.to_rfc3339(),
                    d.original_id,
                    d.error,
                    payload
                );
            }
            println!("{} dead letter(s)", letters.len());
        }
        DlqAction::Replay { ids } => {
            let n = backend.queue.replay(&ids).await?;
            println!("re-queued {n} dead letter(s)");
        }
    }
    Ok(())
}
