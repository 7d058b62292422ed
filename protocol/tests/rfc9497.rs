//! RFC 9497 (OPRF), Appendix A.1.1, ristretto255-SHA512 in OPRF mode: the
//! project's external check that hashing to the group and scalar multiplication
//! (including the batched mask-and-compress path the protocols use) are right.
//!
//! `vectors/rfc9497-ristretto255-sha512-oprf.json` fields:
//! - `dst`: the RFC's HashToGroup tag, "HashToGroup-OPRFV1-\x00-ristretto255-SHA512"
//! - `skSm`: the server's private key (little-endian scalar)
//! - per vector: `input` (hex message), `blind` (little-endian scalar),
//!   `blinded_element` = blind * HashToGroup(input),
//!   `evaluation_element` = skSm * blinded_element (compressed encodings).

use curve25519_dalek::{ristretto::CompressedRistretto, scalar::Scalar};
use jointly_protocol::{
    crypto::group::{SessionKey, decode_and_mask, mask_each},
    crypto::hash::{HashToGroup, RFC9497_DST},
};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("vector fields are hex")
}

fn scalar(s: &str) -> Scalar {
    let bytes: [u8; 32] = unhex(s).try_into().expect("32-byte scalar");
    Option::from(Scalar::from_canonical_bytes(bytes)).expect("canonical scalar")
}

#[test]
fn rfc9497_ristretto255_sha512_oprf_vectors() {
    let text = include_str!("vectors/rfc9497-ristretto255-sha512-oprf.json");
    let doc: serde_json::Value = serde_json::from_str(text).expect("vector file is JSON");
    assert_eq!(doc["dst"].as_str().map(str::as_bytes), Some(RFC9497_DST));
    let sk = SessionKey::from_scalar(scalar(doc["skSm"].as_str().expect("skSm")));
    let hasher = HashToGroup::new(RFC9497_DST);
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 2);
    for v in vectors {
        let field = |k: &str| v[k].as_str().expect("field present");
        let input = unhex(field("input"));
        let blind = SessionKey::from_scalar(scalar(field("blind")));
        let point = hasher.hash(&[&input]);

        // One point at a time.
        let blinded = blind.mul(&point);
        assert_eq!(
            hex::encode(blinded.compress().as_bytes()),
            field("blinded_element")
        );
        let evaluated = sk.mul(&blinded);
        assert_eq!(
            hex::encode(evaluated.compress().as_bytes()),
            field("evaluation_element")
        );

        // The batched paths the protocols use: hash-and-mask, then decode-and-mask.
        let batched = mask_each(&blind, 1, |_| hasher.hash(&[&input]));
        assert_eq!(hex::encode(batched[0]), field("blinded_element"));
        let again = decode_and_mask(&sk, &batched).expect("valid point");
        assert_eq!(hex::encode(again[0]), field("evaluation_element"));
        assert!(CompressedRistretto(again[0]).decompress().is_some());
    }
}
