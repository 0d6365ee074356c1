//! Access rules: which actions an identity may take on a repository.

use crate::config::{AccessRule, Action, AuthConfig};
use std::collections::{BTreeMap, BTreeSet};

/// Who is asking, once credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User(String),
}

impl Identity {
    pub fn name(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::User(name) => Some(name),
        }
    }
}

/// The configured rules, with groups resolved.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<AccessRule>,
    groups: BTreeMap<String, Vec<String>>,
}

impl Policy {
    pub fn from_config(config: &AuthConfig) -> Self {
        let mut rules = config.rules.clone();
        if rules.is_empty() {
            // registry:2's htpasswd behaviour: a login may do everything.
            rules.push(AccessRule {
                repositories: vec!["**".into()],
                users: vec!["*".into()],
                actions: vec![Action::Pull, Action::Push, Action::Delete],
                ..AccessRule::default()
            });
        }
        if config.anonymous_pull {
            rules.push(AccessRule {
                repositories: vec!["**".into()],
                anonymous: true,
                actions: vec![Action::Pull],
                ..AccessRule::default()
            });
        }
        Self {
            rules,
            groups: config.groups.clone(),
        }
    }

    /// Everything `who` may do on `repository`.
    pub fn allowed(&self, who: &Identity, repository: &str) -> BTreeSet<Action> {
        self.rules
            .iter()
            .filter(|rule| self.applies_to(rule, who))
            .filter(|rule| rule.repositories.iter().any(|p| glob(p, repository)))
            .flat_map(|rule| rule.actions.iter().copied())
            .collect()
    }

    /// Whether anonymous callers have any access at all (then `/v2/` lets
    /// them in without a challenge in basic mode).
    pub fn anonymous_has_access(&self) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.anonymous && !rule.actions.is_empty())
    }

    fn applies_to(&self, rule: &AccessRule, who: &Identity) -> bool {
        match who {
            Identity::Anonymous => rule.anonymous,
            Identity::User(name) => {
                rule.users.iter().any(|u| u == "*" || u == name)
                    || rule.groups.iter().any(|g| {
                        self.groups
                            .get(g)
                            .is_some_and(|members| members.iter().any(|m| m == name))
                    })
            }
        }
    }
}

/// Glob match on repository names: `*` matches within one `/`-separated
/// component, `**` matches across components (also none: `a/**` matches `a`).
pub fn glob(pattern: &str, name: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let name: Vec<&str> = name.split('/').collect();
    match_components(&pattern, &name)
}

fn match_components(pattern: &[&str], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((&"**", rest)) => (0..=name.len()).any(|skip| match_components(rest, &name[skip..])),
        Some((first, rest)) => match name.split_first() {
            Some((component, name_rest)) => {
                match_component(first.as_bytes(), component.as_bytes())
                    && match_components(rest, name_rest)
            }
            None => false,
        },
    }
}

/// `*` any run of characters, `?` one character, anything else literally.
fn match_component(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_component(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_component(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_component(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("**", "a/b/c"));
        assert!(glob("team/*", "team/app"));
        assert!(!glob("team/*", "team/app/x"));
        assert!(glob("team/**", "team/app/x"));
        assert!(glob("team/**", "team"));
        assert!(!glob("team/*", "teams/app"));
        assert!(glob("app-?", "app-1"));
        assert!(!glob("app", "app2"));
        assert!(glob("*/base", "lib/base"));
    }

    fn config(toml: &str) -> AuthConfig {
        toml::from_str(toml).expect("auth config")
    }

    #[test]
    fn rules_grant_by_user_group_and_anonymous() {
        let policy = Policy::from_config(&config(
            r#"
            groups = { dev = ["bob"] }
            [[rules]]
            repositories = ["team/**"]
            groups = ["dev"]
            actions = ["pull", "push"]
            [[rules]]
            repositories = ["public/*"]
            anonymous = true
            users = ["*"]
            actions = ["pull"]
            "#,
        ));
        let bob = Identity::User("bob".into());
        let eve = Identity::User("eve".into());
        assert_eq!(
            policy.allowed(&bob, "team/app"),
            [Action::Pull, Action::Push].into()
        );
        assert!(policy.allowed(&eve, "team/app").is_empty());
        assert_eq!(policy.allowed(&eve, "public/x"), [Action::Pull].into());
        assert_eq!(
            policy.allowed(&Identity::Anonymous, "public/x"),
            [Action::Pull].into()
        );
        assert!(policy.allowed(&Identity::Anonymous, "team/app").is_empty());
    }

    #[test]
    fn no_rules_means_logins_may_do_everything() {
        let policy = Policy::from_config(&config("anonymous_pull = true"));
        let alice = Identity::User("alice".into());
        assert_eq!(policy.allowed(&alice, "x").len(), 3);
        assert_eq!(
            policy.allowed(&Identity::Anonymous, "x"),
            [Action::Pull].into()
        );
        assert!(policy.anonymous_has_access());
    }
}
