//! Bearer-token authentication: tokens map to users and service accounts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::rbac::UserInfo;

/// The token written into the kubeconfig in auth mode; its user is in `system:masters`.
pub const ADMIN_TOKEN: &str = "testkit-admin-token";

/// Token -> user table.
#[derive(Debug, Clone)]
pub struct Tokens {
    map: Arc<RwLock<HashMap<String, UserInfo>>>,
}

impl Default for Tokens {
    fn default() -> Self {
        let t = Self {
            map: Arc::default(),
        };
        t.add_user(ADMIN_TOKEN, "testkit-admin", &["system:masters"]);
        t
    }
}

impl Tokens {
    /// Maps `token` to user `name` in `groups` (plus `system:authenticated`).
    pub fn add_user(&self, token: &str, name: &str, groups: &[&str]) {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        groups.push("system:authenticated".into());
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert(
            token.to_string(),
            UserInfo {
                username: name.to_string(),
                groups,
            },
        );
    }

    /// Maps `token` to the service account `namespace/name`.
    pub fn add_service_account(&self, token: &str, namespace: &str, name: &str) {
        let user = service_account_user(namespace, name);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.to_string(), user);
    }

    /// The user for a token.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    /// Loads `token,user[,group1;group2]` lines (`#` comments); a user of the form
    /// `system:serviceaccount:NS:NAME` becomes that service account.
    pub fn load_file(&self, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(3, ',');
            let (Some(token), Some(user)) = (parts.next(), parts.next()) else {
                return Err(format!("line {}: want token,user[,groups]", i + 1));
            };
            if let Some(sa) = user.strip_prefix("system:serviceaccount:") {
                let (ns, name) = sa
                    .split_once(':')
                    .ok_or_else(|| format!("line {}: bad service account user", i + 1))?;
                self.add_service_account(token, ns, name);
            } else {
                let groups: Vec<&str> = parts
                    .next()
                    .map(|g| g.split(';').filter(|g| !g.is_empty()).collect())
                    .unwrap_or_default();
                self.add_user(token, user, &groups);
            }
        }
        Ok(())
    }
}

/// The user a service account authenticates as.
pub fn service_account_user(namespace: &str, name: &str) -> UserInfo {
    UserInfo {
        username: format!("system:serviceaccount:{namespace}:{name}"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    }
}

/// The user of every request when auth is off.
pub fn anonymous_admin() -> UserInfo {
    UserInfo {
        username: "testkit-admin".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_users_and_service_accounts() {
        let t = Tokens::default();
        t.load_file("# comment\nt1,alice,devs;ops\nt2,system:serviceaccount:ns1:app\n")
            .expect("loads");
        let alice = t.lookup("t1").expect("alice");
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.groups, ["devs", "ops", "system:authenticated"]);
        let sa = t.lookup("t2").expect("sa");
        assert_eq!(sa.username, "system:serviceaccount:ns1:app");
        assert!(
            sa.groups
                .contains(&"system:serviceaccounts:ns1".to_string())
        );
        assert!(
            t.lookup(ADMIN_TOKEN)
                .is_some_and(|u| u.groups.contains(&"system:masters".to_string()))
        );
        assert!(t.load_file("just-a-token\n").is_err());
    }
}
