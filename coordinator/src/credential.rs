//! A person's credential: the file the operator hands her once, which
//! `jointly login` stores and every planner call signs with. TOML, so it is
//! readable and says what it is:
//!
//! ```toml
//! format = "jointly-credential-v1"
//! coordinator_id = "jointly-coordinator"
//! coordinator_url = "https://coordinator.bank.internal:7700"
//! principal = "alice"
//! secret_key = "…64 hex characters…"
//! ```

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub const FORMAT: &str = "jointly-credential-v1";

/// Why a credential cannot be read or written. No variant holds the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    #[error("not a Jointly credential: {0}")]
    NotACredential(TomlFault),
    #[error("credential format '{found}' is not one this version reads ({FORMAT})")]
    Format { found: String },
    #[error("secret_key must be 64 hex characters")]
    SecretKey,
    #[error("cannot read credential {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// The file's text is not a credential; `error` says why.
    #[error("credential {path}: {error}")]
    InFile {
        path: PathBuf,
        error: Box<CredentialError>,
    },
    #[error("cannot write credential {path}: {error}")]
    Write { path: PathBuf, error: std::io::Error },
}

/// The secret half of a person's key, and where it is valid.
#[derive(Clone)]
pub struct Credential {
    /// The coordinator's `id`: a signature made for it is refused elsewhere.
    pub coordinator_id: String,
    /// Where to reach that coordinator, when the issuer knew it.
    pub coordinator_url: Option<String>,
    pub principal: String,
    pub key: SigningKey,
}

// The secret key never reaches a log line.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("coordinator_id", &self.coordinator_id)
            .field("principal", &self.principal)
            .field("public_key", &hex::encode(self.key.verifying_key().to_bytes()))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    coordinator_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    coordinator_url: Option<String>,
    principal: String,
    secret_key: String,
}

/// Where the credential's TOML breaks and why, without the offending line
/// (the TOML error's own text quotes it, and it may be the secret key's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TomlFault {
    /// Line and column, from 1.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl TomlFault {
    fn of(e: &toml::de::Error, text: &str) -> Self {
        let at = e.span().map(|span| {
            let before = text.get(..span.start).unwrap_or(text);
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            (
                before.matches('\n').count() + 1,
                before[line_start..].chars().count() + 1,
            )
        });
        Self {
            at,
            message: e.message().trim_end().to_string(),
        }
    }
}

impl std::fmt::Display for TomlFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, column)) => write!(
                f,
                "TOML parse error at line {line}, column {column}: {}",
                self.message
            ),
            None => f.write_str(&self.message),
        }
    }
}

impl Credential {
    /// The credential's text, with a header saying whose it is.
    pub fn to_text(&self, role: &str, organisation: &str, expires: &str) -> Zeroizing<String> {
        let file = File {
            format: FORMAT.into(),
            coordinator_id: self.coordinator_id.clone(),
            coordinator_url: self.coordinator_url.clone(),
            principal: self.principal.clone(),
            secret_key: hex::encode(self.key.to_bytes()),
        };
        let body = Zeroizing::new(toml::to_string(&file).unwrap_or_default());
        Zeroizing::new(format!(
            "# Jointly credential of {} ({role}, organisation {organisation}); valid until {expires}.\n\
             # It signs her requests: keep it secret. Store it with `jointly login FILE`.\n{}",
            self.principal, *body
        ))
    }

    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let file: File =
            toml::from_str(text).map_err(|e| CredentialError::NotACredential(TomlFault::of(&e, text)))?;
        let secret = Zeroizing::new(file.secret_key);
        if file.format != FORMAT {
            return Err(CredentialError::Format { found: file.format });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(secret.trim(), bytes.as_mut()).map_err(|_| CredentialError::SecretKey)?;
        Ok(Self {
            coordinator_id: file.coordinator_id,
            coordinator_url: file.coordinator_url,
            principal: file.principal,
            key: SigningKey::from_bytes(&bytes),
        })
    }

    /// Reads a credential file, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self, CredentialError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|error| CredentialError::Read {
                path: path.to_path_buf(),
                error,
            })?,
        );
        Self::parse(&text).map_err(|e| CredentialError::InFile {
            path: path.to_path_buf(),
            error: Box::new(e),
        })
    }

    /// Writes the credential readable by its owner only (0600), replacing
    /// any file there.
    pub fn save(&self, path: &Path, text: &str) -> Result<(), CredentialError> {
        write_private(path, text.as_bytes()).map_err(|error| CredentialError::Write {
            path: path.to_path_buf(),
            error,
        })
    }
}

/// Writes a file only its owner can read, creating its directory (0700).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        // A directory made for credentials is its owner's alone too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_round_trips_and_hides_its_secret() {
        let c = Credential {
            coordinator_id: "coord".into(),
            coordinator_url: Some("https://c:7700".into()),
            principal: "alice".into(),
            key: SigningKey::from_bytes(&[9; 32]),
        };
        let text = c.to_text("planner", "bank", "2027-03-01");
        let back = Credential::parse(&text).expect("parses");
        assert_eq!(back.key.to_bytes(), [9; 32]);
        assert_eq!(back.principal, "alice");
        assert_eq!(back.coordinator_url.as_deref(), Some("https://c:7700"));
        let debug = format!("{c:?}");
        assert!(!debug.contains(&hex::encode([9u8; 32])), "{debug}");
        let wrong = text.replace(FORMAT, "jointly-credential-v0");
        let e = Credential::parse(&wrong).unwrap_err();
        assert!(
            matches!(&e, CredentialError::Format { found } if found == "jointly-credential-v0"),
            "{e:?}"
        );
        assert!(e.to_string().contains("format"), "{e}");
        let short = text.replace(&hex::encode([9u8; 32]), "abcd");
        let e = Credential::parse(&short).unwrap_err();
        assert!(matches!(e, CredentialError::SecretKey), "{e:?}");
        assert!(!format!("{e} {e:?}").contains("abcd"), "{e}");
        // Unquoted, the key breaks the TOML: the error says where, never what.
        let secret = hex::encode([9u8; 32]);
        let bare = text.replace(&format!("\"{secret}\""), &secret);
        let e = Credential::parse(&bare).unwrap_err();
        let CredentialError::NotACredential(fault) = &e else {
            panic!("{e:?}");
        };
        let line = bare
            .lines()
            .position(|l| l.starts_with("secret_key"))
            .expect("line")
            + 1;
        assert_eq!(fault.at.map(|(l, _)| l), Some(line), "{e}");
        assert!(
            e.to_string()
                .starts_with("not a Jointly credential: TOML parse error at line"),
            "{e}"
        );
        assert!(!format!("{e} {e:?}").contains(&secret[..8]), "{e}");
    }

    #[test]
    fn a_saved_credential_is_private() {
        let dir = tempfile::tempdir().expect("dir");
        let c = Credential {
            coordinator_id: "coord".into(),
            coordinator_url: None,
            principal: "alice".into(),
            key: SigningKey::from_bytes(&[1; 32]),
        };
        let path = dir.path().join("sub/alice.toml");
        c.save(&path, &c.to_text("planner", "bank", "never"))
            .expect("save");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir = std::fs::metadata(path.parent().expect("dir")).expect("meta");
            assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        }
        assert_eq!(Credential::load(&path).expect("load").principal, "alice");
    }
}
