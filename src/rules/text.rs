//! Text as rules compare it: the event's text fields, codes that ignore case,
//! what each field can hold, and lists looked up by hash and confirmed on the
//! text (a hash match alone never decides: ids are chosen by whoever pays).

use crate::source::event::MAX_FIELD_LEN;
use crate::state::mix64;

/// Event string fields rules can compare, in slot order.
pub const STRING_FIELDS: [&str; 9] = [
    "account.id",
    "card.id",
    "terminal.id",
    "device.id",
    "ip",
    "country",
    "currency",
    "channel",
    "mcc",
];

/// Seed of text hashes. Fixed and public: a hash only narrows the search, and
/// every hit is confirmed on the text, so a forged collision buys nothing.
pub const TEXT_SEED: u64 = 0x0515_71e5;

/// Number of text fields ([`STRING_FIELDS`]).
pub const N_TEXT: usize = STRING_FIELDS.len();

/// Index of text field `name` in [`STRING_FIELDS`] (at compile time).
const fn field_index(name: &str) -> usize {
    let mut i = 0;
    while i < N_TEXT {
        let (a, b) = (STRING_FIELDS[i].as_bytes(), name.as_bytes());
        let mut k = 0;
        while k < a.len() && k < b.len() && a[k] == b[k] {
            k += 1;
        }
        if k == a.len() && k == b.len() {
            return i;
        }
        i += 1;
    }
    panic!("not a text field")
}

/// Bit mask of the fields that hold codes.
const CODES: u16 = 1 << field_index("country") | 1 << field_index("currency");

/// Whether field `field` holds a code (`country`, ISO 3166; `currency`, ISO
/// 4217), which rules compare without regard to ASCII case.
#[inline]
pub fn is_code(field: u8) -> bool {
    CODES & (1 << field) != 0
}

/// `s` as field `field` is compared: codes in ASCII upper case.
pub fn normalise(field: u8, s: &str) -> String {
    if is_code(field) {
        s.to_ascii_uppercase()
    } else {
        s.to_string()
    }
}

/// Why field `field` of a valid event can never hold `s` (normalised), if so.
pub fn never_holds(field: u8, s: &str) -> Option<String> {
    let name = STRING_FIELDS[usize::from(field)];
    if s.is_empty() || s.len() > MAX_FIELD_LEN {
        return Some(format!("{name} holds 1 to {MAX_FIELD_LEN} bytes"));
    }
    match name {
        "currency" if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some("currency is a 3-letter ISO 4217 code".into())
        }
        // Events carry the mcc as a number; rules see it written without leading zeros.
        "mcc"
            if s.parse::<u16>()
                .map_or(true, |n| n > 9999 || n.to_string() != s) =>
        {
            Some("mcc is a number from 0 to 9999 written without leading zeros".into())
        }
        _ => None,
    }
}

/// 64-bit hash of `s`, of its ASCII upper case when `code`; never 0.
/// FNV-1a with a seeded start and a splitmix64 finaliser (as `state::key_hash`).
#[inline]
pub fn text_hash(s: &str, code: bool) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ TEXT_SEED.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for &b in s.as_bytes() {
        let b = if code { b.to_ascii_uppercase() } else { b };
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h).max(1)
}

/// Whether `a` and `b` are the same text (ignoring ASCII case when `code`).
#[inline]
pub fn same_text(a: &str, b: &str, code: bool) -> bool {
    if code {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// An event's text fields as rules read them: the text (`None` = missing) and,
/// for the fields that `in` looks up in a list, its [`text_hash`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Texts<'a> {
    text: [Option<&'a str>; N_TEXT],
    hash: [u64; N_TEXT],
}

impl<'a> Texts<'a> {
    /// `fields` in [`STRING_FIELDS`] order; those in bit mask `hashed` are hashed.
    #[inline]
    pub fn new(fields: [Option<&'a str>; N_TEXT], hashed: u16) -> Self {
        let mut hash = [0; N_TEXT];
        for (i, (h, f)) in hash.iter_mut().zip(&fields).enumerate() {
            if let Some(s) = f.filter(|_| hashed & (1 << i) != 0) {
                *h = text_hash(s, is_code(i as u8));
            }
        }
        Self { text: fields, hash }
    }

    /// The text of field `field`, if the event has it.
    #[inline]
    pub fn get(&self, field: u8) -> Option<&'a str> {
        self.text.get(usize::from(field)).copied().flatten()
    }

    /// The [`text_hash`] of field `field` (0 unless hashed by [`Texts::new`]).
    #[inline]
    pub fn hash(&self, field: u8) -> u64 {
        self.hash.get(usize::from(field)).copied().unwrap_or(0)
    }
}

/// A compiled list: its texts in the order of their hashes, and its numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompiledList {
    /// Sorted [`text_hash`]es of the texts: the pre-filter.
    hashes: Vec<u64>,
    /// The texts, `texts[i]` hashing to `hashes[i]`: what a hit is confirmed on.
    texts: Vec<Box<str>>,
    /// Sorted numbers (the entries that read as numbers).
    numbers: Vec<f64>,
    /// Texts are codes: upper-cased, compared without regard to case.
    code: bool,
    /// For a code copy of a named list, that list's index.
    pub code_copy_of: Option<u16>,
}

impl CompiledList {
    /// A list of `texts` (upper-cased when `code`) and `numbers`.
    pub fn new<'s>(
        texts: impl IntoIterator<Item = &'s str>,
        numbers: impl IntoIterator<Item = f64>,
        code: bool,
    ) -> Self {
        let mut texts: Vec<(u64, Box<str>)> = texts
            .into_iter()
            .map(|t| {
                let t = if code {
                    t.to_ascii_uppercase()
                } else {
                    t.to_string()
                };
                (text_hash(&t, code), t.into_boxed_str())
            })
            .collect();
        texts.sort_unstable();
        texts.dedup();
        // `+ 0.0` turns -0.0 into 0.0: total_cmp tells them apart, `==` does not.
        let mut numbers: Vec<f64> = numbers
            .into_iter()
            .filter(|n| !n.is_nan())
            .map(|n| n + 0.0)
            .collect();
        numbers.sort_by(f64::total_cmp);
        numbers.dedup();
        let (hashes, texts) = texts.into_iter().unzip();
        Self {
            hashes,
            texts,
            numbers,
            code,
            code_copy_of: None,
        }
    }

    /// The entries of `entries` that read as numbers.
    pub fn numbers_of<'s>(entries: impl IntoIterator<Item = &'s str>) -> Vec<f64> {
        entries
            .into_iter()
            .filter_map(|e| e.parse::<f64>().ok())
            .collect()
    }

    /// The same list with its texts as codes (for `country` and `currency`).
    pub fn code_copy(&self, of: u16) -> Self {
        let mut copy = Self::new(
            self.texts.iter().map(|t| &**t),
            self.numbers.iter().copied(),
            true,
        );
        copy.code_copy_of = Some(of);
        copy
    }

    /// Whether the list holds texts.
    pub fn has_texts(&self) -> bool {
        !self.texts.is_empty()
    }

    /// Whether the list holds numbers.
    pub fn has_numbers(&self) -> bool {
        !self.numbers.is_empty()
    }

    /// Whether the texts are codes (compared without regard to case).
    pub fn is_code(&self) -> bool {
        self.code
    }

    /// Whether `s`, whose [`text_hash`] (as this list's texts are hashed) is
    /// `hash`, is in the list: every entry with that hash is compared with `s`.
    #[inline]
    pub fn contains_text(&self, s: &str, hash: u64) -> bool {
        let first = self.hashes.partition_point(|&h| h < hash);
        // Most texts are on no list: one comparison says so.
        self.hashes.get(first) == Some(&hash) && self.confirm(first, s, hash)
    }

    /// Whether an entry from `first` on with hash `hash` is `s`.
    #[inline(never)]
    fn confirm(&self, first: usize, s: &str, hash: u64) -> bool {
        self.hashes[first..]
            .iter()
            .zip(&self.texts[first..])
            .take_while(|(&h, _)| h == hash)
            .any(|(_, t)| same_text(t, s, self.code))
    }

    /// Whether number `x` (not missing) is in the list.
    #[inline]
    pub fn contains_number(&self, x: f64) -> bool {
        let x = x + 0.0;
        self.numbers.binary_search_by(|n| n.total_cmp(&x)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str) -> u8 {
        STRING_FIELDS.iter().position(|f| *f == name).unwrap() as u8
    }

    #[test]
    fn codes_ignore_case_and_other_fields_do_not() {
        let (country, terminal) = (field("country"), field("terminal.id"));
        assert!(is_code(country) && is_code(field("currency")) && !is_code(terminal));
        assert_eq!(normalise(country, "fr"), "FR");
        assert_eq!(normalise(terminal, "pos-1"), "pos-1");
        assert_eq!(text_hash("fr", true), text_hash("FR", true));
        assert_eq!(text_hash("FR", true), text_hash("FR", false));
        assert_ne!(text_hash("fr", false), text_hash("FR", false));
        let countries = CompiledList::new(["fr", "DE"], [], true);
        for (s, want) in [("FR", true), ("fr", true), ("De", true), ("NL", false)] {
            assert_eq!(countries.contains_text(s, text_hash(s, true)), want, "{s}");
        }
        let terminals = CompiledList::new(["POS#12"], [], false);
        assert!(terminals.contains_text("POS#12", text_hash("POS#12", false)));
        assert!(!terminals.contains_text("pos#12", text_hash("pos#12", false)));
    }

    #[test]
    fn what_fields_can_never_hold() {
        let cases = [
            ("currency", "EUR", true),
            ("currency", "EURO", false),
            ("currency", "E1R", false),
            ("mcc", "5411", true),
            ("mcc", "0", true),
            ("mcc", "0742", false),
            ("mcc", "10000", false),
            ("mcc", "54a1", false),
            ("country", "FR", true),
            ("terminal.id", "POS#12", true),
            ("terminal.id", "", false),
        ];
        for (name, s, holds) in cases {
            assert_eq!(never_holds(field(name), s).is_none(), holds, "{name} {s}");
        }
        assert!(never_holds(field("device.id"), &"x".repeat(MAX_FIELD_LEN + 1)).is_some());
    }

    #[test]
    fn texts_are_hashed_only_where_asked_and_missing_stays_missing() {
        let mut fields = [None; N_TEXT];
        fields[usize::from(field("country"))] = Some("fr");
        fields[usize::from(field("terminal.id"))] = Some("T1");
        let texts = Texts::new(fields, 1 << field("country"));
        assert_eq!(texts.hash(field("country")), text_hash("FR", true));
        assert_eq!(texts.hash(field("terminal.id")), 0);
        assert_eq!(texts.get(field("terminal.id")), Some("T1"));
        assert_eq!(texts.get(field("device.id")), None);
        assert_eq!(Texts::default().get(field("country")), None);
    }
}
