//! Text from the cluster (log lines, Event messages, helm's output) made safe to print: one line,
//! no control characters, so that it can neither redraw a terminal (escape sequences) nor forge
//! lines of the client's own (a CI section marker, a second line).

use std::borrow::Cow;

/// `text` on one line: line breaks and other control characters written as escapes (`\n`,
/// `\u{1b}`), trailing whitespace dropped.
pub fn one_line(text: &str) -> Cow<'_, str> {
    let text = text.trim_end();
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => safe.push_str("\\n"),
            '\r' => safe.push_str("\\r"),
            c if is_control(c) => safe.extend(c.escape_unicode()),
            c => safe.push(c),
        }
    }
    Cow::Owned(safe)
}

/// C0 and C1 controls and DEL; a tab is harmless.
fn is_control(c: char) -> bool {
    c != '\t' && c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_text_cannot_break_lines_or_drive_a_terminal() {
        assert_eq!(one_line("plain\ttext  \r\n"), "plain\ttext");
        assert_eq!(one_line("a\nb\x1b[2J\u{9b}c"), "a\\nb\\u{1b}[2J\\u{9b}c");
        assert!(matches!(one_line("fine"), Cow::Borrowed("fine")));
    }
}
