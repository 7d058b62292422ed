//! The end-to-end tests, linked into one test binary: each module runs real
//! nodes and a real coordinator (in process, over loopback gRPC) on generated
//! data and checks results against a plaintext polars computation.

mod access;
mod attribution;
mod attribution_data;
mod audit;
mod breakdown;
mod hostile_peer;
mod leakage;
mod node_startup;
mod overlap;
mod privacy;
mod support;
