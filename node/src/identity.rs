//! The node's Ed25519 identity key: proves to the coordinator that a stream
//! belongs to the registered node. The secret never leaves this module's types
//! in printable form.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::NodeError;

/// The bytes signed to attach (see node.proto, `Proof`), shared with the
/// coordinator that checks them.
pub use jointly_protocol::access::attach::attach_message;

pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Identity(public {})",
            hex::encode(self.public_key().as_bytes())
        )
    }
}

impl Identity {
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(secret.as_mut());
        Self {
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// Reads a key file: 64 hex characters (the 32-byte secret), whitespace ignored.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let err = |message: String| NodeError::IdentityKey {
            path: path.to_path_buf(),
            message,
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            err(format!(
                "{e}; create one with `jointly-node keygen --out {}`",
                path.display()
            ))
        })?);
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), secret.as_mut())
            .map_err(|_| err("expected 64 hex characters (a 32-byte Ed25519 secret key)".into()))?;
        Ok(Self {
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// Writes the secret (owner-only permissions on Unix) and refuses to
    /// overwrite an existing key.
    pub fn save(&self, path: &Path) -> Result<(), NodeError> {
        let err = |message: String| NodeError::IdentityKey {
            path: path.to_path_buf(),
            message,
        };
        if path.exists() {
            return Err(err("already exists; refusing to overwrite an identity key".into()));
        }
        let text = Zeroizing::new(hex::encode(self.key.to_bytes()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        use std::io::Write;
        let mut file = options.open(path).map_err(|e| err(e.to_string()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|e| err(e.to_string()))
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A copy of the key for one session's transcript recorder (zeroized when
    /// the recorder is dropped).
    pub(crate) fn signing_key(&self) -> SigningKey {
        self.key.clone()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn save_load_sign_verify() {
        let dir = std::env::temp_dir().join(format!("jointly-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("k.key");
        let _ = std::fs::remove_file(&path);
        let id = Identity::generate();
        id.save(&path).expect("save");
        assert!(id.save(&path).is_err(), "no overwrite");
        let back = Identity::load(&path).expect("load");
        assert_eq!(back.public_key(), id.public_key());
        let msg = attach_message("coord", "bank", b"nonce");
        let sig = ed25519_dalek::Signature::from_bytes(&back.sign(&msg));
        assert!(id.public_key().verify(&msg, &sig).is_ok());
        let secret_hex = std::fs::read_to_string(&path).expect("read");
        assert!(!format!("{back:?}").contains(secret_hex.trim()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
