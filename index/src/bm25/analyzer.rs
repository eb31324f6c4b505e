//! Lucene's English analysis chain, as Anserini's default analyzer runs it.
//!
//! Every document and query goes through [`english_analyzer`] before it
//! reaches the BM25 index ([`super::index`]). Anserini's
//! `DefaultEnglishAnalyzer` (what Pyserini's BEIR "flat" indexes use) is
//!
//! ```text
//! StandardTokenizer -> EnglishPossessiveFilter -> LowerCaseFilter
//!                   -> StopFilter(EnglishAnalyzer.ENGLISH_STOP_WORDS_SET) -> PorterStemFilter
//! ```
//!
//! and each stage here reproduces its Lucene 10.5 counterpart exactly; the
//! chain is checked token for token against real Lucene output in
//! `tests/fixtures/reference/lucene_english_analyzer.jsonl`.

use tantivy::tokenizer::{TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

use super::porter;
use super::standard_tokenizer::{self, StandardTokenizer};

/// Name under which [`english_analyzer`] is registered in a tantivy index.
pub const ANALYZER_NAME: &str = "lucene_english";

/// Lucene's `EnglishAnalyzer.ENGLISH_STOP_WORDS_SET`.
pub const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The full chain as a tantivy analyzer.
pub fn english_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(StandardTokenizer::default())
        .filter(RewriteFilter(EnglishPossessive))
        .filter(RewriteFilter(LuceneLowerCase))
        .filter(RewriteFilter(EnglishStopWords))
        .filter(RewriteFilter(PorterStem))
        .build()
}

/// Analyzes `text` into its terms (convenience for tests and query parsing).
pub fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut stream = analyzer.token_stream(text);
    let mut terms = Vec::new();
    while stream.advance() {
        terms.push(stream.token().text.clone());
    }
    terms
}

/// The number of terms [`english_analyzer`] makes of `text`, without building
/// them: Lucene's field length (the norm's input). Stemming never drops a
/// token, so only tokenizing, the possessive filter, lower-casing (of short
/// tokens) and the stop filter matter.
pub fn count_terms(text: &str) -> usize {
    let mut lowered = String::new();
    standard_tokenizer::tokens(text)
        .filter(|(_, range)| {
            let token = strip_possessive(&text[range.clone()]);
            // Stop words have at most 5 chars, and lower-casing maps one char to one.
            if token.chars().nth(5).is_some() {
                return true;
            }
            lowered.clear();
            lowered.extend(token.chars().map(lucene_lower_case));
            !is_english_stop_word(&lowered)
        })
        .count()
}

/// `token` without a trailing `'s`, `’s` or `＇s`.
fn strip_possessive(token: &str) -> &str {
    token
        .strip_suffix(['s', 'S'])
        .and_then(|rest| rest.strip_suffix(['\'', '\u{2019}', '\u{FF07}']))
        .unwrap_or(token)
}

/// Java's `Character.toLowerCase(int)`.
#[inline]
fn lucene_lower_case(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// A per-token step of the chain: rewrites the token in place, or drops it
/// by returning `false`.
pub trait TokenRewrite: Clone + Send + Sync + 'static {
    /// Rewrites `token`; returns whether to keep it.
    fn rewrite(&self, token: &mut Token) -> bool;
}

/// Lucene's `EnglishPossessiveFilter`: strips a trailing `'s`, `’s` or `＇s`
/// (either case of `s`; it runs before lower-casing).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnglishPossessive;

impl TokenRewrite for EnglishPossessive {
    fn rewrite(&self, token: &mut Token) -> bool {
        let len = strip_possessive(&token.text).len();
        token.text.truncate(len);
        true
    }
}

/// Lucene's `LowerCaseFilter`: `Character.toLowerCase` on each code point.
///
/// That is the simple (one-to-one) Unicode lower-case mapping, without
/// context: `Σ` always becomes `σ`, and `İ` becomes `i` (where Rust's full
/// mapping gives `i̇`, two chars; it is the only character whose full
/// mapping differs from its simple one).
#[derive(Clone, Copy, Debug, Default)]
pub struct LuceneLowerCase;

impl TokenRewrite for LuceneLowerCase {
    fn rewrite(&self, token: &mut Token) -> bool {
        if token.text.is_ascii() {
            token.text.make_ascii_lowercase();
        } else if token
            .text
            .chars()
            .any(|c| c.to_lowercase().next() != Some(c))
        {
            let lowered: String = token
                .text
                .chars()
                .map(|c| c.to_lowercase().next().unwrap_or(c))
                .collect();
            token.text = lowered;
        }
        true
    }
}

/// Lucene's `StopFilter` with [`ENGLISH_STOP_WORDS`] (exact, case-sensitive
/// match on the lower-cased term).
#[derive(Clone, Copy, Debug, Default)]
pub struct EnglishStopWords;

impl TokenRewrite for EnglishStopWords {
    fn rewrite(&self, token: &mut Token) -> bool {
        !is_english_stop_word(&token.text)
    }
}

/// Whether `term` is in Lucene's English stop set.
pub fn is_english_stop_word(term: &str) -> bool {
    matches!(
        term,
        "a" | "an"
            | "and"
            | "are"
            | "as"
            | "at"
            | "be"
            | "but"
            | "by"
            | "for"
            | "if"
            | "in"
            | "into"
            | "is"
            | "it"
            | "no"
            | "not"
            | "of"
            | "on"
            | "or"
            | "such"
            | "that"
            | "the"
            | "their"
            | "then"
            | "there"
            | "these"
            | "they"
            | "this"
            | "to"
            | "was"
            | "will"
            | "with"
    )
}

/// Lucene's `PorterStemFilter` (see [`porter`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PorterStem;

impl TokenRewrite for PorterStem {
    fn rewrite(&self, token: &mut Token) -> bool {
        porter::stem_in_place(&mut token.text);
        true
    }
}

/// Adapts a [`TokenRewrite`] to tantivy's [`TokenFilter`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RewriteFilter<R>(pub R);

impl<R: TokenRewrite> TokenFilter for RewriteFilter<R> {
    type Tokenizer<T: Tokenizer> = RewriteTokenizer<R, T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> RewriteTokenizer<R, T> {
        RewriteTokenizer {
            rewrite: self.0,
            inner: tokenizer,
        }
    }
}

/// A tokenizer followed by a [`TokenRewrite`].
#[derive(Clone, Debug)]
pub struct RewriteTokenizer<R, T> {
    rewrite: R,
    inner: T,
}

impl<R: TokenRewrite, T: Tokenizer> Tokenizer for RewriteTokenizer<R, T> {
    type TokenStream<'a> = RewriteTokenStream<'a, R, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        RewriteTokenStream {
            rewrite: &self.rewrite,
            inner: self.inner.token_stream(text),
        }
    }
}

/// Token stream of [`RewriteTokenizer`].
pub struct RewriteTokenStream<'a, R, S> {
    rewrite: &'a R,
    inner: S,
}

impl<R: TokenRewrite, S: TokenStream> TokenStream for RewriteTokenStream<'_, R, S> {
    fn advance(&mut self) -> bool {
        while self.inner.advance() {
            if self.rewrite.rewrite(self.inner.token_mut()) {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.inner.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.inner.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_list_and_matcher_agree() {
        for w in ENGLISH_STOP_WORDS {
            assert!(is_english_stop_word(w), "{w}");
        }
        assert!(!is_english_stop_word("i"));
        assert!(!is_english_stop_word("The"));
    }

    #[test]
    fn chain_examples() {
        let mut analyzer = english_analyzer();
        assert_eq!(
            analyze(
                &mut analyzer,
                "John's dogs' bones aren't O'Neil's; the dogs' owner's car"
            ),
            vec!["john", "dog", "bone", "aren't", "o'neil", "dog", "owner", "car"]
        );
        assert_eq!(
            analyze(&mut analyzer, "İSTANBUL ΣΟΦΙΑΣ"),
            vec!["istanbul", "σοφιασ"]
        );
    }
}
