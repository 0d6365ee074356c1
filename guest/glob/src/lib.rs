//! Glob matching on tags and repository names, one meaning everywhere:
//! the host's access rules (`[[auth.rules]] repositories`) and the policy
//! plugins' settings use this crate (the plugins compile it to wasm).
//!
//! - Within a name: `*` is any run of characters, `?` is one character.
//! - In a repository pattern, `*` and `?` never match `/`; a path component
//!   that is exactly `**` matches any number of whole components, none
//!   included (`team/**` matches `team`, `team/app` and `team/a/b`).
//!
//! Names come from requests, patterns from an operator. Both matchers fill
//! a table row by row, so no name can make a pattern backtrack: the work is
//! at most pattern length × name length per component pair.

/// Whether `tag` matches `pattern` (`*` any run, `?` one character).
pub fn tag_matches(pattern: &str, tag: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = tag.chars().collect();
    within(&pattern, &text)
}

/// Whether repository `name` matches `pattern`, component by component.
pub fn repository_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<Vec<char>> = pattern.split('/').map(|c| c.chars().collect()).collect();
    let name: Vec<Vec<char>> = name.split('/').map(|c| c.chars().collect()).collect();
    // row[j]: the pattern components so far match the first j name components.
    let mut row = vec![false; name.len() + 1];
    row[0] = true;
    for component in &pattern {
        let mut next = vec![false; name.len() + 1];
        if component[..] == ['*', '*'] {
            // Zero components, or one more after any number.
            next[0] = row[0];
            for j in 1..=name.len() {
                next[j] = row[j] || next[j - 1];
            }
        } else {
            for j in 1..=name.len() {
                next[j] = row[j - 1] && within(component, &name[j - 1]);
            }
        }
        row = next;
    }
    row[name.len()]
}

/// `text` against `pattern` with `*` and `?`, one table row per pattern
/// character (`row[j]`: the pattern so far matches the first `j` characters).
fn within(pattern: &[char], text: &[char]) -> bool {
    let mut row = vec![false; text.len() + 1];
    row[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == '*' {
            next[0] = row[0];
            for j in 1..=text.len() {
                next[j] = row[j] || next[j - 1];
            }
        } else {
            for j in 1..=text.len() {
                next[j] = row[j - 1] && (p == '?' || p == text[j - 1]);
            }
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
        assert!(tag_matches("", ""));
        assert!(tag_matches("a*b*c", "aXbYbZc"));
        assert!(!tag_matches("a*b*c", "aXbYbZ"));
        assert!(tag_matches("**", "anything"));
    }

    #[test]
    fn repositories() {
        assert!(repository_matches("library/*", "library/alpine"));
        assert!(!repository_matches("library/*", "library/x/alpine"));
        assert!(repository_matches("team/**", "team/a/b/c"));
        assert!(repository_matches("team/**", "team"));
        assert!(!repository_matches("team/**", "teams/a"));
        assert!(!repository_matches("team/*", "teams/app"));
        assert!(repository_matches("**", "a/b"));
        assert!(repository_matches("**", "a"));
        assert!(repository_matches("*", "alpine"));
        assert!(!repository_matches("*", "a/b"));
        assert!(repository_matches("*/prod-*", "acme/prod-api"));
        assert!(repository_matches("*/base", "lib/base"));
        assert!(!repository_matches("a?b", "a/b"));
        assert!(repository_matches("app-?", "app-1"));
        assert!(!repository_matches("app", "app2"));
        assert!(repository_matches("**/base", "x/y/base"));
        assert!(repository_matches("**/base", "base"));
        assert!(repository_matches("a/**/z", "a/z"));
        assert!(repository_matches("a/**/z", "a/b/c/z"));
        assert!(!repository_matches("a/**/z", "a/b/c"));
        assert!(repository_matches("a/**/**/z", "a/b/z"));
    }

    #[test]
    fn no_pattern_backtracks_exponentially() {
        // A backtracking matcher tries exponentially many splits on these.
        let name = "a".repeat(255);
        assert!(tag_matches(&"*a".repeat(40), &name));
        assert!(!tag_matches(&("*a".repeat(40) + "b"), &name));
        assert!(!repository_matches(&("*a".repeat(40) + "b"), &name));
        let deep = vec!["a"; 127].join("/");
        let pattern = "**/".repeat(40) + "b";
        assert!(!repository_matches(&pattern, &deep));
        assert!(repository_matches(&("**/".repeat(40) + "a"), &deep));
    }
}
