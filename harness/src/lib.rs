//! clusterlab: simulated multi-node clusters on one Docker engine, faults injected,
//! every service path asserted.
//!
//! From your own tests: [`Lab`] brings a scenario's lab up and lets you run its checks, apply
//! and revert its faults and run commands on its nodes, with typed results; dropping it removes
//! the lab.

pub mod bench;
pub mod blocking;
pub mod diagnose;
pub mod doctor;
pub mod edge;
pub mod evidence;
pub mod expect;
pub mod facts;
pub mod fault;
pub mod images;
pub mod lab;
pub mod matrix;
pub mod model;
pub mod owner;
pub mod plan;
pub mod probe;
pub mod provider;
pub mod reaper;
pub mod report;
pub mod runner;
pub mod stack;
pub mod stream;
pub mod testlab;
pub mod vocab;

#[cfg(test)]
mod module_graph;

pub use testlab::Lab;
