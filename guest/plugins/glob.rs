//! Glob matching shared by the policy plugins (each includes this file with
//! `#[path]`, so a plugin stays one crate with no dependencies of its own).

/// Whether `tag` matches `pattern`: `*` is any run of characters, `?` one.
pub fn tag_matches(pattern: &str, tag: &str) -> bool {
    matches(pattern, tag, false)
}

/// Whether repository `name` matches `pattern`: `*` is any run within one
/// path component, `**` any run across components, `?` one character
/// other than `/`.
pub fn repository_matches(pattern: &str, name: &str) -> bool {
    matches(pattern, name, true)
}

#[derive(Clone, Copy, PartialEq)]
enum Token {
    Literal(char),
    One,
    /// Stops at `/` when matching paths.
    Star,
    Stars,
}

fn tokens(pattern: &str, paths: bool) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(match c {
            '?' => Token::One,
            '*' if chars.peek() == Some(&'*') => {
                while chars.next_if_eq(&'*').is_some() {}
                if paths { Token::Stars } else { Token::Star }
            }
            '*' => Token::Star,
            c => Token::Literal(c),
        });
    }
    out
}

/// One row of the classic table per pattern token (`row[j]`: the tokens so
/// far match the first `j` characters), so no input can make it backtrack
/// exponentially: a few thousand steps for any real name and pattern.
fn matches(pattern: &str, text: &str, paths: bool) -> bool {
    let text: Vec<char> = text.chars().collect();
    let crosses = |c: char| !(paths && c == '/');
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for token in tokens(pattern, paths) {
        let mut next = vec![false; text.len() + 1];
        for j in 0..=text.len() {
            let prev = j.checked_sub(1).map(|i| (i, text[i]));
            next[j] = match (token, prev) {
                (Token::Star | Token::Stars, None) => row[j],
                (Token::Star, Some((_, c))) => row[j] || (next[j - 1] && crosses(c)),
                (Token::Stars, Some(_)) => row[j] || next[j - 1],
                (_, None) => false,
                (Token::One, Some((i, c))) => row[i] && crosses(c),
                (Token::Literal(l), Some((i, c))) => row[i] && l == c,
            };
        }
        row = next;
    }
    row[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert!(tag_matches("v*", "v1"));
        assert!(tag_matches("v*", "v"));
        assert!(tag_matches("release-*", "release-2024.1"));
        assert!(!tag_matches("release-*", "release"));
        assert!(tag_matches("latest", "latest"));
        assert!(!tag_matches("v*", "latest"));
        assert!(tag_matches("v?.*", "v1.2"));
        assert!(!tag_matches("v?.*", "v10.2"));
        assert!(tag_matches("*-rc*", "1.0-rc3"));
        assert!(tag_matches("*", ""));
        assert!(!tag_matches("", "a"));
        assert!(tag_matches("a*b*c", "aXbYbZc"));
        assert!(!tag_matches("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn repositories() {
        assert!(repository_matches("library/*", "library/alpine"));
        assert!(!repository_matches("library/*", "library/x/alpine"));
        assert!(repository_matches("team/**", "team/a/b/c"));
        assert!(!repository_matches("team/**", "teams/a"));
        assert!(repository_matches("**", "a/b"));
        assert!(repository_matches("*", "alpine"));
        assert!(!repository_matches("*", "a/b"));
        assert!(repository_matches("*/prod-*", "acme/prod-api"));
        assert!(!repository_matches("a?b", "a/b"));
        assert!(repository_matches("**/base", "x/y/base"));
    }

    #[test]
    fn no_exponential_backtracking() {
        let name = "a".repeat(255);
        assert!(tag_matches(&"*a".repeat(40), &name));
        assert!(!tag_matches(&("*a".repeat(40) + "b"), &name));
        assert!(!repository_matches(&("**a*".repeat(40) + "b"), &name));
    }
}
