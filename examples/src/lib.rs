//! What an engineer's own tests with clusterlab look like: `tests/` builds a service image from
//! a Dockerfile (`greeter/`), brings a lab up with it as a service, asserts its paths, cuts the
//! network, and asserts again — on swarm and on Kubernetes.
//!
//! This crate holds the one helper those tests share: building an image with the host's docker
//! CLI, as an engineer's test would build theirs.

use std::path::Path;
use std::process::Command;

/// Build the image in `dir` (its Dockerfile) as `tag` with the host's docker CLI, passing
/// `build_args`; a failed build panics with docker's output (a test cannot go on without it).
pub fn docker_build(dir: &Path, tag: &str, build_args: &[(&str, &str)]) {
    let mut cmd = Command::new("docker");
    cmd.arg("build").arg("-q").arg("-t").arg(tag);
    for (k, v) in build_args {
        cmd.arg("--build-arg").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(dir).output().unwrap_or_else(|e| panic!("cannot run docker build: {e}"));
    assert!(
        out.status.success(),
        "docker build of {tag} from {} failed:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The greeter example's image, built from `greeter/` on clusterlab's web image (a static
/// busybox, so it builds offline; built first when missing). Returns its tag.
pub async fn greeter_image() -> String {
    let source = clusterlab::images::BaseSource::default();
    let engine = clusterlab::provider::Engine::connect().await.expect("a Docker engine answers");
    clusterlab::images::ensure(&engine, &["web"], &source, &mut |line| eprintln!("{line}")).await.expect("clusterlab's web image builds");
    let base = clusterlab::images::tag("web", &source);
    let tag = "clusterlab-example/greeter:1".to_string();
    docker_build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("greeter"), &tag, &[("BASE", &base)]);
    tag
}
