//! Runnable examples: synthetic bank and partner data (`datagen`), ready
//! deployments (`deploy`), an in-process cluster (`cluster`), the plaintext
//! answers everything is checked against (`plaintext`), and the demo.

pub mod cluster;
pub mod datagen;
pub mod demo;
pub mod demo_campaign;
pub mod deploy;
pub mod plaintext;
