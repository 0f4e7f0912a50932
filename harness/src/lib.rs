//! clusterlab: simulated multi-node clusters on one Docker engine, faults injected,
//! every service path asserted.

pub mod bench;
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
pub mod vocab;

#[cfg(test)]
mod module_graph;
