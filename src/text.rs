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
