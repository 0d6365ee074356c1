//! `WWW-Authenticate` challenges (RFC 7235 §4.1), as registries send them:
//! `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",
//! scope="repository:library/nginx:pull"`, or `Basic realm="Registry"`.
//!
//! Values may be quoted (and then hold commas, as scopes do) or bare
//! tokens; parameter names are case-insensitive. A header may carry several
//! challenges; the first of each scheme wins.

/// One challenge: its scheme (lowercased) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of `name` (case-insensitive), if the challenge has it.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every challenge in one header value; what cannot be read is skipped.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut challenges: Vec<Challenge> = Vec::new();
    let mut rest = header.trim_start();
    while !rest.is_empty() {
        // A scheme is a token followed by whitespace (or the end); a token
        // followed by `=` is a parameter of the current challenge.
        let (word, after) = split_token(rest);
        if word.is_empty() {
            // Stray separator: skip one character.
            rest = skip_one(rest);
            continue;
        }
        let after_ws = after.trim_start();
        if let Some(value_part) = after_ws.strip_prefix('=')
            && !value_part.starts_with('=')
        {
            let (value, tail) = read_value(value_part.trim_start());
            if let Some(current) = challenges.last_mut() {
                current.params.push((word.to_ascii_lowercase(), value));
            }
            rest = tail.trim_start();
        } else {
            challenges.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
            rest = after_ws;
        }
        rest = rest.trim_start_matches([',', ' ', '\t']);
    }
    challenges
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn split_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

fn skip_one(s: &str) -> &str {
    let mut chars = s.chars();
    chars.next();
    chars.as_str()
}

/// A quoted string (with `\` escapes) or a bare token68/token, and what
/// follows it.
fn read_value(s: &str) -> (String, &str) {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find([',', ' ', '\t']).unwrap_or(s.len());
        return (s[..end].to_owned(), &s[end..]);
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return (value, &quoted[i + 1..]),
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            c => value.push(c),
        }
    }
    // Unterminated: take what there is.
    (value, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_bearer() {
        let c = parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("Service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/nginx:pull"));
    }

    #[test]
    fn commas_inside_quotes_and_spaces_around() {
        let c = parse(
            r#"Bearer realm = "https://a/token" , scope="repository:a:pull,push", error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("scope"), Some("repository:a:pull,push"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[0].param("realm"), Some("https://a/token"));
    }

    #[test]
    fn basic_and_bare_values_and_several_challenges() {
        let c = parse(r#"Basic realm="Registry Realm", Bearer realm=https://t/x,service=reg"#);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://t/x"));
        assert_eq!(c[1].param("service"), Some("reg"));
    }

    #[test]
    fn escapes_and_garbage() {
        let c = parse(r#"Bearer realm="a\"b\\c""#);
        assert_eq!(c[0].param("realm"), Some(r#"a"b\c"#));
        assert_eq!(parse(""), vec![]);
        // Unterminated quotes and stray separators neither panic nor loop.
        let c = parse(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].param("realm"), Some("unterminated"));
        assert_eq!(parse(",,, ;;").len(), 0);
        let c = parse("Basic");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), None);
    }
}
