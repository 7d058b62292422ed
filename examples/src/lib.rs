//! Runnable examples: synthetic bank and partner data (`datagen`) and
//! campaign data (`campaign_data`), ready deployments (`deploy`), an
//! in-process cluster (`cluster`), the plaintext answers everything is
//! checked against (`plaintext`, `plaintext_attribution`), and the demo.

pub mod campaign_data;
pub mod cluster;
pub mod datagen;
pub mod demo;
pub mod demo_attribution;
pub mod demo_campaign;
pub mod deploy;
pub mod plaintext;
pub mod plaintext_attribution;
pub mod timestamp;
