//! Scopes of the Docker token specification:
//! `repository:<name>:<action>[,<action>...]`, `registry:catalog:*`.

use serde::{Deserialize, Serialize};

/// One entry of a token's `access` claim (and of a requested scope).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceActions {
    /// Parses a `scope` parameter. The name may contain `/` but not `:`,
    /// so the type ends at the first `:` and the actions start after the
    /// last. A type may carry a class (`repository(plugin)`), ignored.
    pub fn parse(scope: &str) -> Option<Self> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// Whether this entry grants `action` on repository `name`.
    pub fn grants(&self, name: &str, action: &str) -> bool {
        self.kind == "repository"
            && self.name == name
            && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// The `scope` value for a challenge.
pub fn repository_scope(name: &str, actions: &[&str]) -> String {
    format!("repository:{name}:{}", actions.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        let s = ResourceActions::parse("repository:team/app:pull,push").expect("scope");
        assert_eq!(s.kind, "repository");
        assert_eq!(s.name, "team/app");
        assert_eq!(s.actions, ["pull", "push"]);
        assert!(s.grants("team/app", "push"));
        assert!(!s.grants("team/app", "delete"));
        assert!(!s.grants("team/other", "pull"));
        let c = ResourceActions::parse("registry:catalog:*").expect("catalog");
        assert_eq!((c.kind.as_str(), c.name.as_str()), ("registry", "catalog"));
        let p = ResourceActions::parse("repository(plugin):x:pull").expect("class");
        assert_eq!(p.kind, "repository");
        assert!(ResourceActions::parse("repository").is_none());
        assert!(ResourceActions::parse("repository::pull").is_none());
    }
}
