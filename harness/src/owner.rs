//! Who owns a run: every object of a run carries its owner, so `clean` can tell a run whose
//! process is gone (killed, crashed) from one that is still running — on a shared engine, a
//! parallel CI job's live labs are never touched. An owner is this host's boot id, the owning
//! process's pid and that process's start time (a reused pid has another start time), or
//! `kept` for labs kept on purpose (`up`, `--keep`), which only `down` or `clean --all` remove.

/// The owner of runs that this process starts.
pub fn current(kept: bool) -> String {
    if kept {
        return KEPT.to_string();
    }
    let pid = std::process::id();
    format!("{}/{pid}/{}", boot_id(), start_time(pid).unwrap_or_default())
}

/// Labs kept on purpose.
pub const KEPT: &str = "kept";

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// What `clean` makes of an owner label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The owning process still runs on this host: never removed by `clean`.
    Alive,
    /// Kept on purpose: removed by `down` or `clean --all`.
    Kept,
    /// The owner is gone (or the objects carry no owner: made by an older version, or torn).
    Gone(String),
}

/// Is the owner of a run still there? `proc_start` reads a process's start time (None: no
/// such process), so the decision is testable without real processes.
pub fn liveness(owner: Option<&str>, this_boot: &str, proc_start: &dyn Fn(u32) -> Option<String>) -> Liveness {
    let Some(owner) = owner.filter(|o| !o.is_empty()) else {
        return Liveness::Gone("its objects name no owner".into());
    };
    if owner == KEPT {
        return Liveness::Kept;
    }
    let mut it = owner.split('/');
    let (Some(boot), Some(pid), Some(start)) = (it.next(), it.next().and_then(|p| p.parse::<u32>().ok()), it.next()) else {
        return Liveness::Gone(format!("unreadable owner {owner:?}"));
    };
    if boot != this_boot {
        return Liveness::Gone("its owner ran before this host last booted".into());
    }
    match proc_start(pid) {
        None => Liveness::Gone(format!("process {pid} has exited")),
        Some(s) if s != start => Liveness::Gone(format!("process {pid} has exited (its pid now belongs to another process)")),
        Some(_) => Liveness::Alive,
    }
}

/// `liveness` against this host's processes.
pub fn check(owner: Option<&str>) -> Liveness {
    liveness(owner, &boot_id(), &start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_owner_is_alive_and_a_gone_one_is_gone() {
        let procs = |pid: u32| match pid {
            10 => Some("500".to_string()),
            11 => Some("999".to_string()),
            _ => None,
        };
        assert_eq!(liveness(Some("b/10/500"), "b", &procs), Liveness::Alive);
        assert!(matches!(liveness(Some("b/12/500"), "b", &procs), Liveness::Gone(w) if w.contains("exited")));
        // The pid was reused by a process that started later.
        assert!(matches!(liveness(Some("b/11/500"), "b", &procs), Liveness::Gone(w) if w.contains("another process")));
        assert!(matches!(liveness(Some("a/10/500"), "b", &procs), Liveness::Gone(w) if w.contains("booted")));
        assert_eq!(liveness(Some("kept"), "b", &procs), Liveness::Kept);
        assert!(matches!(liveness(None, "b", &procs), Liveness::Gone(_)));
        assert!(matches!(liveness(Some("junk"), "b", &procs), Liveness::Gone(_)));
    }

    #[test]
    fn this_process_is_alive() {
        assert_eq!(check(Some(&current(false))), Liveness::Alive);
        assert_eq!(check(Some(&current(true))), Liveness::Kept);
    }
}
