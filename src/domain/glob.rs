//! The small glob dialect of token targets: `*` matches any run of characters, `?` one character.
//! It is kept this small so that the same pattern can be evaluated in Rust and as SQL `like`.

/// Whether `text` matches `pattern`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position of the last '*' and the text position it currently absorbs up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, absorbed)) => {
                    p = star + 1;
                    t = absorbed + 1;
                    backtrack = Some((star, absorbed + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// The same pattern as a SQL `like` pattern (escape character `\`).
pub fn glob_to_like(pattern: &str) -> String {
    let mut like = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            other => like.push(other),
        }
    }
    like
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("web-*", "web-eu"));
        assert!(!glob_match("web-*", "api"));
        assert!(glob_match("*-prod", "eu-prod"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(glob_match("w?b", "web"));
        assert!(!glob_match("w?b", "wb"));
        assert!(glob_match("web", "web"));
        assert!(!glob_match("web", "webs"));
    }

    #[test]
    fn like_patterns_escape_sql_wildcards() {
        assert_eq!(glob_to_like("web-*"), "web-%");
        assert_eq!(glob_to_like("a_b?%"), "a\\_b_\\%");
    }
}
