//! Who speaks: the node's attach proof to the coordinator (`attach`) and a
//! person's signed planner request (`request`), both Ed25519 over bytes
//! defined here once for the signer and the checker.
//!
//! May import: `wire`, `crypto`.

pub mod attach;
pub mod request;
