//! Images, built offline: a base root filesystem from Debian packages (debootstrap, imported
//! into the engine), then the node and workload images FROM it. Each is tagged by a hash of its
//! recipe (and its parent's tag), so a changed recipe builds anew and an unchanged one is reused.
//! The recipes under images/ are compiled into the binary: `clusterlab` needs no checkout.

use crate::provider::{Engine, LabError};
use bollard::query_parameters as qp;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

pub struct Recipe {
    pub name: &'static str,
    pub about: &'static str,
    files: &'static [(&'static str, &'static [u8])],
    parent: Option<&'static str>,
}

macro_rules! file {
    ($dir:literal, $f:literal) => {
        ($f, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../images/", $dir, "/", $f)) as &[u8])
    };
}

pub const RECIPES: &[Recipe] = &[
    Recipe { name: "base", about: "Debian bookworm minbase (debootstrap)", files: &[file!("base", "build.sh")], parent: None },
    Recipe {
        name: "node",
        about: "cluster node: dockerd + containerd, iptables, iproute2, iperf3",
        files: &[file!("node", "Dockerfile"), file!("node", "start-node.sh"), file!("node", "supervise.sh")],
        parent: Some("base"),
    },
    Recipe {
        name: "web",
        about: "workload: HTTP answering with its replica identity (clusterlab-web, busybox; ~3 MB)",
        // The server is built from ../web by the build script: a changed server is a new tag.
        files: &[
            file!("web", "Dockerfile"),
            file!("web", "serve.sh"),
            ("clusterlab-web", include_bytes!(concat!(env!("OUT_DIR"), "/clusterlab-web")) as &[u8]),
        ],
        parent: Some("base"),
    },
    Recipe {
        name: "pause",
        about: "Kubernetes pod sandbox (busybox sleep, exits on SIGTERM)",
        files: &[file!("pause", "Dockerfile")],
        parent: Some("base"),
    },
    Recipe { name: "tools", about: "client: iperf3, curl, dig", files: &[file!("tools", "Dockerfile")], parent: Some("base") },
    Recipe {
        name: "proxy",
        about: "a stray HTTP proxy: squid that cannot reach the lab (http-proxy fault)",
        files: &[file!("proxy", "Dockerfile"), file!("proxy", "start-proxy.sh")],
        parent: Some("base"),
    },
];

pub fn recipe(name: &str) -> Option<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name)
}

/// Where the base comes from: debootstrap here (offline), or an image a registry can give.
#[derive(Debug, Clone, Default)]
pub struct BaseSource {
    /// e.g. `debian:bookworm`: pulled instead of built, for hosts that reach a registry.
    pub pull: Option<String>,
}

/// `clusterlab/<name>:<hash>` — the hash covers the recipe's files and its parent's tag.
pub fn tag(name: &str, base: &BaseSource) -> String {
    let r = recipe(name).unwrap_or_else(|| panic!("no image recipe {name}"));
    let mut h = Sha256::new();
    for (f, data) in r.files {
        h.update(f.as_bytes());
        h.update([0]);
        h.update(data);
    }
    match r.parent {
        Some(p) => h.update(tag(p, base).as_bytes()),
        None => h.update(base.pull.as_deref().unwrap_or("debootstrap").as_bytes()),
    }
    let hex: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("clusterlab/{name}:{hex}")
}

/// The images a name depends on, parents first, ending with the name itself.
fn chain(name: &str) -> Vec<&'static Recipe> {
    let mut out = Vec::new();
    let mut cur = recipe(name);
    while let Some(r) = cur {
        out.insert(0, r);
        cur = r.parent.and_then(recipe);
    }
    out
}

/// Build `names` (and their parents) where missing. `progress` gets one line per event.
pub async fn ensure(
    engine: &Engine,
    names: &[&str],
    base: &BaseSource,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<Vec<String>, LabError> {
    let mut built = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for n in names {
        for r in chain(n) {
            if done.contains(&r.name) {
                continue;
            }
            done.push(r.name);
            let t = tag(r.name, base);
            if engine.image_id(&t).await.is_some() {
                continue;
            }
            let start = std::time::Instant::now();
            progress(format!("building {t} ({})", r.about));
            if r.parent.is_none() {
                build_base(engine, &t, base).await?;
            } else {
                build_dockerfile(engine, r, &t, base, progress).await?;
            }
            progress(format!("built {t} in {:.1} s", start.elapsed().as_secs_f64()));
            built.push(t);
        }
    }
    Ok(built)
}

async fn build_base(engine: &Engine, t: &str, base: &BaseSource) -> Result<(), LabError> {
    let (repo, tg) = t.split_once(':').unwrap_or((t, "latest"));
    let fail = |message: String| LabError::BuildImage { image: t.to_string(), message };
    if let Some(src) = &base.pull {
        let opts = qp::CreateImageOptionsBuilder::default().from_image(src).build();
        let mut s = engine.docker.create_image(Some(opts), None, None);
        while let Some(r) = s.next().await {
            r.map_err(|e| fail(format!("pulling {src}: {e}")))?;
        }
        let opts = qp::TagImageOptionsBuilder::default().repo(repo).tag(tg).build();
        return engine.docker.tag_image(src, Some(opts)).await.map_err(|e| fail(format!("tagging {src}: {e}")));
    }
    // debootstrap writes the root filesystem as a tar on stdout; the engine imports it as an image.
    let script = recipe("base").expect("base recipe").files[0].1;
    let dir = std::env::temp_dir().join(format!("clusterlab-base-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    let script_path = dir.join("build.sh");
    std::fs::write(&script_path, script).map_err(|e| fail(e.to_string()))?;
    let out = tokio::process::Command::new("bash")
        .arg(&script_path)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| fail(format!("cannot run bash: {e}")));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    if !out.status.success() {
        return Err(fail(format!(
            "images/base/build.sh exited with {}\n{}\n    hint: it needs root and debootstrap (apt-get install debootstrap)",
            out.status,
            crate::provider::tail(&String::from_utf8_lossy(&out.stderr), 15)
        )));
    }
    let opts = qp::CreateImageOptionsBuilder::default().from_src("-").repo(repo).tag(tg).build();
    let mut s = engine.docker.create_image(Some(opts), Some(bollard::body_full(Bytes::from(out.stdout))), None);
    while let Some(r) = s.next().await {
        r.map_err(|e| fail(format!("importing the root filesystem: {e}")))?;
    }
    Ok(())
}

async fn build_dockerfile(
    engine: &Engine,
    r: &Recipe,
    t: &str,
    base: &BaseSource,
    progress: &mut (dyn FnMut(String) + Send),
) -> Result<(), LabError> {
    let fail = |message: String| LabError::BuildImage { image: t.to_string(), message };
    let mut ar = tar::Builder::new(Vec::new());
    for (name, data) in r.files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(if name.ends_with(".sh") || name.starts_with("clusterlab-") { 0o755 } else { 0o644 });
        h.set_cksum();
        ar.append_data(&mut h, name, *data).map_err(|e| fail(e.to_string()))?;
    }
    let context = ar.into_inner().map_err(|e| fail(e.to_string()))?;
    let parent = tag(r.parent.expect("dockerfile recipes have a parent"), base);
    let args = std::collections::HashMap::from([("BASE".to_string(), parent)]);
    let opts = qp::BuildImageOptionsBuilder::default()
        .t(t)
        .buildargs(&args)
        // rm/forcerm: no intermediate containers left behind, even when a step fails.
        .rm(true)
        .forcerm(true)
        .labels(&std::collections::HashMap::from([("io.clusterlab.recipe".to_string(), r.name.to_string())]))
        .build();
    let mut s = engine.docker.build_image(opts, None, Some(bollard::body_full(Bytes::from(context))));
    let mut log = String::new();
    while let Some(item) = s.next().await {
        let info = item.map_err(|e| fail(format!("{e}\n{}", crate::provider::tail(&log, 15))))?;
        if let Some(line) = info.stream {
            if line.starts_with("Step ") {
                progress(format!("  {}: {}", r.name, line.trim()));
            }
            log.push_str(&line);
        }
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            return Err(fail(format!("{err}\n{}", crate::provider::tail(&log, 15))));
        }
    }
    Ok(())
}

/// The tag a scenario's `image:` names: a clusterlab recipe by name, anything else verbatim.
pub fn resolve_workload(image: &str, base: &BaseSource) -> String {
    match recipe(image) {
        Some(r) if r.parent.is_some() && r.name != "node" => tag(image, base),
        _ => image.to_string(),
    }
}

/// `$XDG_CACHE_HOME/clusterlab` (default `~/.cache/clusterlab`): the bundles, and the node
/// image's shared programs.
pub fn cache_root() -> std::path::PathBuf {
    use std::path::PathBuf;
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
        .join("clusterlab")
}

/// The node image's large programs that every node runs or execs often (its engines, their
/// shims and CLIs, Kubernetes' etcd and kubectl). Bind-mounted read-only over themselves from
/// one host copy: the same files, but read through the host's page cache once for all nodes.
/// From the image's own layers, each node reads its own copy — on a host whose storage driver
/// is fuse-overlayfs (this machine type) every container mount has its own page cache, ~90 MiB
/// of program text per swarm node (measured: 152 → 65 MiB per idle node).
pub const SHARED_PROGRAMS: &[&str] = &[
    "/usr/sbin/dockerd",
    "/usr/bin/docker",
    "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/runc",
    "/usr/bin/ctr",
    "/usr/bin/etcd",
    "/usr/bin/kubectl",
];

/// Binds (host path, node path) of [`SHARED_PROGRAMS`] from `dir`.
fn program_binds(dir: &std::path::Path) -> Vec<(String, String)> {
    SHARED_PROGRAMS.iter().map(|p| (dir.join(program_file(p)).display().to_string(), p.to_string())).collect()
}

fn program_file(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The node image's shared programs on the host, copied out of the image once per image id
/// (`cache_root()/programs/<id>`), as binds for every node. `labels`: the run's, for the
/// throwaway container that copies them. The copy is made beside its place and renamed into
/// it, so a run never sees half a copy; copies of images no longer on the engine are removed.
pub async fn shared_programs(
    engine: &Engine,
    node_image: &str,
    labels: std::collections::HashMap<String, String>,
) -> Result<Vec<(String, String)>, LabError> {
    let fail = |message: String| LabError::SharePrograms { image: node_image.to_string(), message };
    let id = engine.image_id(node_image).await.ok_or_else(|| LabError::ImageMissing { image: node_image.to_string() })?;
    let id = id.trim_start_matches("sha256:").to_string();
    let root = programs_root();
    let dir = root.join(&id);
    if dir.is_dir() {
        return Ok(program_binds(&dir));
    }
    std::fs::create_dir_all(&root).map_err(|e| fail(format!("cannot create {}: {e}", root.display())))?;
    let tmp = root.join(format!(".{id}-{}", crate::plan::new_run_id()));
    std::fs::create_dir(&tmp).map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let copied = async {
        let said = engine.copy_from_image(node_image, SHARED_PROGRAMS, &tmp, labels).await.map_err(|e| fail(e.to_string()))?;
        // Every program, whole, checked here against the size the image gave it: a failed or
        // cut-short copy must never become the cache every later lab binds (and an engine on
        // another host copies them there, not here).
        let missing = incomplete_copies(&said, |name| std::fs::metadata(tmp.join(name)).ok().map(|m| m.len()));
        if !missing.is_empty() {
            // What the copy said besides sizes (cp's own error), else the likely cause.
            let why: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(|c: char| c.is_ascii_digit())).collect();
            let why = if why.is_empty() { "is the Docker engine on another host?".to_string() } else { why.join("; ") };
            return Err(fail(format!("{} did not arrive whole in {} ({why})", missing.join(", "), tmp.display())));
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Another run may have won the race to the same place: its copy is as good.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(fail(format!("cannot move the copy into {}", dir.display())));
        }
    }
    prune_programs(engine, &root, &id).await;
    Ok(program_binds(&dir))
}

/// `cache_root()/programs`: one directory per node image id (see [`shared_programs`]); names
/// starting with `.` are copies being made.
pub fn programs_root() -> std::path::PathBuf {
    cache_root().join("programs")
}

/// The shared programs that are not on the host whole: missing from what the copying container
/// said (`<size> <name>` lines, printed only after every copy succeeded), or whose copy
/// (`size_on_host` of its file name) differs in size.
fn incomplete_copies(said: &str, size_on_host: impl Fn(&str) -> Option<u64>) -> Vec<&'static str> {
    let said: std::collections::HashMap<&str, u64> =
        said.lines().filter_map(|l| l.trim().split_once(' ')).filter_map(|(size, name)| Some((name, size.parse().ok()?))).collect();
    SHARED_PROGRAMS
        .iter()
        .filter(|p| {
            let name = program_file(p);
            match said.get(name) {
                Some(size) => size_on_host(name) != Some(*size),
                None => true,
            }
        })
        .copied()
        .collect()
}

/// Remove copies of images the engine no longer has (no lab can start from them; a running
/// lab's binds keep their files), and half-made copies older than an hour (a killed run's).
async fn prune_programs(engine: &Engine, root: &std::path::Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == keep {
            continue;
        }
        let stale = if name.starts_with('.') {
            e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).is_some_and(|age| age.as_secs() > 3600)
        } else {
            engine.image_id(&format!("sha256:{name}")).await.is_none()
        };
        if stale {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_programs_are_absolute_and_their_flat_copies_never_collide() {
        let names: std::collections::BTreeSet<&str> = SHARED_PROGRAMS.iter().map(|p| program_file(p)).collect();
        assert_eq!(names.len(), SHARED_PROGRAMS.len(), "two programs share a file name: {SHARED_PROGRAMS:?}");
        assert!(SHARED_PROGRAMS.iter().all(|p| p.starts_with('/')));
        let binds = program_binds(std::path::Path::new("/cache/programs/abc"));
        assert_eq!(binds[0], ("/cache/programs/abc/dockerd".to_string(), "/usr/sbin/dockerd".to_string()));
        assert_eq!(binds.len(), SHARED_PROGRAMS.len());
    }

    #[test]
    fn a_copy_counts_only_when_every_program_arrived_whole() {
        let said: String = SHARED_PROGRAMS.iter().map(|p| format!("100 {}\n", program_file(p))).collect();
        assert!(incomplete_copies(&said, |_| Some(100)).is_empty());
        // Cut short on the host, missing on the host, or never said (cp failed: nothing printed).
        assert_eq!(incomplete_copies(&said, |n| Some(if n == "dockerd" { 40 } else { 100 })), ["/usr/sbin/dockerd"]);
        assert_eq!(incomplete_copies(&said, |n| (n != "runc").then_some(100)), ["/usr/sbin/runc"]);
        assert_eq!(incomplete_copies("", |_| Some(100)).len(), SHARED_PROGRAMS.len());
        assert_eq!(incomplete_copies("cp: write error: No space left on device\n", |_| Some(100)).len(), SHARED_PROGRAMS.len());
    }
}
