//! Positions in the text files operators hand in, for `file:line:col` errors.

/// 1-based line and column (in characters) of byte `offset` in `text`; an
/// offset inside a character counts as that character, one past the end as the
/// end.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The text of a file an operator hands in: UTF-8 (a byte-order mark kept), or
/// UTF-16 with its byte-order mark (what spreadsheets save as "Unicode text"),
/// decoded. Anything else is an error saying where it stops being text.
pub fn decode_text(bytes: Vec<u8>) -> Result<String, String> {
    let utf16 = |pairs: &[u8], big_endian: bool| -> Result<String, String> {
        let units: Vec<u16> = pairs
            .chunks(2)
            .map(|p| match (p, big_endian) {
                ([a, b], true) => u16::from_be_bytes([*a, *b]),
                ([a, b], false) => u16::from_le_bytes([*a, *b]),
                _ => 0xDC00, // an odd last byte: a lone low surrogate, rejected below
            })
            .collect();
        String::from_utf16(&units)
            .map_err(|_| "not valid UTF-16 text, though it starts with a UTF-16 byte-order mark; save it as UTF-8".to_string())
    };
    match bytes.as_slice() {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        _ => String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            // Valid UTF-8 up to here, so this cannot fail.
            let (line, col) = line_col(std::str::from_utf8(valid).unwrap_or(""), valid.len());
            format!("not UTF-8 text: byte {} (line {line}, column {col}) is not UTF-8; save it as UTF-8", valid.len())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UTF-8 and UTF-16 (either byte order, with its mark) read as the same
    /// text; other bytes are an error with their place.
    #[test]
    fn files_are_read_as_utf8_or_utf16_with_a_byte_order_mark() {
        let text = "T1\r\nCaf\u{e9} #2\n";
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        for bytes in [text.as_bytes().to_vec(), le, be] {
            assert_eq!(decode_text(bytes).unwrap(), text);
        }
        let e = decode_text(b"T1\nT\xe92\n".to_vec()).unwrap_err();
        assert!(e.contains("byte 4 (line 2, column 2)"), "{e}");
        assert!(decode_text(vec![0xFF, 0xFE, 0x41]).is_err());
    }
}
