//! Which credential the CLI signs with, and `jointly login` / `whoami`.
//!
//! The credential is, in order: `--credential FILE` (or
//! `JOINTLY_CREDENTIAL`), else the one `jointly login` stored at
//! `$XDG_CONFIG_HOME/jointly/credential.toml` (`~/.config/...` without it).

use std::path::{Path, PathBuf};

use anyhow::Context;
use jointly_coordinator::{
    client::{self, Planner},
    credential::Credential,
    planner::format_ms,
};
use jointly_protocol::wire::{Principal, PrincipalRole};

/// Where `jointly login` keeps the credential.
pub fn stored_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("jointly").join("credential.toml"))
}

/// The credential to sign with, or what to do to have one.
pub fn credential(explicit: Option<&Path>) -> anyhow::Result<Credential> {
    if let Some(path) = explicit {
        return Credential::load(path).map_err(anyhow::Error::msg);
    }
    match stored_path() {
        Some(path) if path.exists() => Credential::load(&path).map_err(anyhow::Error::msg),
        _ => anyhow::bail!(
            "not signed in: run `jointly login FILE` with the credential your coordinator's operator gave you, or pass --credential FILE (or set JOINTLY_CREDENTIAL)"
        ),
    }
}

/// The coordinator to call: the one asked for, else the credential's, else
/// this machine's.
pub fn coordinator_url(asked: Option<&str>, credential: &Credential) -> String {
    asked
        .map(str::to_string)
        .or_else(|| credential.coordinator_url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:7700".to_string())
}

pub fn role_name(role: i32) -> &'static str {
    match PrincipalRole::try_from(role) {
        Ok(PrincipalRole::Planner) => "planner",
        Ok(PrincipalRole::Auditor) => "auditor",
        Ok(PrincipalRole::Operator) => "operator",
        _ => "no role",
    }
}

pub fn describe(p: &Principal) -> String {
    let expires = if p.expires_unix_ms == 0 {
        "does not expire".to_string()
    } else {
        format!("valid until {}", format_ms(p.expires_unix_ms))
    };
    format!(
        "{} ({}, organisation {}), workspaces {}; credential {expires}",
        p.name,
        role_name(p.role),
        p.organisation,
        p.workspaces.join(", ")
    )
}

/// Checks a credential against its coordinator, then stores it for later
/// calls (mode 0600).
pub async fn login(
    file: &Path,
    asked: Option<&str>,
    ca_cert: Option<&Path>,
    tls_domain: Option<&str>,
) -> anyhow::Result<(Principal, PathBuf)> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read credential {}", file.display()))?,
    );
    let credential =
        Credential::parse(&text).map_err(|e| anyhow::anyhow!("credential {}: {e}", file.display()))?;
    let url = coordinator_url(asked, &credential);
    let mut planner: Planner = client::connect(&url, ca_cert, tls_domain, credential.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let me = planner
        .who_am_i()
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "the coordinator at {url} refuses {}: {}",
                file.display(),
                s.message()
            )
        })?
        .into_inner();
    let target =
        stored_path().context("neither XDG_CONFIG_HOME nor HOME is set: pass --credential FILE instead")?;
    credential.save(&target, &text).map_err(anyhow::Error::msg)?;
    Ok((me, target))
}
