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
            .filter(|rule| {
                rule.repositories
                    .iter()
                    .any(|p| berth_glob::repository_matches(p, repository))
            })
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

#[cfg(test)]
mod tests {
    use super::*;

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
