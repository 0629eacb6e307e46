//! The search request body and reading its response.
//!
//! Words go into `match`, `prefix` and `wildcard` clauses as values, never through
//! `query_string`, so nothing in them is ever parsed as query syntax.

use chat_core::search::{SearchCursor, SearchHit, SearchPage, SearchRequest};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::fragment::{self, FRAGMENT_CHARS};

pub fn body(request: &SearchRequest, words: &[String], limit: usize) -> Value {
    let must: Vec<Value> = words
        .iter()
        .map(|word| {
            json!({ "bool": {
                "should": [
                    { "match": { "body": { "query": word } } },
                    { "prefix": { "body": { "value": word } } }
                ],
                "minimum_should_match": 1
            }})
        })
        .collect();
    // A prefix query on an `index_prefixes` field runs on the hidden `body._index_prefix`
    // field, which the highlighter does not look at; an equivalent wildcard query on `body`
    // itself shows it which words matched.
    let highlight_words: Vec<Value> = words
        .iter()
        .map(|word| json!({ "wildcard": { "body": { "value": format!("{word}*") } } }))
        .collect();
    let mut body = json!({
        "size": limit + 1,
        "track_total_hits": false,
        "_source": ["number", "body", "created_at"],
        "query": { "bool": {
            "filter": [ { "term": { "chat_id": request.chat_id } } ],
            "must": must
        }},
        "sort": [ { "_score": "desc" }, { "number": "desc" } ],
        "highlight": {
            "encoder": "html",
            "pre_tags": ["<em>"],
            "post_tags": ["</em>"],
            "fields": { "body": {
                "fragment_size": FRAGMENT_CHARS,
                "number_of_fragments": 1,
                "no_match_size": FRAGMENT_CHARS,
                "highlight_query": { "bool": { "should": highlight_words } }
            }}
        }
    });
    if let Some(after) = request.after {
        body["search_after"] = json!([after.score, after.number]);
    }
    body
}

#[derive(Deserialize)]
pub struct Response {
    hits: Hits,
}

#[derive(Deserialize)]
struct Hits {
    hits: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    _source: Source,
    sort: (f64, i64),
    #[serde(default)]
    highlight: Option<Highlight>,
}

#[derive(Deserialize)]
struct Source {
    number: i64,
    body: String,
    created_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Highlight {
    #[serde(default)]
    body: Vec<String>,
}

impl Response {
    /// The first `limit` hits; a further one means another page exists.
    pub fn page(self, limit: usize) -> SearchPage {
        let more = self.hits.hits.len() > limit;
        let hits: Vec<SearchHit> = self
            .hits
            .hits
            .into_iter()
            .take(limit)
            .map(|hit| {
                let highlight = hit
                    .highlight
                    .and_then(|h| h.body.into_iter().next())
                    .unwrap_or_else(|| fragment::plain(&hit._source.body));
                SearchHit {
                    number: hit._source.number,
                    body: hit._source.body,
                    created_at: hit._source.created_at,
                    highlight,
                    // Scores are single precision in Elasticsearch: the cast is exact.
                    score: hit.sort.0 as f32,
                }
            })
            .collect();
        let next = match hits.last() {
            Some(last) if more => Some(SearchCursor {
                score: last.score,
                number: last.number,
            }),
            _ => None,
        };
        SearchPage { hits, next }
    }
}
