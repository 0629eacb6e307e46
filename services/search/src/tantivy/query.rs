//! Query building and ranking for the embedded index.

use ::tantivy::collector::sort_key::NaturalComparator;
use ::tantivy::collector::{SegmentSortKeyComputer, SortKeyComputer, TopNComputer};
use ::tantivy::columnar::ColumnValues;
use ::tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, Query, RegexQuery, TermQuery};
use ::tantivy::schema::IndexRecordOption;
use ::tantivy::{DocId, Score, SegmentReader, Term};
use chat_core::search::SearchCursor;
use std::sync::Arc;

use super::schema::{Fields, MAX_PREFIX_CHARS};

/// Chat filter AND, for every word, (a word starting with it, scored higher when the whole
/// word matches). `words` are lowercased alphanumeric runs (`query_words`).
pub fn build(fields: &Fields, chat_id: i64, words: &[String]) -> ::tantivy::Result<BooleanQuery> {
    // The filter must not add to the score: relevance is about the words only.
    let chat: Box<dyn Query> = Box::new(ConstScoreQuery::new(
        Box::new(TermQuery::new(
            Term::from_field_i64(fields.chat_id, chat_id),
            IndexRecordOption::Basic,
        )),
        0.0,
    ));
    let mut clauses = vec![(Occur::Must, chat)];
    for word in words {
        clauses.push((Occur::Must, Box::new(word_query(fields, word)?)));
    }
    Ok(BooleanQuery::new(clauses))
}

fn word_query(fields: &Fields, word: &str) -> ::tantivy::Result<BooleanQuery> {
    let prefix: Box<dyn Query> = if word.chars().count() <= MAX_PREFIX_CHARS {
        Box::new(TermQuery::new(
            Term::from_field_text(fields.body_prefix, word),
            IndexRecordOption::Basic,
        ))
    } else {
        Box::new(RegexQuery::from_pattern(
            &format!("{}.*", escape_regex(word)),
            fields.body,
        )?)
    };
    let whole: Box<dyn Query> = Box::new(TermQuery::new(
        Term::from_field_text(fields.body, word),
        IndexRecordOption::WithFreqs,
    ));
    // Like Elasticsearch's `prefix` query, a prefix match scores a constant; relevance
    // among matches comes from whole-word BM25. Both adapters then rank alike, and the
    // prefix clause costs no scoring.
    Ok(BooleanQuery::new(vec![
        (Occur::Must, Box::new(ConstScoreQuery::new(prefix, 1.0))),
        (Occur::Should, whole),
    ]))
}

/// Query words are alphanumeric already; escaping anyway keeps the regex a literal even if a
/// caller hands in something else.
fn escape_regex(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Ranks by (score, number) descending and leaves out everything at or before the cursor, so
/// a page after a cursor costs the same as the first page: no hits are collected to be skipped.
pub struct RankAfter {
    pub after: Option<SearchCursor>,
}

impl SortKeyComputer for RankAfter {
    type SortKey = (Score, i64);
    type Child = SegmentRank;
    type Comparator = NaturalComparator;

    fn requires_scoring(&self) -> bool {
        true
    }

    fn segment_sort_key_computer(&self, segment: &SegmentReader) -> ::tantivy::Result<SegmentRank> {
        let numbers = segment.fast_fields().i64("number")?.first_or_default_col(0);
        Ok(SegmentRank {
            numbers,
            after: self.after,
        })
    }
}

pub struct SegmentRank {
    numbers: Arc<dyn ColumnValues<i64>>,
    after: Option<SearchCursor>,
}

impl SegmentSortKeyComputer for SegmentRank {
    type SortKey = (Score, i64);
    type SegmentSortKey = (Score, i64);
    type SegmentComparator = NaturalComparator;

    fn segment_sort_key(&mut self, doc: DocId, score: Score) -> (Score, i64) {
        (score, self.numbers.get_val(doc))
    }

    fn compute_sort_key_and_collect<C: ::tantivy::collector::sort_key::Comparator<(Score, i64)>>(
        &mut self,
        doc: DocId,
        score: Score,
        top_n: &mut TopNComputer<(Score, i64), DocId, C>,
    ) {
        let key = self.segment_sort_key(doc, score);
        if is_after(key, self.after) {
            top_n.push(key, doc);
        }
    }

    fn convert_segment_sort_key(&self, key: (Score, i64)) -> (Score, i64) {
        key
    }
}

/// Strictly after the cursor in the order score desc, number desc.
fn is_after((score, number): (Score, i64), cursor: Option<SearchCursor>) -> bool {
    match cursor {
        None => true,
        Some(c) => score < c.score || (score == c.score && number < c.number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_strict_in_ranking_order() {
        let c = Some(SearchCursor {
            score: 2.0,
            number: 10,
        });
        assert!(is_after((1.0, 99), c));
        assert!(is_after((2.0, 9), c));
        assert!(!is_after((2.0, 10), c));
        assert!(!is_after((2.0, 11), c));
        assert!(!is_after((3.0, 1), c));
        assert!(is_after((3.0, 1), None));
    }

    #[test]
    fn regex_escaping_keeps_words_literal() {
        assert_eq!(escape_regex("héllo9"), "héllo9");
        assert_eq!(escape_regex("a.b*"), "a\\.b\\*");
    }
}
