//! The highlighted fragment of a hit: matching words wrapped in `<em>…</em>`, everything else
//! HTML-escaped. The embedded index builds it here rather than with tantivy's snippet generator
//! because that one only knows the query's exact terms, not the words a prefix matched.

use std::ops::Range;

/// Roughly Elasticsearch's default fragment size, so both adapters return similar fragments.
pub const FRAGMENT_CHARS: usize = 150;
/// Context kept before the first match when the body has to be cut.
const LEAD_CHARS: usize = 30;

/// `words` are the body's words with their byte ranges; a word matches when it starts with
/// one of the (lowercased) query words.
pub fn highlight(body: &str, words: &[(String, Range<usize>)], query: &[String]) -> String {
    let matches: Vec<&Range<usize>> = words
        .iter()
        .filter(|(word, _)| query.iter().any(|q| word.starts_with(q.as_str())))
        .map(|(_, range)| range)
        .collect();
    let window = window(body, matches.first().map(|r| r.start).unwrap_or(0));
    let mut out = String::with_capacity(window.len() + 16);
    let mut at = window.start;
    for range in matches
        .into_iter()
        .filter(|r| r.start >= window.start && r.end <= window.end)
    {
        escape_into(&mut out, &body[at..range.start]);
        out.push_str("<em>");
        escape_into(&mut out, &body[range.clone()]);
        out.push_str("</em>");
        at = range.end;
    }
    escape_into(&mut out, &body[at..window.end]);
    out
}

/// A byte range of at most [`FRAGMENT_CHARS`] characters starting a little before `first`.
fn window(body: &str, first: usize) -> Range<usize> {
    if body.chars().count() <= FRAGMENT_CHARS {
        return 0..body.len();
    }
    let lead = body[..first]
        .chars()
        .rev()
        .take(LEAD_CHARS)
        .map(char::len_utf8)
        .sum::<usize>();
    let start = first - lead;
    let end = body[start..]
        .char_indices()
        .nth(FRAGMENT_CHARS)
        .map_or(body.len(), |(i, _)| start + i);
    start..end
}

/// The start of `body`, escaped, for a hit without highlight (never expected).
pub fn plain(body: &str) -> String {
    highlight(body, &[], &[])
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tantivy::schema::{words, words_analyzer};

    fn hl(body: &str, query: &[&str]) -> String {
        let query: Vec<String> = query.iter().map(|q| q.to_string()).collect();
        highlight(body, &words(&mut words_analyzer(), body), &query)
    }

    #[test]
    fn wraps_matching_words_and_escapes_the_rest() {
        assert_eq!(
            hl("Hello <b>help</b> & othello", &["hel"]),
            "<em>Hello</em> &lt;b&gt;<em>help</em>&lt;/b&gt; &amp; othello"
        );
    }

    #[test]
    fn long_bodies_are_cut_around_the_first_match() {
        let body = format!("{} needle {}", "x ".repeat(200), "y ".repeat(200));
        let fragment = hl(&body, &["needle"]);
        assert!(fragment.contains("<em>needle</em>"));
        assert!(fragment.chars().count() < FRAGMENT_CHARS + 10);
    }
}
