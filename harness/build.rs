//! Builds the traffic agent (`../agent`, standard library only) and leaves the binary in OUT_DIR,
//! where `stream::AGENT` embeds it: every harness carries the agent that matches it, for the CLI
//! and for engineers' own `cargo test` alike, with nothing to find on disk at run time.
//!
//! The agent runs inside lab nodes, whose userland is Debian bookworm whatever the host runs, so
//! it is linked statically (glibc's static libraries come with libc6-dev, which rustc needs anyway).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../agent");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", manifest.join("src").display());
    println!("cargo:rerun-if-changed={}", manifest.join("Cargo.toml").display());
    let target = "x86_64-unknown-linux-gnu";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--offline", "--quiet", "--target", target])
        .arg("--manifest-path")
        .arg(manifest.join("Cargo.toml"))
        // Its own target directory: the outer build holds the lock on the workspace's.
        .arg("--target-dir")
        .arg(out.join("agent-target"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        // What the outer cargo set for this build script must not leak into the inner build
        // (clippy's wrapper, the outer flags and target).
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    let status = cmd.status().expect("run cargo to build the traffic agent");
    assert!(status.success(), "building the traffic agent (agent/) failed: {status}");
    let bin = out.join("agent-target").join(target).join("release/clusterlab-agent");
    std::fs::copy(&bin, out.join("clusterlab-agent")).expect("copy the traffic agent into OUT_DIR");
}
