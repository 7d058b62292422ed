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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_pinned() {
        assert_eq!(
            attach_message("coord", "bank", b"nonce"),
            b"JOINTLY-V1-ATTACH\0coord\0bank\0nonce".to_vec()
        );
    }
}
