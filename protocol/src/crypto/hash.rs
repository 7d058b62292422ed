//! `hash_to_ristretto255` of RFC 9380: `expand_message_xmd` with SHA-512 to 64
//! uniform bytes, then the ristretto255 one-way map (RFC 9496 section 4.3.4).

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::{Digest, Sha512};

/// Domain separation tag for Jointly identifiers (PROTOCOLS.md, Notation).
pub const ID_DST: &[u8] = b"JOINTLY-V1-ID";

/// Domain separation tag of RFC 9497's ristretto255-SHA512 OPRF, used only to
/// check this implementation against the RFC's published vectors.
pub const RFC9497_DST: &[u8] = b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512";

/// SHA-512 input block size (`s_in_bytes` in RFC 9380).
const BLOCK: usize = 128;

/// Hashes to ristretto255 with precomputed state for one domain tag.
///
/// Every message starts with a zero block (`Z_pad`), so its compression is done
/// once here instead of once per identifier: at a million identifiers a session
/// that is a million SHA-512 compressions saved.
#[derive(Clone)]
pub struct HashToGroup {
    after_zpad: Sha512,
    dst_prime: Vec<u8>,
}

impl std::fmt::Debug for HashToGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashToGroup")
            .field(
                "dst",
                &String::from_utf8_lossy(&self.dst_prime[..self.dst_prime.len() - 1]),
            )
            .finish()
    }
}

impl HashToGroup {
    /// # Panics
    /// If `dst` is longer than 255 bytes; tags are compile-time constants.
    pub fn new(dst: &[u8]) -> Self {
        assert!(dst.len() <= 255, "RFC 9380 limits a domain tag to 255 bytes");
        let mut dst_prime = dst.to_vec();
        // Fits: asserted above.
        dst_prime.push(dst.len() as u8);
        let mut after_zpad = Sha512::new();
        after_zpad.update([0u8; BLOCK]);
        Self {
            after_zpad,
            dst_prime,
        }
    }

    /// Hashes the concatenation of `parts` (concatenated without copying).
    pub fn hash(&self, parts: &[&[u8]]) -> RistrettoPoint {
        RistrettoPoint::from_uniform_bytes(&self.expand(parts))
    }

    /// `expand_message_xmd(msg, DST, 64)` with SHA-512.
    fn expand(&self, parts: &[&[u8]]) -> [u8; 64] {
        let mut out = [0u8; 64];
        self.expand_into(parts, &mut out);
        out
    }

    /// `expand_message_xmd` (RFC 9380 section 5.3.1) for any output length up to
    /// 255 SHA-512 blocks; `out.len()` is `len_in_bytes`.
    fn expand_into(&self, parts: &[&[u8]], out: &mut [u8]) {
        const B_IN_BYTES: usize = 64;
        let len = out.len();
        let ell = len.div_ceil(B_IN_BYTES);
        debug_assert!(ell <= 255 && len <= usize::from(u16::MAX));
        let mut h = self.after_zpad.clone();
        for part in parts {
            h.update(part);
        }
        // l_i_b_str = I2OSP(len, 2), then I2OSP(0, 1), then DST_prime.
        h.update((len as u16).to_be_bytes());
        h.update([0u8]);
        h.update(&self.dst_prime);
        let b0 = h.finalize();

        let mut prev = [0u8; B_IN_BYTES];
        for (i, block) in out.chunks_mut(B_IN_BYTES).enumerate() {
            let mut h = Sha512::new();
            // b_1 = H(b_0 || 1 || DST'); b_i = H((b_0 xor b_(i-1)) || i || DST').
            let mut input = [0u8; B_IN_BYTES];
            for (k, byte) in input.iter_mut().enumerate() {
                *byte = b0[k] ^ if i == 0 { 0 } else { prev[k] };
            }
            h.update(input);
            h.update([(i + 1) as u8]);
            h.update(&self.dst_prime);
            prev.copy_from_slice(&h.finalize());
            block.copy_from_slice(&prev[..block.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_depends_on_every_part_boundary_free() {
        let h = HashToGroup::new(ID_DST);
        assert_eq!(h.expand(&[b"ab", b"c"]), h.expand(&[b"abc"]));
        assert_ne!(h.expand(&[b"abc"]), h.expand(&[b"abd"]));
        let other = HashToGroup::new(b"JOINTLY-V1-OTHER");
        assert_ne!(h.expand(&[b"abc"]), other.expand(&[b"abc"]));
    }

    #[test]
    fn debug_shows_tag_only() {
        let shown = format!("{:?}", HashToGroup::new(ID_DST));
        assert!(shown.contains("JOINTLY-V1-ID"), "{shown}");
    }

    /// RFC 9380, Appendix K.3: expand_message_xmd(SHA-512) with
    /// DST = "QUUX-V01-CS02-with-expander-SHA512-256".
    #[test]
    fn rfc9380_k3_sha512_expander_vectors() {
        let h = HashToGroup::new(b"QUUX-V01-CS02-with-expander-SHA512-256");
        let cases: [(&[u8], usize, &str); 3] = [
            // msg = "", len_in_bytes = 0x20
            (
                b"",
                0x20,
                "6b9a7312411d92f921c6f68ca0b6380730a1a4d982c507211a90964c394179ba",
            ),
            // msg = "abc", len_in_bytes = 0x20
            (
                b"abc",
                0x20,
                "0da749f12fbe5483eb066a5f595055679b976e93abe9be6f0f6318bce7aca8dc",
            ),
            // msg = "abcdef0123456789", len_in_bytes = 0x20
            (
                b"abcdef0123456789",
                0x20,
                "087e45a86e2939ee8b91100af1583c4938e0f5fc6c9db4b107b83346bc967f58",
            ),
        ];
        for (msg, len, expected) in cases {
            let mut out = vec![0u8; len];
            h.expand_into(&[msg], &mut out);
            assert_eq!(hex::encode(out), expected);
        }
    }
}
