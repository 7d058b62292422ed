//! The operator's registry commands on the coordinator's machine
//! (`jointly-coordinator principal ...`): they work on the database
//! directly, beside a running coordinator, so the first operator can be
//! registered before anyone can sign a call.

use crate::{
    config::CoordinatorConfig,
    credential::Credential,
    planner::format_ms,
    registry::{self, NewPrincipal, Principal, RegistryError},
    store::{now_ms, open_connection},
};

/// The URL people use to reach this coordinator, as its configuration says.
pub fn coordinator_url(config: &CoordinatorConfig) -> String {
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{}", config.listen)
}

fn open(config: &CoordinatorConfig) -> Result<rusqlite::Connection, RegistryError> {
    open_connection(&config.database)
        .map_err(|e| RegistryError::Database(format!("{}: {e}", config.database.display())))
}

/// Adds a person (or with `rotate` gives her a new key) and returns her
/// record, her credential and its text.
pub fn issue(
    config: &CoordinatorConfig,
    new: &NewPrincipal,
    rotate: bool,
) -> Result<(Principal, Credential, String), RegistryError> {
    let conn = open(config)?;
    let (principal, key) = registry::add(&conn, new, rotate, now_ms())?;
    let credential = Credential {
        coordinator_id: config.id.clone(),
        coordinator_url: Some(coordinator_url(config)),
        principal: principal.name.clone(),
        key,
    };
    let text = credential
        .to_text(
            principal.role.as_str(),
            &principal.organisation,
            &format_ms(principal.expires_ms),
        )
        .to_string();
    Ok((principal, credential, text))
}

/// Gives an existing person a new key, keeping her organisation, role and
/// workspaces; her old key stops working at once.
pub fn rotate(
    config: &CoordinatorConfig,
    name: &str,
    valid_days: u32,
) -> Result<(Principal, Credential, String), RegistryError> {
    let conn = open(config)?;
    let old = registry::get(&conn, name)?.ok_or_else(|| RegistryError::Unknown(name.to_string()))?;
    drop(conn);
    let new = NewPrincipal {
        name: old.name,
        organisation: old.organisation,
        role: old.role,
        workspaces: old.workspaces,
        valid_days,
    };
    issue(config, &new, true)
}

pub fn revoke(config: &CoordinatorConfig, name: &str) -> Result<Principal, RegistryError> {
    registry::revoke(&open(config)?, name, now_ms())
}

pub fn list(config: &CoordinatorConfig) -> Result<Vec<Principal>, RegistryError> {
    registry::list(&open(config)?)
}

/// One line per person, for `principal list`.
pub fn describe(p: &Principal) -> String {
    let status = if p.revoked_ms != 0 {
        format!("revoked {}", format_ms(p.revoked_ms))
    } else if p.expires_ms <= now_ms() {
        format!("expired {}", format_ms(p.expires_ms))
    } else {
        format!("valid until {}", format_ms(p.expires_ms))
    };
    format!(
        "{:<20} {:<9} {:<14} workspaces {:<24} key {}…  {status}",
        p.name,
        p.role.as_str(),
        p.organisation,
        p.workspaces.join(","),
        &hex::encode(p.public_key)[..16]
    )
}
