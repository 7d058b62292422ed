//! What every protocol session shares: the `Party` trait the node drives and
//! the outcomes it hands back (`party`, `outcome`), the list-streaming kernel
//! every protocol sends and receives masked lists with (`stream`, and
//! `lists`: a peer's list as it arrives, open then closed, and a list sent
//! once complete), and the proofs of a party's masking for its transcript (`attest`).
//!
//! May import: `crypto`, `ids`, `privacy`, `wire`, `error`. The protocols
//! build on it; it knows none of them.

pub mod attest;
pub(crate) mod lists;
pub mod outcome;
pub mod party;
pub mod stream;
