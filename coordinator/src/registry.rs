//! The registry of people who use the planner API: planners, auditors and
//! operators, each with an Ed25519 public key. Only public keys are stored:
//! a copy of the database lets nobody sign as anyone. Every key a person
//! ever had stays in `principal_keys`, so an auditor can match the key in
//! an old transcript to the person it belonged to.

use ed25519_dalek::SigningKey;
use rusqlite::{Connection, OptionalExtension, params};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS principals (
    name TEXT PRIMARY KEY,
    organisation TEXT NOT NULL,
    role TEXT NOT NULL,
    workspaces TEXT NOT NULL,
    public_key BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS principal_keys (
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    retired_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, public_key)
);
CREATE TABLE IF NOT EXISTS request_nonces (
    principal TEXT NOT NULL,
    nonce BLOB NOT NULL,
    seen_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, nonce)
);
";

/// The default lifetime of a credential.
pub const DEFAULT_VALID_DAYS: u32 = 90;
/// The longest a credential may be issued for.
pub const MAX_VALID_DAYS: u32 = 3 * 365;
/// Every workspace.
pub const ALL_WORKSPACES: &str = "*";

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How long a nonce is remembered: longer than any request's time may be
/// off either way, so a replay within the accepted window always meets it.
const NONCE_MEMORY_MS: i64 = 2 * jointly_protocol::access::request::MAX_SKEW_MS + 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Planner,
    Auditor,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Planner => "planner",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    pub fn to_wire(self) -> jointly_protocol::wire::PrincipalRole {
        use jointly_protocol::wire::PrincipalRole as W;
        match self {
            Role::Planner => W::Planner,
            Role::Auditor => W::Auditor,
            Role::Operator => W::Operator,
        }
    }

    pub fn from_wire(role: i32) -> Option<Self> {
        use jointly_protocol::wire::PrincipalRole as W;
        match W::try_from(role).ok()? {
            W::Planner => Some(Role::Planner),
            W::Auditor => Some(Role::Auditor),
            W::Operator => Some(Role::Operator),
            W::Unspecified => None,
        }
    }
}

/// A role name that is none of the three.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a role; the roles are planner, auditor and operator")]
pub struct UnknownRole(pub String);

impl std::str::FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, UnknownRole> {
        match s {
            "planner" => Ok(Role::Planner),
            "auditor" => Ok(Role::Auditor),
            "operator" => Ok(Role::Operator),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person as the registry knows her.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub organisation: String,
    pub role: Role,
    pub workspaces: Vec<String>,
    pub public_key: [u8; 32],
    pub created_ms: i64,
    pub expires_ms: i64,
    /// 0 while not revoked.
    pub revoked_ms: i64,
}

impl Principal {
    /// Whether she belongs to `workspace`.
    pub fn in_workspace(&self, workspace: &str) -> bool {
        self.workspaces
            .iter()
            .any(|w| w == ALL_WORKSPACES || w == workspace)
    }

    pub fn all_workspaces(&self) -> bool {
        self.workspaces.iter().any(|w| w == ALL_WORKSPACES)
    }

    pub fn to_wire(&self) -> jointly_protocol::wire::Principal {
        jointly_protocol::wire::Principal {
            name: self.name.clone(),
            organisation: self.organisation.clone(),
            role: self.role.to_wire().into(),
            workspaces: self.workspaces.clone(),
            public_key: self.public_key.to_vec(),
            created_unix_ms: self.created_ms,
            expires_unix_ms: self.expires_ms,
            revoked_unix_ms: self.revoked_ms,
        }
    }
}

/// Who to add (or, with `rotate`, whose key to replace).
#[derive(Clone, Debug)]
pub struct NewPrincipal {
    pub name: String,
    pub organisation: String,
    pub role: Role,
    pub workspaces: Vec<String>,
    /// 0 for [`DEFAULT_VALID_DAYS`].
    pub valid_days: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    #[error(
        "'{0}' is not a usable name: use 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
    )]
    BadName(String),
    #[error("{0}")]
    Invalid(String),
    #[error("'{0}' is already registered; rotate her credential instead (--rotate)")]
    Exists(String),
    #[error("no one named '{0}' is registered")]
    Unknown(String),
    #[error("registry database: {0}")]
    Database(String),
}

impl From<rusqlite::Error> for RegistryError {
    fn from(e: rusqlite::Error) -> Self {
        RegistryError::Database(e.to_string())
    }
}

/// Names travel in gRPC metadata and in node policies, so they are kept to
/// characters that need no quoting anywhere.
pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadName(name.to_string()))
    }
}

fn check_new(new: &NewPrincipal) -> Result<(), RegistryError> {
    check_name(&new.name)?;
    check_name(&new.organisation).map_err(|_| {
        RegistryError::Invalid(format!(
            "organisation '{}' is not a usable name",
            new.organisation
        ))
    })?;
    if new.workspaces.is_empty() {
        return Err(RegistryError::Invalid(
            "name at least one workspace (or \"*\" for every workspace)".into(),
        ));
    }
    for w in &new.workspaces {
        if w != ALL_WORKSPACES {
            check_name(w)
                .map_err(|_| RegistryError::Invalid(format!("workspace '{w}' is not a usable name")))?;
        }
    }
    if new.valid_days > MAX_VALID_DAYS {
        return Err(RegistryError::Invalid(format!(
            "a credential is valid for at most {MAX_VALID_DAYS} days"
        )));
    }
    Ok(())
}

/// Adds a person with a fresh key pair, or with `rotate` gives an existing
/// person a fresh key (her old key stops working at once; a revoked person
/// is reinstated). Returns her record and the secret key, which the caller
/// hands to her once and does not keep.
pub fn add(
    conn: &Connection,
    new: &NewPrincipal,
    rotate: bool,
    now_ms: i64,
) -> Result<(Principal, SigningKey), RegistryError> {
    check_new(new)?;
    let key = fresh_key();
    let public = key.verifying_key().to_bytes();
    let days = match new.valid_days {
        0 => DEFAULT_VALID_DAYS,
        d => d,
    };
    let principal = Principal {
        name: new.name.clone(),
        organisation: new.organisation.clone(),
        role: new.role,
        workspaces: new.workspaces.clone(),
        public_key: public,
        created_ms: now_ms,
        expires_ms: now_ms + i64::from(days) * DAY_MS,
        revoked_ms: 0,
    };
    let workspaces =
        serde_json::to_string(&new.workspaces).map_err(|e| RegistryError::Database(e.to_string()))?;
    let tx = conn.unchecked_transaction()?;
    let exists = get(&tx, &new.name)?.is_some();
    match (exists, rotate) {
        (true, false) => return Err(RegistryError::Exists(new.name.clone())),
        (false, true) => return Err(RegistryError::Unknown(new.name.clone())),
        _ => {}
    }
    tx.execute(
        "UPDATE principal_keys SET retired_ms = ?2 WHERE name = ?1 AND retired_ms = 0",
        params![new.name, now_ms],
    )?;
    tx.execute(
        "INSERT INTO principals (name, organisation, role, workspaces, public_key, created_ms, expires_ms, revoked_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0)
         ON CONFLICT (name) DO UPDATE SET organisation = ?2, role = ?3, workspaces = ?4,
             public_key = ?5, created_ms = ?6, expires_ms = ?7, revoked_ms = 0",
        params![
            principal.name,
            principal.organisation,
            principal.role.as_str(),
            workspaces,
            public.to_vec(),
            principal.created_ms,
            principal.expires_ms
        ],
    )?;
    tx.execute(
        "INSERT INTO principal_keys (name, public_key, created_ms) VALUES (?1, ?2, ?3)",
        params![principal.name, public.to_vec(), now_ms],
    )?;
    tx.commit()?;
    Ok((principal, key))
}

fn row_to_principal(r: &rusqlite::Row<'_>) -> rusqlite::Result<Principal> {
    let role: String = r.get(2)?;
    let workspaces: String = r.get(3)?;
    let key: Vec<u8> = r.get(4)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("principal row has an invalid {what}").into(),
        )
    };
    Ok(Principal {
        name: r.get(0)?,
        organisation: r.get(1)?,
        role: role.parse().map_err(|_| bad("role"))?,
        workspaces: serde_json::from_str(&workspaces).map_err(|_| bad("workspace list"))?,
        public_key: key.as_slice().try_into().map_err(|_| bad("public key"))?,
        created_ms: r.get(5)?,
        expires_ms: r.get(6)?,
        revoked_ms: r.get(7)?,
    })
}

const SELECT: &str = "SELECT name, organisation, role, workspaces, public_key, created_ms, expires_ms, revoked_ms FROM principals";

pub fn get(conn: &Connection, name: &str) -> Result<Option<Principal>, RegistryError> {
    Ok(conn
        .query_row(
            &format!("{SELECT} WHERE name = ?1"),
            params![name],
            row_to_principal,
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<Principal>, RegistryError> {
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY name"))?;
    let rows = stmt.query_map([], row_to_principal)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a person's credential at once; revoking twice keeps the first time.
pub fn revoke(conn: &Connection, name: &str, now_ms: i64) -> Result<Principal, RegistryError> {
    conn.execute(
        "UPDATE principals SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms = 0",
        params![name, now_ms],
    )?;
    conn.execute(
        "UPDATE principal_keys SET retired_ms = ?2 WHERE name = ?1 AND retired_ms = 0",
        params![name, now_ms],
    )?;
    get(conn, name)?.ok_or_else(|| RegistryError::Unknown(name.to_string()))
}

/// Remembers a request's nonce; false when it was seen before (a replay).
/// Nonces older than any request could still be accepted are forgotten.
pub fn record_nonce(
    conn: &Connection,
    principal: &str,
    nonce: &[u8],
    now_ms: i64,
) -> Result<bool, RegistryError> {
    conn.execute(
        "DELETE FROM request_nonces WHERE seen_ms < ?1",
        params![now_ms - NONCE_MEMORY_MS],
    )?;
    let inserted = conn.execute(
        "INSERT INTO request_nonces (principal, nonce, seen_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (principal, nonce) DO NOTHING",
        params![principal, nonce, now_ms],
    )?;
    Ok(inserted == 1)
}

/// A key from a CSPRNG seeded by the operating system; the seed is wiped once the
/// key holds it.
fn fresh_key() -> SigningKey {
    use rand::RngCore;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut());
    SigningKey::from_bytes(&seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(SCHEMA).expect("schema");
        c
    }

    fn alice() -> NewPrincipal {
        NewPrincipal {
            name: "alice".into(),
            organisation: "bank".into(),
            role: Role::Planner,
            workspaces: vec!["campaigns".into()],
            valid_days: 0,
        }
    }

    #[test]
    fn rotation_replaces_the_key_and_keeps_its_history() {
        let c = conn();
        let (first, k1) = add(&c, &alice(), false, 1_000).expect("add");
        assert_eq!(first.public_key, k1.verifying_key().to_bytes());
        assert_eq!(first.expires_ms, 1_000 + 90 * DAY_MS);
        assert!(matches!(
            add(&c, &alice(), false, 2_000),
            Err(RegistryError::Exists(_))
        ));
        let (second, k2) = add(&c, &alice(), true, 3_000).expect("rotate");
        assert_ne!(k1.to_bytes(), k2.to_bytes());
        assert_eq!(get(&c, "alice").expect("get"), Some(second));
        let retired: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM principal_keys WHERE name = 'alice' AND retired_ms = 3000",
                [],
                |r| r.get(0),
            )
            .expect("history");
        assert_eq!(retired, 1);
        let mut bob = alice();
        bob.name = "bob".into();
        assert!(matches!(add(&c, &bob, true, 1), Err(RegistryError::Unknown(_))));
    }

    #[test]
    fn revocation_sticks_and_names_are_checked() {
        let c = conn();
        add(&c, &alice(), false, 1).expect("add");
        let r = revoke(&c, "alice", 50).expect("revoke");
        assert_eq!(r.revoked_ms, 50);
        assert_eq!(revoke(&c, "alice", 60).expect("again").revoked_ms, 50);
        assert!(matches!(revoke(&c, "carol", 1), Err(RegistryError::Unknown(_))));
        for bad in ["", "a b", "-x", "x\n", &"a".repeat(65)] {
            let mut p = alice();
            p.name = bad.to_string();
            assert!(
                matches!(add(&c, &p, false, 1), Err(RegistryError::BadName(_))),
                "{bad:?}"
            );
        }
        let mut none = alice();
        none.name = "dora".into();
        none.workspaces.clear();
        assert!(matches!(add(&c, &none, false, 1), Err(RegistryError::Invalid(_))));
    }

    #[test]
    fn a_nonce_is_accepted_once_while_remembered() {
        let c = conn();
        assert!(record_nonce(&c, "alice", &[1; 16], 0).expect("first"));
        assert!(!record_nonce(&c, "alice", &[1; 16], 1).expect("replay"));
        assert!(record_nonce(&c, "bob", &[1; 16], 1).expect("another person"));
        // Forgotten only after any request carrying it would be stale anyway.
        assert!(
            !record_nonce(
                &c,
                "alice",
                &[1; 16],
                2 * jointly_protocol::access::request::MAX_SKEW_MS
            )
            .expect("still")
        );
        assert!(record_nonce(&c, "alice", &[1; 16], NONCE_MEMORY_MS + 1).expect("forgotten"));
    }
}
