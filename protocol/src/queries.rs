//! What a planner asks, turned into protocol runs and read back: the job's
//! terms digest (`terms`), a breakdown's plan of lanes and cells
//! (`breakdown_plan`), attribution over exposure windows (`attribution`,
//! `attribution_model`, `attribution_query`) and conversion lift (`lift`).
//!
//! May import: `protocols` and everything below it.

pub mod attribution;
pub mod attribution_model;
pub mod attribution_query;
pub mod breakdown_plan;
pub mod lift;
pub mod terms;
