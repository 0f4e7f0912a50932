//! clusterlab: simulated multi-node clusters on one Docker engine, faults injected,
//! every service path asserted.
//!
//! From your own tests: [`Lab`] brings a scenario's lab up and lets you run its checks, apply
//! and revert its faults, scale, bench, stream traffic and run commands on its nodes, with
//! typed results (the JSON report's data); dropping it removes the lab, also when the test
//! panics, and a `kill -9` of the test process is covered by the run's reaper.
//! [`blocking::Lab`] is the same for plain `#[test]` functions.
//!
//! ```no_run
//! use clusterlab::{model, vocab::Outcome, Lab};
//!
//! # async fn first_test() -> Result<(), clusterlab::provider::LabError> {
//! // Your image (on the host engine) as a service; its answers name who served in a header.
//! let scenario = model::parse_str(r#"
//! api-version: clusterlab/v1
//! name: my-shop
//! nodes: [ { name: manager, role: manager }, { name: worker, count: 2 } ]
//! stack: { kind: swarm }
//! services:
//!   - { name: shop, image: "my-team/shop:dev", replicas: 3, port: 8080, identity: header X-Served-By }
//! faults:
//!   - { name: cut-off, kind: partition, side-a: worker-2, side-b: [ manager, worker-1 ] }
//! steps:
//!   - check: { name: up, kind: replicas, service: shop, path: /health, status: 200 }
//!   - apply: cut-off
//!   - check:
//!       name: cut
//!       kind: replicas
//!       service: shop
//!       path: /health
//!       expect: { unreachable: { replicas-on: worker-2, from: [ manager, worker-1 ] } }
//!   - revert: cut-off
//! "#, "my-shop.yaml").expect("a valid scenario");
//!
//! let mut lab = Lab::up(&scenario).await?;
//! let up = lab.check("up").await?;
//! assert_eq!(up.outcome, Outcome::Pass, "{}", up.summary);
//! assert_eq!(up.observation.totals(), (27, 27)); // requests sent, answered
//!
//! lab.apply("cut-off").await?;
//! assert!(lab.check("cut").await?.passed());
//! lab.revert("cut-off").await?;
//! println!("{}", lab.docker(&["service", "ps", "shop"]).await?.stdout);
//! lab.down().await
//! # }
//! ```
//!
//! The API, in one place: [`Lab::up`], [`Lab::up_kept`], [`Lab::check`], [`Lab::apply`],
//! [`Lab::revert`], [`Lab::scale`], [`Lab::bench`], [`Lab::start_stream`],
//! [`Lab::stop_stream`], [`Lab::wait`], [`Lab::exec`], [`Lab::docker`], [`Lab::kubectl`],
//! [`Lab::docker_host`], [`Lab::report`], [`Lab::keep`], [`Lab::down`]; scenarios from
//! [`model::load`] (a file) or [`model::parse_str`] (a string). `examples/` in the repository
//! holds an engineer's tests that build their own image and run it on swarm and Kubernetes.

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
