//! Differential privacy: discrete Gaussian noise (`noise`), zCDP accounting
//! and the cover's offsets (`accounting`), and the cover itself, the pads
//! and dummies that hide every list length and count a peer sees (`cover`).
//!
//! May import: `crypto`, `error`.

pub mod accounting;
pub mod cover;
pub mod noise;
