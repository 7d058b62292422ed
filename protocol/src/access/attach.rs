//! The bytes a node signs to attach to a coordinator: one definition for the
//! node that signs and the coordinator that checks.
//!
//! The coordinator's id binds the proof to one coordinator, the node's name
//! to one registry entry, and the coordinator's fresh nonce to one
//! connection, so a proof cannot be replayed elsewhere or later.

/// Domain tag of an attach proof.
pub const ATTACH_CONTEXT: &[u8] = b"JOINTLY-V1-ATTACH";

/// `ATTACH_CONTEXT 0 coordinator_id 0 node_name 0 nonce`, the layout every
/// deployed node signs; the nonce is last, so its bytes need no separator.
pub fn attach_message(coordinator_id: &str, node_name: &str, nonce: &[u8]) -> Vec<u8> {
    [
        ATTACH_CONTEXT,
        b"\0",
        coordinator_id.as_bytes(),
        b"\0",
        node_name.as_bytes(),
        b"\0",
        nonce,
    ]
    .concat()
}

/// Whether `signature` is `key`'s attach proof for this coordinator, node
/// and nonce. A signature of the wrong length is simply not a proof.
pub fn verify_attach(
    key: &ed25519_dalek::VerifyingKey,
    coordinator_id: &str,
    node_name: &str,
    nonce: &[u8],
    signature: &[u8],
) -> bool {
    let message = attach_message(coordinator_id, node_name, nonce);
    ed25519_dalek::Signature::from_slice(signature)
        .map(|sig| key.verify_strict(&message, &sig).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    /// RFC 8032, section 7.1, TEST 1: a published key pair, so the vector
    /// below can be checked by any Ed25519 implementation.
    const RFC8032_TEST1_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_TEST1_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn key() -> SigningKey {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(RFC8032_TEST1_SECRET, &mut secret).unwrap();
        SigningKey::from_bytes(&secret)
    }

    #[test]
    fn the_layout_is_pinned() {
        assert_eq!(
            attach_message("coord", "bank", b"nonce"),
            b"JOINTLY-V1-ATTACH\0coord\0bank\0nonce".to_vec()
        );
    }

    /// The whole handshake as a vector: what a node built from another code
    /// base must send for coordinator `coord-1`, node `bank` and nonce
    /// 00 01 .. 1f. The signature was checked against a second Ed25519
    /// implementation (Python's `cryptography`).
    #[test]
    fn attach_proof_vector() {
        let key = key();
        assert_eq!(hex::encode(key.verifying_key().as_bytes()), RFC8032_TEST1_PUBLIC);
        let nonce: Vec<u8> = (0u8..32).collect();
        let message = attach_message("coord-1", "bank", &nonce);
        assert_eq!(
            hex::encode(&message),
            concat!(
                "4a4f494e544c592d56312d415454414348", // JOINTLY-V1-ATTACH
                "00",
                "636f6f72642d31", // coord-1
                "00",
                "62616e6b", // bank
                "00",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            )
        );
        let signature = key.sign(&message).to_bytes();
        assert_eq!(
            hex::encode(signature),
            "5c4f19b97671f6704ac71ea1be366f9835ede7de72f2bffd00e0c486e817bebcc4bbc2ad2725194dbe8104090b27e2c1ba4ca8446783274c82212eb190ef8403"
        );
        let public = key.verifying_key();
        assert!(verify_attach(&public, "coord-1", "bank", &nonce, &signature));
        // Bound to the coordinator, the node and the connection's nonce.
        assert!(!verify_attach(&public, "coord-2", "bank", &nonce, &signature));
        assert!(!verify_attach(&public, "coord-1", "partner", &nonce, &signature));
        assert!(!verify_attach(
            &public,
            "coord-1",
            "bank",
            &nonce[1..],
            &signature
        ));
        assert!(!verify_attach(
            &public,
            "coord-1",
            "bank",
            &nonce,
            &signature[1..]
        ));
        // The separators keep one split from reading as another.
        assert!(!verify_attach(&public, "coord-1\0bank", "", &nonce, &signature));
    }
}
