//! Writing a batch: dedupe by key, compare versions, replace.
//!
//! The writer is the only writer of its directory (tantivy's lock), so comparing with what is
//! committed plus what this batch already added is a complete check: nothing else can slip a
//! document in between.

use std::collections::HashMap;
use std::sync::Arc;

use ::tantivy::columnar::Column;
use ::tantivy::schema::IndexRecordOption;
use ::tantivy::tokenizer::TextAnalyzer;
use ::tantivy::{
    DocSet, IndexWriter, InvertedIndexReader, Searcher, SegmentReader, TERMINATED, Term,
};
use chat_core::search::{SearchDocument, document_key};

use super::schema::{Fields, to_document};

/// Versions of keys already present, committed or added earlier in this write.
pub struct Versions<'a> {
    fields: Fields,
    segments: Vec<(&'a SegmentReader, Arc<InvertedIndexReader>, Column<i64>)>,
    pending: HashMap<(i64, i64), i64>,
}

impl<'a> Versions<'a> {
    pub fn new(fields: Fields, committed: &'a Searcher) -> ::tantivy::Result<Self> {
        let segments = committed
            .segment_readers()
            .iter()
            .map(|segment| {
                Ok((
                    segment,
                    segment.inverted_index(fields.key)?,
                    segment.fast_fields().i64("version")?,
                ))
            })
            .collect::<::tantivy::Result<_>>()?;
        Ok(Versions {
            fields,
            segments,
            pending: HashMap::new(),
        })
    }

    fn current(&self, chat_id: i64, number: i64) -> ::tantivy::Result<Option<i64>> {
        if let Some(version) = self.pending.get(&(chat_id, number)) {
            return Ok(Some(*version));
        }
        let key = Term::from_field_text(self.fields.key, &document_key(chat_id, number));
        let mut newest = None;
        for (segment, inverted, versions) in &self.segments {
            let Some(mut postings) = inverted.read_postings(&key, IndexRecordOption::Basic)? else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if !segment.is_deleted(doc) {
                    newest = newest.max(versions.first(doc));
                }
                doc = postings.advance();
            }
        }
        Ok(newest)
    }

    /// Adds `doc` unless a newer or equal version is there; returns whether it was written.
    pub fn write(
        &mut self,
        writer: &IndexWriter,
        analyzer: &mut TextAnalyzer,
        doc: &SearchDocument,
    ) -> ::tantivy::Result<bool> {
        let current = self.current(doc.chat_id, doc.number)?;
        if current.is_some_and(|stored| stored >= doc.version) {
            return Ok(false);
        }
        if current.is_some() {
            writer.delete_term(Term::from_field_text(self.fields.key, &doc.key()));
        }
        writer.add_document(to_document(&self.fields, analyzer, doc))?;
        self.pending.insert((doc.chat_id, doc.number), doc.version);
        Ok(true)
    }
}

/// One document per key, the highest version.
pub fn dedupe(documents: Vec<SearchDocument>) -> Vec<SearchDocument> {
    let mut newest: HashMap<(i64, i64), SearchDocument> = HashMap::with_capacity(documents.len());
    for doc in documents {
        match newest.get(&(doc.chat_id, doc.number)) {
            Some(kept) if kept.version >= doc.version => {}
            _ => {
                newest.insert((doc.chat_id, doc.number), doc);
            }
        }
    }
    newest.into_values().collect()
}
