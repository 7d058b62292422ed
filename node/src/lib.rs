//! The Jointly node (`jointly-node`): runs next to one party's data, loads its
//! datasets, applies its policy, and runs its side of every protocol. It dials
//! out to the coordinator; customer data never leaves it, only masked points.

pub mod agent;
pub mod attributes;
pub mod budget;
pub mod config;
pub mod dataset;
pub mod decision;
pub mod dirs;
pub mod error;
pub mod events;
pub mod identity;
pub mod ledger;
pub mod members;
pub mod period;
pub mod privacy;
pub mod refusal;
pub mod report;
pub mod session;
pub mod slots;
pub mod transcripts;
pub mod transport;
pub mod uploads;
pub mod work;

pub use agent::Node;
pub use config::NodeConfig;
pub use error::NodeError;
