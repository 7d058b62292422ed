//! What a row's identifier and values are before any cryptography:
//! normalization of phones, e-mails and resident IDs (`normalize`), a
//! party's de-duplicated identifier list (`idlist`), money amounts in
//! integer fen, the hundredth of a yuan (`amount`), and event timestamps.
//!
//! May import: nothing else of this crate.

pub mod amount;
pub mod idlist;
pub mod normalize;
pub mod timestamp;
