use super::gather::{exempt, parse_vxlan};
use super::*;

/// Evidence recorded from real runs (each a check that failed on purpose: the expectation was
/// edited), explained again: the cause lines are snapshots.
macro_rules! recorded {
    ($name:ident, $file:literal) => {
        #[test]
        fn $name() {
            let e: Evidence = serde_json::from_str(include_str!(concat!("recorded/", $file, ".json"))).expect("recorded evidence parses");
            insta::assert_snapshot!(stringify!($name), explain(&e).join("\n"));
        }
    };
}

recorded!(vxlan_drop_names_the_node_the_fault_and_its_counter, "vxlan-only-worker-1-lost");
recorded!(partition_groups_merge_into_one_line, "faults-manager-cut-off");
recorded!(loss_counts_and_vxlan_never_arrived, "faults-worker-2-lost");
recorded!(mtu_black_hole_is_named, "mtu-big-answers-into-worker-1-hang");
recorded!(paused_node_is_named, "stop-worker-1-silent");
recorded!(stray_proxy_shows_page_identity_and_hint, "proxy-api-through-stray-proxy");
// The manager's overlay entry for worker-2's probe deleted by hand (`ip neigh del` in the
// network's namespace): the state the CI failure after a partition's revert was in.
recorded!(overlay_entry_lost_names_the_way_it_breaks, "overlay-worker-2-probe-lost");

fn pair(entry: &str, node: &str, answered: bool, expected: bool) -> Pair {
    let answers = if answered { 1 } else { 0 };
    Pair {
        entry: entry.into(),
        target: format!("web@{node}"),
        node: node.into(),
        answered,
        expected,
        detail: "timeout".into(),
        answers,
        requests: 1,
    }
}

/// The seed's "every other request hangs" on a ClusterIP: from master, 7 of 10 requests to the
/// VIP hung; every answer came from the pod on master, so the lost ones went to the worker,
/// whose VXLAN port the fault drops.
#[test]
fn vip_share_names_the_lost_requests_and_where_they_went() {
    let mut on_master = pair("master", "master", true, true);
    on_master.answers = 3;
    on_master.requests = 10;
    let mut on_worker = pair("master", "worker", false, true);
    on_worker.requests = 10;
    let e = Evidence {
        kind: "vip".into(),
        pairs: vec![on_master, on_worker],
        lost: vec![Lost { entry: "master".into(), lost: 7, sent: 10, detail: "timeout".into() }],
        faults: vec![FaultFact {
            name: "vxlan-lossy".into(),
            effect: Effect::Drop {
                nodes: vec!["worker".into()],
                what: "UDP 8472".into(),
                direction: "in".into(),
                peers: vec![],
                percent: Some(60.0),
            },
            packets: [("worker".to_string(), 21)].into_iter().collect(),
        }],
        ..Default::default()
    };
    let lines = explain(&e);
    insta::assert_snapshot!(lines.join("\n"));
    assert!(lines[0].starts_with("7 of 10 requests from master to the VIP went unanswered (timeout)"), "{lines:?}");
    assert!(lines[0].contains("the lost ones are those the VIP sent to worker"), "{lines:?}");
    assert!(lines[0].contains("60% of UDP 8472 dropped into worker by fault vxlan-lossy (21 packets)"), "{lines:?}");
}

/// A pair that answered some of its requests gets its share named, not "did not answer".
#[test]
fn partial_pair_share_is_named() {
    let mut p = pair("master", "worker", true, true);
    p.answers = 12;
    p.requests = 20;
    let e = Evidence { kind: "node-port".into(), pairs: vec![p], ..Default::default() };
    let lines = explain(&e);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("8 of 20 requests from master to web@worker went unanswered (timeout)"), "{lines:?}");
}

#[test]
fn nothing_to_say_when_everything_answers() {
    let e = Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", true, true)], ..Default::default() };
    assert!(explain(&e).is_empty());
}

#[test]
fn unexplained_silence_says_so_and_points_at_the_evidence() {
    let e =
        Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", false, true), pair("a", "a", true, true)], ..Default::default() };
    let l = explain(&e);
    assert_eq!(l.len(), 1);
    assert!(l[0].starts_with("1 of 2 pairs did not answer: all targets on b, from a; no applied fault"), "{l:?}");
}

#[test]
fn a_stopped_component_is_named_unless_a_kill_fault_explains_it() {
    let mut e = Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", false, true)], ..Default::default() };
    e.stopped.insert("b".into(), vec!["kube-proxy".into()]);
    assert!(explain(&e)[0].ends_with("kube-proxy is not running on b"), "{:?}", explain(&e));
    e.faults.push(FaultFact {
        name: "no-proxy".into(),
        effect: Effect::Kill { nodes: vec!["b".into()], component: "kube-proxy".into() },
        packets: Default::default(),
    });
    let l = explain(&e);
    assert!(l[0].ends_with("kube-proxy is stopped on b by fault no-proxy"), "{l:?}");
}

#[test]
fn a_drop_that_matched_nothing_is_not_called_the_cause() {
    let mut e = Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", false, true)], ..Default::default() };
    e.faults.push(FaultFact {
        name: "d".into(),
        effect: Effect::Drop { nodes: vec!["b".into()], what: "UDP 4789".into(), direction: "in".into(), peers: vec![], percent: None },
        packets: [("b".to_string(), 0)].into(),
    });
    e.stopped.insert("a".into(), vec!["dockerd".into()]);
    let l = explain(&e);
    assert!(l[0].ends_with("dockerd is not running on a"), "{l:?}");
    e.stopped.clear();
    assert!(explain(&e)[0].ends_with("fault d (on b) matched no packet during the check"), "{:?}", explain(&e));
}

#[test]
fn unsupported_checks_say_why() {
    let e = Evidence {
        kind: "vip".into(),
        unsupported: Some("kernel lacks IP_VS".into()),
        pairs: vec![pair("a", "b", false, true)],
        ..Default::default()
    };
    assert_eq!(explain(&e), ["unsupported here: kernel lacks IP_VS (1 of 1 pairs did not answer)"]);
}

#[test]
fn proxy_answers_are_taken_apart() {
    let a = ProxyAnswer {
        raw: "HTTP/1.1 503 Service Unavailable\r\nServer: squid/5.7\r\nX-Squid-Error: ERR_CONNECT_FAIL 110\r\n\r\n<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\">\n<p>Generated Sat, 28 Nov 2026 by stray (squid/5.7)</p>".into(),
        ..Default::default()
    };
    assert_eq!(a.status(), "HTTP/1.1 503 Service Unavailable");
    assert_eq!(a.header("x-squid-error"), Some("ERR_CONNECT_FAIL 110"));
    assert_eq!(a.header("Via"), None);
    assert!(a.body_start().starts_with("<!DOCTYPE html"));
    assert_eq!(a.signature().as_deref(), Some("stray (squid/5.7)"));
}

#[test]
fn no_proxy_matching_follows_go() {
    assert!(exempt("10.213.0.11,localhost", "10.213.0.11"));
    assert!(exempt("10.213.0.0/24", "10.213.0.11"));
    assert!(exempt("*", "10.213.0.11"));
    assert!(!exempt("10.213.1.0/24,localhost", "10.213.0.11"));
    assert!(!exempt("", "10.213.0.11"));
    assert!(!exempt("10.213.0.1", "10.213.0.11"), "no prefix matching on addresses");
}

#[test]
fn vxlan_counters_sum_every_device() {
    let out = "[{\"ifname\":\"vx0\",\"stats64\":{\"rx\":{\"packets\":10,\"dropped\":1},\"tx\":{\"packets\":7}}}]\n\n[{\"ifname\":\"vxlan0\",\"stats64\":{\"rx\":{\"packets\":5,\"dropped\":0},\"tx\":{\"packets\":3}}}]\n";
    assert_eq!(parse_vxlan(out), Vxlan { rx: 15, tx: 10, rx_dropped: 1 });
    assert_eq!(parse_vxlan("Device \"vxlan\" does not exist.\n"), Vxlan::default());
}

#[test]
fn missing_service_plumbing_is_named() {
    let mut e = Evidence { kind: "vip".into(), pairs: vec![pair("a", "b", false, true)], ..Default::default() };
    e.endpoints = Some(vec![]);
    e.service_rules.insert("a".into(), false);
    let l = explain(&e);
    assert!(
        l[0].contains("the service has no ready endpoint in the API; kube-proxy has no rules for the service's ClusterIP on a"),
        "{l:?}"
    );
    e.endpoints = Some(vec!["10.244.0.2".into()]);
    e.service_rules.insert("a".into(), true);
    assert!(!explain(&e)[0].contains("kube-proxy"), "rules present: not a cause");
}

/// A dns check while the cluster DNS is killed: every lookup fails, whichever node the names
/// lead to (a headless service's pods on the workers), and the cause is the stopped server —
/// not the workers. With the server running, nothing blames it.
#[test]
fn a_stopped_cluster_dns_explains_every_lookup() {
    let kill = |component: &str| FaultFact {
        name: "dns-down".into(),
        effect: Effect::Kill { nodes: vec!["master".into()], component: component.into() },
        packets: BTreeMap::new(),
    };
    let e = Evidence {
        kind: "dns".into(),
        pairs: vec![pair("worker-1", "worker-2", false, true), pair("worker-2", "worker-1", false, true)],
        faults: vec![kill(CLUSTER_DNS)],
        ..Default::default()
    };
    let lines = explain(&e);
    assert!(lines.iter().all(|l| l.contains("the cluster DNS (cluster-dns on master) is stopped by fault dns-down")), "{lines:?}");
    // Another component killed on the master explains nothing about lookups between workers.
    let e = Evidence { faults: vec![kill("kube-scheduler")], ..e };
    assert!(explain(&e).iter().all(|l| !l.contains("DNS") && !l.contains("kube-scheduler")), "{:?}", explain(&e));
    // Found stopped without a fault: named as not running.
    let e = Evidence { faults: vec![], stopped: [("master".to_string(), vec![CLUSTER_DNS.to_string()])].into(), ..e };
    assert!(explain(&e).iter().any(|l| l.contains("the cluster DNS (cluster-dns on master) is not running")), "{:?}", explain(&e));
}

/// The CI failure after a partition's revert, as its numbers were: worker-2's requests reached
/// web.2 on the manager (VXLAN arrived) and no answer came back, because the manager's overlay
/// had lost worker-2's probe. The cause names the missing entry and which way it breaks; with
/// every entry in place, nothing is said about the overlay.
#[test]
fn a_lost_overlay_entry_is_named_with_the_direction_it_breaks() {
    let mut silent = pair("worker-2", "manager", false, true);
    silent.target = "web.2@manager".into();
    let mut fine = pair("manager", "manager", true, true);
    fine.target = "web.2@manager".into();
    let view = |local: &[(&str, &str)], known: &[&str]| OverlayView {
        local: local.iter().map(|(n, ip)| (n.to_string(), ip.to_string())).collect(),
        known: known.iter().map(|s| s.to_string()).collect(),
    };
    let mut e = Evidence {
        kind: "replicas".into(),
        pairs: vec![silent, fine],
        vxlan: [
            ("worker-2".to_string(), Vxlan { tx: 162, ..Default::default() }),
            ("manager".to_string(), Vxlan { rx: 164, ..Default::default() }),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    e.overlay.insert("manager".into(), view(&[(PROBE, "10.0.1.5"), ("web.2.kvvmmh0vz2f2", "10.0.1.4")], &["10.0.1.6"]));
    e.overlay.insert("worker-2".into(), view(&[(PROBE, "10.0.1.9"), ("web.3.x1y2", "10.0.1.6")], &["10.0.1.4", "10.0.1.5"]));
    let text = explain(&e).join("\n");
    assert!(
        text.contains("manager's overlay has no entry for worker-2's probe (10.0.1.9): web.2@manager's answers cannot go back"),
        "{text}"
    );
    assert!(!text.contains("worker-2's overlay has no entry"), "{text}");
    assert!(text.contains("bulk sync"), "{text}");
    assert!(!text.contains("yet no answer came back"), "{text}");

    // The same silence with every entry in place: the overlay is not the cause named.
    e.overlay.get_mut("manager").unwrap().known.insert("10.0.1.9".into());
    let text = explain(&e).join("\n");
    assert!(!text.contains("overlay has no entry"), "{text}");
    assert!(text.contains("yet no answer came back"), "{text}");
}

#[test]
fn overlay_lines_parse_into_a_view() {
    let out =
        "known 10.0.1.8\nknown 10.0.1.4\nlocal /web.2.kvvmmh0vz2f25tebrg8g5c0mc 10.0.1.3\nlocal /clusterlab-probe-labnet 10.0.1.7\nnoise\n";
    let v = super::gather::parse_overlay(out, "/clusterlab-probe-labnet");
    assert_eq!(v.known.iter().cloned().collect::<Vec<_>>(), ["10.0.1.4", "10.0.1.8"]);
    assert_eq!(v.local.get(PROBE).map(String::as_str), Some("10.0.1.7"));
    assert_eq!(v.address_of("web.2").map(String::as_str), Some("10.0.1.3"));
    assert_eq!(v.address_of("web.20"), None);
}

/// A server on the target's node whose accept queue overflowed is named, with where and how
/// often, and only for that node; namespaces that never overflowed are left out when parsed.
#[test]
fn a_server_whose_listen_queue_overflowed_is_named() {
    use crate::probe::{overflowed, parse_listen};
    let counts = parse_listen("10.0.1.1 0\n10.0.1.4,172.18.0.4 8\n- 0\ngarbage\n10.0.1.3 x\n");
    assert_eq!(counts.len(), 3, "{counts:?}");
    let now = [("b".to_string(), counts)].into_iter().collect();
    // Since they started: only the one that overflowed.
    assert_eq!(overflowed(&Default::default(), &now)["b"], vec![("10.0.1.4,172.18.0.4".to_string(), 8)]);
    // Between two readings: the growth, and nothing where it did not grow.
    let before = [("b".to_string(), parse_listen("10.0.1.4,172.18.0.4 5\n"))].into_iter().collect();
    assert_eq!(overflowed(&before, &now)["b"], vec![("10.0.1.4,172.18.0.4".to_string(), 3)]);
    assert!(overflowed(&now, &now).is_empty());
    let mut e =
        Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", false, true), pair("a", "c", false, true)], ..Default::default() };
    e.listen_overflows.insert("b".into(), vec![("10.0.1.4".into(), 8)]);
    let l = explain(&e);
    let on_b = l.iter().find(|x| x.contains("targets on b")).expect("a line for b");
    assert!(
        on_b.contains("a server on b could not accept fast enough: its listen queue overflowed 8 times at 10.0.1.4 since it started"),
        "{l:?}"
    );
    let on_c = l.iter().find(|x| x.contains("targets on c")).expect("a line for c");
    assert!(!on_c.contains("listen queue") && on_c.contains("no applied fault"), "{l:?}");
}

/// Beside a fault that matched packets, an old overflow count is no cause: it is left out.
#[test]
fn a_listen_overflow_does_not_compete_with_a_fault_that_matched() {
    let mut e = Evidence { kind: "replicas".into(), pairs: vec![pair("a", "b", false, true)], ..Default::default() };
    e.listen_overflows.insert("b".into(), vec![("10.0.1.4".into(), 3)]);
    e.faults.push(FaultFact {
        name: "cut".into(),
        effect: Effect::Drop { nodes: vec!["b".into()], what: "all traffic".into(), direction: "in".into(), peers: vec![], percent: None },
        packets: [("b".to_string(), 9)].into_iter().collect(),
    });
    let l = explain(&e);
    assert!(l[0].contains("dropped into b by fault cut (9 packets)") && !l[0].contains("listen queue"), "{l:?}");
}
