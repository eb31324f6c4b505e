//! Lucene's `StandardTokenizer` (UAX#29 word breaks) as a tantivy [`Tokenizer`].
//!
//! First stage of the English analysis chain ([`super::analyzer`]). The scanner
//! replays the JFlex DFA that Lucene 10.5 generates from
//! `StandardTokenizerImpl.jflex` (tables in `standard_tokenizer_tables.rs`,
//! extracted from the Lucene jar by `index/tools/lucene_tokenizer_tables.py`),
//! so segmentation, the choice of which segments are tokens (letters and
//! numbers, each CJK ideograph and hiragana alone, katakana / hangul / South
//! East Asian runs, emoji sequences) and the Unicode 9 character data are
//! Lucene's own.
//!
//! Like Lucene, a token is at most [`MAX_TOKEN_LENGTH`] UTF-16 code units:
//! Lucene's scanner buffer holds that many chars, and a longer match is cut
//! where the buffer ends and scanning resumes after the cut.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

#[allow(clippy::all)]
mod tables {
    include!("standard_tokenizer_tables.rs");
}

/// Lucene's `StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH`, in UTF-16 code units.
pub const MAX_TOKEN_LENGTH: usize = 255;

/// Lucene's token types (`StandardTokenizer.TOKEN_TYPES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// `<ALPHANUM>`: letters and digits (UAX#29 "words").
    Alphanum,
    /// `<NUM>`: a number (may contain `.`/`,` between digits).
    Num,
    /// `<SOUTHEAST_ASIAN>`: a run of Thai, Lao, Myanmar, Khmer... characters.
    SouthEastAsian,
    /// `<IDEOGRAPHIC>`: one Han character.
    Ideographic,
    /// `<HIRAGANA>`: one hiragana character.
    Hiragana,
    /// `<KATAKANA>`: a run of katakana.
    Katakana,
    /// `<HANGUL>`: a run of hangul.
    Hangul,
    /// `<EMOJI>`: an emoji sequence.
    Emoji,
}

/// JFlex character class of a code point.
#[inline]
fn char_class(c: char) -> usize {
    let cp = c as usize;
    let block = tables::CMAP_BLOCK_INDEX[cp / tables::CMAP_BLOCK_LEN] as usize;
    tables::CMAP_BLOCKS[block * tables::CMAP_BLOCK_LEN + cp % tables::CMAP_BLOCK_LEN] as usize
}

/// One longest match of the DFA starting at byte `start` of `text`: returns the
/// token type (`None` for skipped text) and the byte offset where the match ends.
///
/// Mirrors JFlex's generated `getNextToken()`: follow transitions until the DFA
/// rejects, remembering the last accepting state, and stop at a state marked
/// final. Reading past [`MAX_TOKEN_LENGTH`] UTF-16 units from `start` behaves
/// as end of input, as Lucene's full scanner buffer does.
fn next_match(text: &str, start: usize) -> (Option<TokenType>, usize) {
    let mut state = 0usize;
    let mut action_state: Option<usize> =
        (tables::ATTRIBUTE[0] & tables::ATTR_ACCEPTING != 0).then_some(0);
    let mut marked = start;
    let mut utf16_len = 0usize;
    for (offset, c) in text[start..].char_indices() {
        utf16_len += c.len_utf16();
        if utf16_len > MAX_TOKEN_LENGTH {
            break;
        }
        let next = tables::TRANS[tables::ROWMAP[state] as usize + char_class(c)];
        if next < 0 {
            break;
        }
        state = next as usize;
        let attributes = tables::ATTRIBUTE[state];
        if attributes & tables::ATTR_ACCEPTING != 0 {
            action_state = Some(state);
            marked = start + offset + c.len_utf8();
            if attributes & tables::ATTR_FINAL != 0 {
                break;
            }
        }
    }
    match action_state {
        Some(s) if marked > start => (
            tables::ACTION_TOKEN_TYPE[tables::ACTION[s] as usize],
            marked,
        ),
        // The grammar's catch-all rule accepts any single character, so this only
        // guards against looping: skip one character.
        _ => (
            None,
            start + text[start..].chars().next().map_or(1, char::len_utf8),
        ),
    }
}

/// Iterates over the tokens of `text` as `(type, byte range)`.
pub fn tokens(text: &str) -> impl Iterator<Item = (TokenType, std::ops::Range<usize>)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos < text.len() {
            let start = pos;
            let (token_type, end) = next_match(text, start);
            pos = end;
            if let Some(token_type) = token_type {
                return Some((token_type, start..end));
            }
        }
        None
    })
}

/// Lucene's `StandardTokenizer` with the default maximum token length.
#[derive(Clone, Debug, Default)]
pub struct StandardTokenizer {
    token: Token,
}

/// Token stream of [`StandardTokenizer`].
pub struct StandardTokenStream<'a> {
    text: &'a str,
    pos: usize,
    token: &'a mut Token,
}

impl Tokenizer for StandardTokenizer {
    type TokenStream<'a> = StandardTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> StandardTokenStream<'a> {
        self.token.reset();
        StandardTokenStream {
            text,
            pos: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for StandardTokenStream<'_> {
    fn advance(&mut self) -> bool {
        while self.pos < self.text.len() {
            let start = self.pos;
            let (token_type, end) = next_match(self.text, start);
            self.pos = end;
            if token_type.is_some() {
                self.token.text.clear();
                self.token.text.push_str(&self.text[start..end]);
                self.token.offset_from = start;
                self.token.offset_to = end;
                self.token.position = self.token.position.wrapping_add(1);
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<(TokenType, &str)> {
        tokens(text).map(|(t, r)| (t, &text[r])).collect()
    }

    #[test]
    fn token_types() {
        use TokenType::*;
        assert_eq!(
            toks("abc 3.14 東京 は カタカナ 한국어 ไทย 😀"),
            vec![
                (Alphanum, "abc"),
                (Num, "3.14"),
                (Ideographic, "東"),
                (Ideographic, "京"),
                (Hiragana, "は"),
                (Katakana, "カタカナ"),
                (Hangul, "한국어"),
                (SouthEastAsian, "ไทย"),
                (Emoji, "😀"),
            ]
        );
    }

    #[test]
    fn long_tokens_are_cut_at_255_utf16_units() {
        let long = "a".repeat(600);
        let lens: Vec<usize> = tokens(&long).map(|(_, r)| r.len()).collect();
        assert_eq!(lens, vec![255, 255, 90]);
        // A supplementary character (2 UTF-16 units) that would straddle the limit
        // starts the next token.
        let text = format!("{}{}", "a".repeat(254), "𝐀b");
        let parts: Vec<&str> = tokens(&text).map(|(_, r)| &text[r]).collect();
        assert_eq!(parts, vec!["a".repeat(254).as_str(), "𝐀b"]);
    }

    #[test]
    fn tantivy_stream_positions() {
        let mut tokenizer = StandardTokenizer::default();
        let mut stream = tokenizer.token_stream("Hello, world!");
        let mut seen = Vec::new();
        while stream.advance() {
            let t = stream.token();
            seen.push((t.text.clone(), t.position, t.offset_from, t.offset_to));
        }
        assert_eq!(
            seen,
            vec![
                ("Hello".to_string(), 0, 0, 5),
                ("world".to_string(), 1, 7, 12)
            ]
        );
    }
}
