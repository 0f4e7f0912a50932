//! The reaper: nothing of a run outlives its process, even one killed with SIGKILL (no
//! handler runs then). In the spirit of testcontainers' Ryuk: a small labelled container,
//! started with the run's first objects, that watches the owning process and, once it is gone,
//! removes every container, network and volume labelled with the run (itself last, by the
//! engine). It watches by pid and start time, read from the host's process table (`--pid=host`),
//! so a reused pid never fools it; when the engine runs on another host than the owner (another
//! boot id) it cannot watch, says so and exits, and `clean` remains the way out. A run that ends
//! normally removes the reaper with the rest; kept labs (`up`, `--keep`) get none.

use crate::plan::LabPlan;
use crate::provider::{Engine, LabError};

/// The reaper's program (POSIX sh in the node image, which has the docker CLI): arguments are
/// the owner's boot id, pid and start time, the run id, and the script that thaws, from the
/// host, what a node froze (provider's THAW_FROM_HOST) — data, never pasted into the text.
const SCRIPT: &str = r#"set -u
boot=$1 pid=$2 start=$3 run=$4 thaw=$5
if [ "$(cat /proc/sys/kernel/random/boot_id)" != "$boot" ]; then
  echo "the owner of run $run is on another host: not watched (clusterlab clean removes what it leaves)"; exit 0
fi
# Field 22 of /proc/PID/stat, the start time; the command name (field 2) may hold spaces.
started() { sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20; }
echo "watching process $pid of run $run"
while [ "$(started)" = "$start" ]; do sleep 1; done
echo "process $pid is gone: removing run $run"
self=$(hostname)
f="label=io.clusterlab.run=$run"
others=$(docker ps -aq --filter "$f" | grep -v "^${self}")
# A node paused by a stop-node fault is resumed, and what the nodes froze of their own thawed
# from the host: a frozen process takes no SIGKILL, and its node would never end.
pids=
for c in $others; do
  set -- $(docker inspect -f '{{.State.Paused}} {{.State.Pid}}' "$c" 2>/dev/null)
  [ "${1:-}" = true ] && docker unpause "$c" >/dev/null
  [ "${2:-0}" = 0 ] || pids="$pids $2"
done
[ -z "$pids" ] || sh -c "$thaw" clusterlab-thaw $pids
for c in $others; do docker rm -f -v "$c" >/dev/null; done
docker network ls -q --filter "$f" | xargs -r docker network rm >/dev/null
docker volume ls -q --filter "$f" | xargs -r docker volume rm >/dev/null
echo "run $run removed"
"#;

/// Set `CLUSTERLAB_REAPER=off` to run without one (then only `clean` removes what a killed run leaves).
pub fn wanted() -> bool {
    std::env::var("CLUSTERLAB_REAPER").map(|v| v != "off").unwrap_or(true)
}

/// Start the run's reaper, unless its owner is kept on purpose or reaping is switched off.
/// Returns what to say about it.
pub async fn watch(engine: &Engine, plan: &LabPlan, image: &str) -> Result<Option<String>, LabError> {
    if !wanted() {
        return Ok(None);
    }
    let mut it = plan.owner.split('/');
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next(), it.next()) else {
        // Kept on purpose (or no owner): nothing to watch.
        return Ok(None);
    };
    let args = [boot, pid, start, plan.run_id.as_str(), crate::provider::THAW_FROM_HOST].map(str::to_string);
    engine.start_reaper(plan, &format!("{}-reaper", plan.lab), image, SCRIPT, &args).await?;
    Ok(Some(format!("a reaper removes this run's objects if process {pid} dies, SIGKILL included")))
}

#[cfg(test)]
mod tests {
    /// The reaper's program, run by a real shell against a fake /proc entry: it reads the start
    /// time the way `owner` writes it, also with spaces in the command name.
    #[test]
    fn the_reaper_reads_start_times_like_the_owner_does() {
        let dir = tempfile::tempdir().unwrap();
        let stat = dir.path().join("stat");
        // pid (comm with spaces) state ppid ... field 22 = 777
        let fields: Vec<String> = (3..=30).map(|i| if i == 22 { "777".to_string() } else { i.to_string() }).collect();
        std::fs::write(&stat, format!("42 (my test bin) {}\n", fields.join(" "))).unwrap();
        let script = format!("sed 's/^.*) //' {} | cut -d' ' -f20", stat.display());
        let out = std::process::Command::new("sh").args(["-c", &script]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "777");
        assert!(super::SCRIPT.contains(r#"sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20"#));
    }
}
