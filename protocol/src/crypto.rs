//! The group and the primitives built on it: ristretto255 points and
//! masking (`group`), hashing identifiers to the group (`hash`), additive
//! ElGamal with joint keys (`elgamal`), DLEQ proofs of masking (`dleq`),
//! hinted point decoding for auditors (`hinted`, over `field25519`),
//! baby-step giant-step decryption of small sums (`bsgs`) and shuffles.
//!
//! May import: nothing else of this crate. Everything else builds on it.
//! Functions whose time depends on secret-free inputs only are named
//! `vartime_*`; every other function is constant time in its secrets.

pub mod bsgs;
pub mod dleq;
pub mod elgamal;
mod field25519;
pub mod group;
pub mod hash;
pub mod hinted;
pub mod shuffle;
