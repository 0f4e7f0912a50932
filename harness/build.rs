//! Builds the programs the harness puts into lab nodes and leaves their binaries in OUT_DIR,
//! where the harness embeds them: the traffic agent (`../agent`, `stream::AGENT`), the cluster
//! DNS of Kubernetes labs (`../dns`, `stack::kube::DNS_SERVER`), the delay stage of `delay`
//! faults (`../impair`, `fault::IMPAIR`) and the server of the `web` image (`../web`,
//! `images::RECIPES`: its binary is a file of the image's recipe, so its tag changes with it).
//! Every harness carries the ones that match it, for the CLI and for engineers' own `cargo test`
//! alike, with nothing to find on disk at run time. They
//! build in seconds from the workspace's lock file; a crate only they use (nfq) is fetched the
//! first time when `cargo run` built the harness alone (cargo touches the network for nothing
//! else: with the lock file complete and the crates cached, it builds offline).
//!
//! They run inside lab nodes, whose userland is Debian bookworm whatever the host runs, so they
//! are linked statically (glibc's static libraries come with libc6-dev, which rustc needs anyway).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// `cargo build --release` of the crate in `dir` (beside this one), its binary `bin` copied into
/// OUT_DIR; `strip`ped of its symbols where its size matters more than a symbolized backtrace.
fn build(dir: &str, bin: &str, out: &Path, strip: bool) {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..").join(dir);
    println!("cargo:rerun-if-changed={}", manifest.join("src").display());
    println!("cargo:rerun-if-changed={}", manifest.join("Cargo.toml").display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = out.join(format!("{dir}-target"));
    let status = Command::new(cargo)
        // --locked: the workspace's lock file, never a newer resolution.
        .args(["build", "--release", "--locked", "--quiet", "--target", TARGET])
        .arg("--manifest-path")
        .arg(manifest.join("Cargo.toml"))
        // Its own target directory: the outer build holds the lock on the workspace's.
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("CARGO_PROFILE_RELEASE_STRIP", if strip { "symbols" } else { "none" })
        // What the outer cargo set for this build script must not leak into the inner build
        // (clippy's wrapper, the outer flags and target).
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap_or_else(|e| panic!("run cargo to build {dir}/: {e}"));
    assert!(status.success(), "building {bin} ({dir}/) failed: {status}");
    let built = target_dir.join(TARGET).join("release").join(bin);
    std::fs::copy(&built, out.join(bin)).unwrap_or_else(|e| panic!("copy {} into OUT_DIR: {e}", built.display()));
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    build("agent", "clusterlab-agent", &out, false);
    build("dns", "clusterlab-dns", &out, false);
    build("impair", "clusterlab-impair", &out, false);
    // The web image's server: every node loads the image, so its bytes are load time.
    build("web", "clusterlab-web", &out, true);
}
