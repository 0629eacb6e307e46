//! The embedded index's fields and how a [`SearchDocument`] becomes a tantivy document.
//!
//! Prefix matching is precomputed at write time: every word's first [`MAX_PREFIX_CHARS`]
//! prefixes go into `body_prefix`, so a query word is one term lookup (skippable postings) instead of an automaton walk over the whole term dictionary, which is what keeps a
//! query in a chat of a million messages within milliseconds. This is what Elasticsearch's
//! `index_prefixes` does too.

use ::tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use ::tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};
use ::tantivy::{Index, TantivyDocument};
use chat_core::search::SearchDocument;

/// Splits on anything that is not a letter or a digit and lowercases, exactly as
/// `chat_core::search::query_words` splits a query, so both sides agree on what a word is.
pub const WORDS_TOKENIZER: &str = "chat_words";
const PREFIXES_TOKENIZER: &str = "whitespace";

/// Longer query words fall back to a regex over the body's terms (rare, and selective).
pub const MAX_PREFIX_CHARS: usize = 10;

/// Tokens longer than this are dropped by the analyzer; far above any real word.
const MAX_TOKEN_BYTES: usize = 255;

#[derive(Clone, Copy)]
pub struct Fields {
    pub chat_id: Field,
    pub number: Field,
    pub key: Field,
    pub body: Field,
    pub body_prefix: Field,
    pub version: Field,
    pub created_at: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let body_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    // Matched, never scored: no frequencies, no norms.
    let prefix_options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(PREFIXES_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic)
            .set_fieldnorms(false),
    );
    let fields = Fields {
        chat_id: builder.add_i64_field("chat_id", INDEXED | FAST),
        number: builder.add_i64_field("number", FAST | STORED),
        key: builder.add_text_field("key", STRING),
        body: builder.add_text_field("body", body_options),
        body_prefix: builder.add_text_field("body_prefix", prefix_options),
        version: builder.add_i64_field("version", FAST),
        // Microseconds since the epoch: stored as is, never queried.
        created_at: builder.add_i64_field("created_at", STORED),
    };
    (builder.build(), fields)
}

pub fn words_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}

/// Tokenizers are not persisted with the index: every open must register them.
pub fn register_tokenizers(index: &Index) {
    index
        .tokenizers()
        .register(WORDS_TOKENIZER, words_analyzer());
}

/// The lowercased words of `text` with their byte ranges in it.
pub fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    stream.process(&mut |token| {
        out.push((token.text.clone(), token.offset_from..token.offset_to));
    });
    out
}

pub fn to_document(
    fields: &Fields,
    analyzer: &mut TextAnalyzer,
    doc: &SearchDocument,
) -> TantivyDocument {
    let mut out = TantivyDocument::default();
    out.add_i64(fields.chat_id, doc.chat_id);
    out.add_i64(fields.number, doc.number);
    out.add_text(fields.key, doc.key());
    out.add_text(fields.body, &doc.body);
    out.add_text(fields.body_prefix, prefixes(analyzer, &doc.body));
    out.add_i64(fields.version, doc.version);
    out.add_i64(fields.created_at, doc.created_at.timestamp_micros());
    out
}

/// Every prefix (1 to [`MAX_PREFIX_CHARS`] characters) of every word, space-separated for the
/// whitespace tokenizer. Words are alphanumeric, so they never contain a space.
fn prefixes(analyzer: &mut TextAnalyzer, body: &str) -> String {
    let mut out = String::with_capacity(body.len() * 3);
    for (word, _) in words(analyzer, body) {
        let ends = word.char_indices().map(|(i, _)| i).skip(1);
        for end in ends
            .chain(std::iter::once(word.len()))
            .take(MAX_PREFIX_CHARS)
        {
            out.push_str(&word[..end]);
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cover_each_word_up_to_the_limit() {
        let mut analyzer = words_analyzer();
        assert_eq!(prefixes(&mut analyzer, "Hi, Ünï!"), "h hi ü ün ünï ");
        let long = prefixes(&mut analyzer, "abcdefghijklmn");
        assert_eq!(
            long.split(' ').filter(|p| !p.is_empty()).count(),
            MAX_PREFIX_CHARS
        );
        assert!(long.contains("abcdefghij "));
    }
}
