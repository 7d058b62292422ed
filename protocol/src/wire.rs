//! Wire messages generated from `proto/` (documented there), and the frame
//! bound. Each protocol converts its own messages to and from these, next to
//! its state machines; conversions from the wire parse strictly: a peer's
//! bytes become typed values or an error.
//!
//! May import: nothing else of this crate.

#[allow(clippy::all, clippy::unwrap_used, clippy::pedantic, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/jointly.v1.rs"));
}
pub use generated::*;

/// Largest encoded frame either side accepts on any stream (a full chunk of
/// points is 256 KiB); larger frames are refused by the transport.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
