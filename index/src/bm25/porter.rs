//! The original Porter stemmer, exactly as Lucene's `PorterStemmer` applies it.
//!
//! Last stage of the English analysis chain ([`super::analyzer`]). Lucene's
//! `PorterStemFilter` runs Martin Porter's "Release 3" Java stemmer (the 1980
//! algorithm plus the two published departures `-bli -> -ble` and
//! `-logi -> -log`), which differs from the Snowball "English" (Porter2)
//! stemmer that crates such as `rust-stemmers` implement: e.g. Snowball keeps
//! `generous` and stems `dying -> die`, Porter gives `gener` and `dy`.
//! No maintained crate reproduces Lucene's variant token for token (they work
//! on chars or bytes, while Lucene works on UTF-16 code units, which matters
//! for the word-length gate and double-consonant checks on non-ASCII text), so
//! it is implemented here, step for step, over Lucene's UTF-16 view of the
//! token (or the bytes of an ASCII token, which are the same units).
//!
//! Everything that is not one of `a e i o u` (or a `y` after a vowel) counts
//! as a consonant, including digits, punctuation and non-Latin letters, as in
//! Lucene.

/// A code unit of the word being stemmed: bytes for ASCII words, UTF-16 code
/// units otherwise (Lucene's `char`).
trait Unit: Copy + Eq + From<u8> {
    fn value(self) -> u32;
}
impl Unit for u8 {
    #[inline]
    fn value(self) -> u32 {
        self.into()
    }
}
impl Unit for u16 {
    #[inline]
    fn value(self) -> u32 {
        self.into()
    }
}

/// Stems `word` in place. Returns whether it changed.
pub fn stem_in_place(word: &mut String) -> bool {
    if word.is_ascii() {
        let mut units = std::mem::take(word).into_bytes();
        let changed = stem_units(&mut units);
        // The stemmer only shortens or rewrites ASCII tails of ASCII input.
        *word = String::from_utf8(units).unwrap_or_default();
        changed
    } else {
        let mut units: Vec<u16> = word.encode_utf16().collect();
        let changed = stem_units(&mut units);
        if changed {
            // Suffixes removed or rewritten are ASCII, so no surrogate pair is split.
            *word = String::from_utf16_lossy(&units);
        }
        changed
    }
}

/// Stems `word` (Lucene's `stem(char[], int, int)`), returning the stem.
pub fn stem(word: &str) -> String {
    let mut out = word.to_string();
    stem_in_place(&mut out);
    out
}

fn stem_units<T: Unit>(units: &mut Vec<T>) -> bool {
    let len = units.len();
    let mut s = Stemmer {
        b: units,
        k: len as isize - 1,
        j: 0,
        dirty: false,
    };
    // Words of one or two units are left alone (Lucene: `k > k0 + 1`).
    if s.k > 1 {
        s.step1();
        s.step2();
        s.step3();
        s.step4();
        s.step5();
        s.step6();
    }
    let new_len = (s.k + 1) as usize;
    let dirty = s.dirty || new_len != len;
    units.truncate(new_len);
    dirty
}

/// The stemmer state of Lucene's `PorterStemmer`: `b[0..=k]` is the word, `j`
/// the end of the stem found by the last successful [`Stemmer::ends`] (may be -1).
struct Stemmer<'a, T: Unit> {
    b: &'a mut Vec<T>,
    k: isize,
    j: isize,
    dirty: bool,
}

impl<T: Unit> Stemmer<'_, T> {
    #[inline]
    fn at(&self, i: isize) -> T {
        self.b[i as usize]
    }

    #[inline]
    fn is(&self, i: isize, c: u8) -> bool {
        self.at(i).value() == u32::from(c)
    }

    /// `cons(i)`: is `b[i]` a consonant?
    fn cons(&self, i: isize) -> bool {
        match self.ascii_at(i) {
            Some(b'a' | b'e' | b'i' | b'o' | b'u') => false,
            Some(b'y') => i == 0 || !self.cons(i - 1),
            _ => true,
        }
    }

    /// `m()`: the number of vowel-consonant sequences in `b[0..=j]` (the m of
    /// Porter's `[C](VC)^m[V]`).
    fn m(&self) -> usize {
        let Some(mut vowel) = self.skip(0, true) else {
            return 0;
        };
        let mut n = 0;
        loop {
            let Some(consonant) = self.skip(vowel, false) else {
                return n;
            };
            n += 1;
            let Some(next_vowel) = self.skip(consonant, true) else {
                return n;
            };
            vowel = next_vowel;
        }
    }

    /// The first position from `from` to `j` whose `cons` is not `consonant`; `None` when
    /// every one up to `j` is.
    fn skip(&self, from: isize, consonant: bool) -> Option<isize> {
        (from..=self.j).find(|&i| self.cons(i) != consonant)
    }

    /// `vowelinstem()`: does `b[0..=j]` contain a vowel?
    fn vowel_in_stem(&self) -> bool {
        (0..=self.j).any(|i| !self.cons(i))
    }

    /// `doublec(j)`: are `b[j-1]` and `b[j]` the same consonant?
    fn double_consonant(&self, j: isize) -> bool {
        j >= 1 && self.at(j) == self.at(j - 1) && self.cons(j)
    }

    /// `cvc(i)`: consonant-vowel-consonant ending at `i`, the last not `w`, `x` or `y`.
    fn cvc(&self, i: isize) -> bool {
        if i < 2 || !self.cons(i) || self.cons(i - 1) || !self.cons(i - 2) {
            return false;
        }
        !(self.is(i, b'w') || self.is(i, b'x') || self.is(i, b'y'))
    }

    /// `ends(s)`: does `b[0..=k]` end with `s`? On success sets `j` before it.
    fn ends(&mut self, s: &[u8]) -> bool {
        let l = s.len() as isize;
        let o = self.k - l + 1;
        if o < 0 {
            return false;
        }
        if !s
            .iter()
            .enumerate()
            .all(|(i, &c)| self.is(o + i as isize, c))
        {
            return false;
        }
        self.j = self.k - l;
        true
    }

    /// `setto(s)`: replace `b[j+1..=k]` with `s`.
    fn set_to(&mut self, s: &[u8]) {
        let o = (self.j + 1) as usize;
        if self.b.len() < o + s.len() {
            self.b.resize(o + s.len(), T::from(0));
        }
        for (i, &c) in s.iter().enumerate() {
            self.b[o + i] = T::from(c);
        }
        self.k = self.j + s.len() as isize;
        self.dirty = true;
    }

    /// `r(s)`: `setto(s)` if the stem has `m() > 0`.
    fn replace_if_measure(&mut self, s: &[u8]) {
        if self.m() > 0 {
            self.set_to(s);
        }
    }

    /// Tries suffixes in order; the first that matches is replaced (if `m() > 0`).
    fn replace_first(&mut self, rules: &[(&[u8], &[u8])]) {
        for (suffix, replacement) in rules {
            if self.ends(suffix) {
                self.replace_if_measure(replacement);
                return;
            }
        }
    }

    /// Plurals and -ed / -ing (Porter's steps 1a and 1b).
    fn step1(&mut self) {
        if self.is(self.k, b's') {
            if self.ends(b"sses") {
                self.k -= 2;
            } else if self.ends(b"ies") {
                self.set_to(b"i");
            } else if !self.is(self.k - 1, b's') {
                self.k -= 1;
            }
        }
        if self.ends(b"eed") {
            if self.m() > 0 {
                self.k -= 1;
            }
        } else if (self.ends(b"ed") || self.ends(b"ing")) && self.vowel_in_stem() {
            self.k = self.j;
            if self.ends(b"at") {
                self.set_to(b"ate");
            } else if self.ends(b"bl") {
                self.set_to(b"ble");
            } else if self.ends(b"iz") {
                self.set_to(b"ize");
            } else if self.double_consonant(self.k) {
                // Undouble the consonant, except l, s and z.
                if !matches!(self.ascii_at(self.k), Some(b'l' | b's' | b'z')) {
                    self.k -= 1;
                }
            } else if self.m() == 1 && self.cvc(self.k) {
                self.set_to(b"e");
            }
        }
    }

    /// Terminal y to i when the stem has another vowel (Porter's step 1c).
    fn step2(&mut self) {
        if self.ends(b"y") && self.vowel_in_stem() {
            let k = self.k as usize;
            self.b[k] = T::from(b'i');
            self.dirty = true;
        }
    }

    /// Double suffixes to single ones (Porter's step 2).
    fn step3(&mut self) {
        if self.k == 0 {
            return;
        }
        let rules: &[(&[u8], &[u8])] = match self.penultimate() {
            Some(b'a') => &[(b"ational", b"ate"), (b"tional", b"tion")],
            Some(b'c') => &[(b"enci", b"ence"), (b"anci", b"ance")],
            Some(b'e') => &[(b"izer", b"ize")],
            Some(b'l') => &[
                (b"bli", b"ble"),
                (b"alli", b"al"),
                (b"entli", b"ent"),
                (b"eli", b"e"),
                (b"ousli", b"ous"),
            ],
            Some(b'o') => &[(b"ization", b"ize"), (b"ation", b"ate"), (b"ator", b"ate")],
            Some(b's') => &[
                (b"alism", b"al"),
                (b"iveness", b"ive"),
                (b"fulness", b"ful"),
                (b"ousness", b"ous"),
            ],
            Some(b't') => &[(b"aliti", b"al"), (b"iviti", b"ive"), (b"biliti", b"ble")],
            Some(b'g') => &[(b"logi", b"log")],
            _ => &[],
        };
        self.replace_first(rules);
    }

    /// -ic-, -full, -ness etc. (Porter's step 3).
    fn step4(&mut self) {
        let rules: &[(&[u8], &[u8])] = match self.ascii_at(self.k) {
            Some(b'e') => &[(b"icate", b"ic"), (b"ative", b""), (b"alize", b"al")],
            Some(b'i') => &[(b"iciti", b"ic")],
            Some(b'l') => &[(b"ical", b"ic"), (b"ful", b"")],
            Some(b's') => &[(b"ness", b"")],
            _ => &[],
        };
        self.replace_first(rules);
    }

    /// -ant, -ence etc. in context `<c>vcvc<v>` (Porter's step 4).
    fn step5(&mut self) {
        if self.k == 0 {
            return;
        }
        let found = match self.penultimate() {
            Some(b'a') => self.ends(b"al"),
            Some(b'c') => self.ends(b"ance") || self.ends(b"ence"),
            Some(b'e') => self.ends(b"er"),
            Some(b'i') => self.ends(b"ic"),
            Some(b'l') => self.ends(b"able") || self.ends(b"ible"),
            Some(b'n') => {
                self.ends(b"ant") || self.ends(b"ement") || self.ends(b"ment") || self.ends(b"ent")
            }
            Some(b'o') => {
                (self.ends(b"ion")
                    && self.j >= 0
                    && (self.is(self.j, b's') || self.is(self.j, b't')))
                    || self.ends(b"ou")
            }
            Some(b's') => self.ends(b"ism"),
            Some(b't') => self.ends(b"ate") || self.ends(b"iti"),
            Some(b'u') => self.ends(b"ous"),
            Some(b'v') => self.ends(b"ive"),
            Some(b'z') => self.ends(b"ize"),
            _ => false,
        };
        if found && self.m() > 1 {
            self.k = self.j;
        }
    }

    /// Final -e, and -ll to -l, when the measure allows (Porter's step 5).
    fn step6(&mut self) {
        self.j = self.k;
        if self.is(self.k, b'e') {
            let a = self.m();
            if a > 1 || (a == 1 && !self.cvc(self.k - 1)) {
                self.k -= 1;
            }
        }
        if self.is(self.k, b'l') && self.double_consonant(self.k) && self.m() > 1 {
            self.k -= 1;
        }
    }

    /// `b[k-1]` if it is ASCII (the `switch (b[k - 1])` of Lucene's steps).
    fn penultimate(&self) -> Option<u8> {
        self.ascii_at(self.k - 1)
    }

    #[inline]
    fn ascii_at(&self, i: isize) -> Option<u8> {
        u8::try_from(self.at(i).value()).ok().filter(u8::is_ascii)
    }
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn porter_paper_examples() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("ties", "ti"),
            ("caress", "caress"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("disabled", "disabl"),
            ("matting", "mat"),
            ("mating", "mate"),
            ("meeting", "meet"),
            ("milling", "mill"),
            ("messing", "mess"),
            ("meetings", "meet"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("generalization", "gener"),
            ("electrical", "electr"),
            ("hopefulness", "hope"),
            ("adjustment", "adjust"),
            ("controlling", "control"),
            ("roll", "roll"),
            ("generous", "gener"),
            ("dying", "dy"),
            ("sky", "sky"),
            ("as", "as"),
            ("ion", "ion"),
            ("oed", "o"),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }

    #[test]
    fn non_ascii_words_stem_on_utf16_units() {
        assert_eq!(stem("naïve"), "naïv");
        assert_eq!(stem("façade"), "façad");
        assert_eq!(stem("résumé"), "résumé");
        assert_eq!(stem("straße"), "straße");
        // Lucene sees the surrogate halves of 𝐀𝐀, not a doubled consonant (which a
        // char-based stemmer would undouble to "a𝐀").
        assert_eq!(stem("a𝐀𝐀ing"), "a𝐀𝐀");
    }
}
