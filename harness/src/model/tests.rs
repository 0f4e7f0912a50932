use super::*;
use proptest::prelude::*;
use std::time::Duration;

const GOOD: &str = include_str!("../../../scenarios/swarm-vxlan-blocked.yaml");

fn problems(text: &str) -> String {
    match parse_str(text, "t.yaml") {
        Ok(_) => "valid".into(),
        Err(p) => p.to_string(),
    }
}

#[test]
fn shipped_scenarios_are_valid() {
    for f in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios")).unwrap() {
        let p = f.unwrap().path();
        if let Err(e) = load(&p) {
            panic!("{} is invalid:\n{e}", p.display());
        }
    }
}

#[test]
fn count_expands_and_groups_resolve() {
    let s = parse_str(GOOD, "t.yaml").unwrap();
    let names: Vec<&str> = s.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["manager", "worker-1", "worker-2"]);
    assert_eq!(s.nodes[1].role, Role::Worker);
    let Step::Check(c) = &s.steps[3] else { panic!("step 3 is a check") };
    assert_eq!(c.from, ["manager", "worker-2"]);
    assert_eq!(c.expect, Expectation::one(&["worker-1"], None));
    assert_eq!(c.faults_hit, ["vxlan-blocked"]);
    // Defaults: all-nodes, 3 requests per pair (replicas), 2 s.
    let Step::Check(first) = &s.steps[0] else { panic!() };
    assert_eq!(first.from.len(), 3);
    assert_eq!((first.kind, first.requests), (CheckKind::Replicas, 3));
    assert_eq!(first.timeout, std::time::Duration::from_secs(2));
}

#[test]
fn expectation_judges_pairs() {
    let e = Expectation::one(&["w1"], None);
    assert!(!e.should_answer("m", "w1"));
    assert!(e.should_answer("m", "w2"));
    let only_from_m = Expectation::one(&["w1"], Some(&["m"]));
    assert!(!only_from_m.should_answer("m", "w1"));
    assert!(only_from_m.should_answer("w2", "w1"));
    // Several rules: a pair matching any one must not answer.
    let mut both = Expectation::one(&["w"], Some(&["m"]));
    both.unreachable.extend(Expectation::one(&["m"], Some(&["w"])).unreachable);
    assert!(!both.should_answer("m", "w") && !both.should_answer("w", "m"));
    assert!(both.should_answer("m", "m") && both.should_answer("w", "w"));
    assert!(Expectation::default().should_answer("m", "w1"));
}

#[test]
fn unknown_field_is_located() {
    let t = GOOD.replace("{ name: manager, role: manager }", "{ name: manager, role: manager, colour: red }");
    insta::assert_snapshot!(problems(&t));
}

#[test]
fn wrong_type_is_located() {
    let t = GOOD.replace("replicas: 3", "replicas: three");
    insta::assert_snapshot!(problems(&t));
}

#[test]
fn unknown_enum_value_is_located() {
    let t = GOOD.replace("kind: drop", "kind: dorp");
    insta::assert_snapshot!(problems(&t));
}

#[test]
fn every_semantic_problem_is_collected_and_located() {
    let t = r#"api-version: clusterlab/v2
name: Bad_Name
nodes:
  - { name: manager, role: manager }
  - { name: manager }
stack: { kind: swarm }
networks: [ { name: net } ]
services:
  - { name: web, image: web, network: nett, publish: [ { port: 70000 } ] }
  - { name: web, image: web }
faults:
  - { name: f1, kind: drop, node: nosuch, port: 4789 }
  - { name: f2, kind: partition, side-a: [manager], side-b: [manager], percent: 5 }
  - { name: f3, kind: loss, node: manager, percent: 150 }
steps:
  - apply: f9
  - revert: f1
  - check: { name: c1, kind: replicas, service: webb, from: [ghost] }
  - check: { name: c1, kind: dns, service: web, via: manager, timeout: soon }
  - scale: { service: api, replicas: 2 }
"#;
    insta::assert_snapshot!(problems(t));
}

#[test]
fn stack_specific_fields_are_checked() {
    let swarm = GOOD.replace("stack: { kind: swarm }", "stack: { kind: swarm, pod-cidr: 10.244.0.0/16 }").replace(
        "  - { name: web, image: web, replicas: 3, network: mynet1 }",
        "  - { name: web, image: web, replicas: 3, network: mynet1, type: node-port }",
    ) + "  - check: { name: api, kind: api }\n  - check: { name: from-pod, kind: replicas, service: web, client: pod }\n";
    insta::assert_snapshot!("swarm-with-kubernetes-fields", problems(&swarm));
    let k8s = r#"api-version: clusterlab/v1
name: k
nodes: [ { name: master, role: manager }, { name: worker } ]
stack: { kind: kubernetes, bundle: somewhere, pod-network: { backend: host-gw, port: 4789 }, service-cidr: 10.32.0.0/33 }
services:
  - { name: web, image: web, publish: [ { port: 8080 } ], node-port: 30062 }
  - { name: api, image: web, type: node-port, node-port: 80 }
  - { name: db, image: web, endpoint-mode: dnsrr, type: node-port }
  - { name: ledger, image: web, endpoint-mode: dnsrr }
steps:
  - check: { name: np, kind: node-port, service: web }
  - check: { name: api-from-pod, kind: api, client: pod }
  - check: { name: headless-vip, kind: vip, service: ledger }
  - check: { name: dns-from-pod, kind: dns, service: ledger, client: pod, expect: { unreachable: { replicas-on: worker } } }
"#;
    insta::assert_snapshot!("kubernetes-mistakes", problems(k8s));
    let ok = include_str!("../../../scenarios/k8s-vxlan-blocked.yaml");
    let s = parse_str(ok, "k.yaml").unwrap();
    let k = s.kube.unwrap();
    assert_eq!((k.backend, k.vxlan_port, k.bundle), (Backend::Vxlan, 8472, BundleRef::Version("1.20.2".into())));
    assert_eq!(s.services[0].node_port, Some(30062));
}

#[test]
fn node_port_takes_the_first_published_port() {
    let s = load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/swarm-basics.yaml"))).unwrap();
    let port = s.steps.iter().find_map(|st| match st {
        Step::Check(c) if c.kind == CheckKind::NodePort => c.port,
        _ => None,
    });
    assert_eq!(port, Some(8091));
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("2s"), Some(std::time::Duration::from_secs(2)));
    assert_eq!(parse_duration("500ms"), Some(std::time::Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Some(std::time::Duration::from_millis(1500)));
    assert_eq!(parse_duration("soon"), None);
    assert_eq!(parse_duration("0s"), None);
    assert_eq!(parse_duration("-1s"), None);
}

#[test]
fn schema_describes_the_format() {
    let s = json_schema();
    let text = s.to_string();
    for field in ["api-version", "nodes", "faults-hit", "replicas-on", "endpoint-mode"] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}

fn assert_located(text: &str, r: Result<Scenario, Problems>) {
    if let Err(p) = r {
        assert!(!p.list.is_empty());
        // YAML breaks lines at \n, \r\n and a lone \r.
        let lines = text.replace("\r\n", "\n").replace('\r', "\n").matches('\n').count() as u32 + 1;
        for pr in &p.list {
            assert!(pr.line >= 1 && pr.col >= 1, "unlocated: {pr}");
            assert!(pr.line <= lines.max(1), "line {} beyond the text's {} lines: {pr}", pr.line, lines);
            assert!(!pr.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    // Any text: no panic, and every problem is located inside the text.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        assert_located(&text, parse_str(&text, "p.yaml"));
    }

    // The shipped scenario with one slice cut out or one character replaced: still no panic,
    // still located problems.
    #[test]
    fn mutated_scenario_never_panics(at in 0usize..GOOD.len(), len in 0usize..40, ch in prop::sample::select(vec![":", "-", "{", "]", " ", "\n", "x", "9", "'", "&a", "*a"])) {
        let at = (0..=at).rev().find(|i| GOOD.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + len..=GOOD.len()).find(|i| GOOD.is_char_boundary(*i)).unwrap_or(GOOD.len());
        let text = format!("{}{}{}", &GOOD[..at], ch, &GOOD[end..]);
        assert_located(&text, parse_str(&text, "p.yaml"));
    }
}

#[test]
fn kill_and_stop_node_faults_are_checked() {
    let t = GOOD.replace(
        "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }",
        "  - { name: vxlan-blocked, kind: kill, node: worker-1, component: kubelet, port: 4789 }\n  - { name: frozen, kind: stop-node }",
    );
    insta::assert_snapshot!(problems(&t));
    let ok = GOOD
        .replace(
            "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }",
            "  - { name: vxlan-blocked, kind: stop-node, node: worker-1 }",
        )
        .replace("        faults-hit: [vxlan-blocked]                # and the drop rule must count packets\n", "");
    let s = parse_str(&ok, "t.yaml").unwrap();
    assert_eq!(s.faults[0].spec, FaultSpec::StopNode { nodes: vec!["worker-1".into()] });
}

#[test]
fn proxy_mtu_and_bench_mistakes_are_located() {
    let t = GOOD
        .replace(
            "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }",
            "  - { name: vxlan-blocked, kind: http-proxy, no-proxy: [worker-3, localhost, 'a b'], components: [kubelet] }\n  - { name: small, kind: mtu, node: worker-1, mtu: 9000 }\n  - { name: nomtu, kind: mtu, node: worker-2, port: 80 }",
        )
        .replace("        faults-hit: [vxlan-blocked]                # and the drop rule must count packets\n", "")
        .replace(
            "  - revert: vxlan-blocked\n",
            "  - revert: vxlan-blocked\n  - bench: { name: b1, kind: throughput, service: web, from: worker-9, paths: [vip, vip], samples: 0, expect: { vip/direct: '>= 0.9', node: '1' } }\n",
        );
    insta::assert_snapshot!(problems(&t));
}

#[test]
fn a_good_proxy_and_bench_resolve() {
    let t = GOOD
        .replace(
            "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }",
            "  - { name: vxlan-blocked, kind: http-proxy, no-proxy: [worker, localhost, .svc, 10.0.0.0/8] }",
        )
        .replace("        faults-hit: [vxlan-blocked]                # and the drop rule must count packets\n", "")
        .replace("  - { name: web, image: web,", "  - { name: perf, image: tools, replicas: 2 }\n  - { name: web, image: web,")
        .replace(
            "  - revert: vxlan-blocked\n",
            "  - revert: vxlan-blocked\n  - bench: { name: b1, kind: throughput, service: perf, expect: { vip/direct: '>= 0.9' } }\n",
        );
    let s = parse_str(&t, "t.yaml").unwrap_or_else(|p| panic!("{p}"));
    let FaultSpec::HttpProxy { nodes, no_proxy, .. } = &s.faults[0].spec else { panic!("not a proxy fault") };
    assert_eq!(nodes.len(), 3, "every node by default");
    assert_eq!(no_proxy[0], NoProxy::Node("worker-1".into()));
    assert_eq!(no_proxy[2], NoProxy::Literal("localhost".into()));
    assert_eq!(no_proxy.len(), 5);
    let b = s.steps.iter().find_map(|st| if let Step::Bench(b) = st { Some(b) } else { None }).unwrap();
    assert_eq!((b.from.as_str(), b.samples, b.seconds, b.paths.len()), ("manager", 3, 2, 4));
    assert_eq!(b.gates[0].text(), "vip/direct >= 0.9");
}

/// A valid swarm scenario with one string field replaced by `v` (a YAML double-quoted scalar).
fn with_field(field: usize, v: &str) -> String {
    let q = serde_json::to_string(v).unwrap();
    let mut f: Vec<String> = ["lab", "manager", "net1", "web", "web", "cut", "probe", "/"].iter().map(|s| s.to_string()).collect();
    f[field] = q;
    format!(
        "api-version: clusterlab/v1\nname: {}\nnodes:\n  - {{ name: {}, role: manager }}\n  - {{ name: worker, role: worker }}\nstack: {{ kind: swarm }}\n\
         networks: [ {{ name: {}, driver: overlay }} ]\nservices: [ {{ name: {}, image: {}, replicas: 2, network: {} }} ]\n\
         faults: [ {{ name: {}, kind: drop, node: worker, protocol: udp, port: 4789, direction: in }} ]\n\
         steps:\n  - check: {{ name: {}, kind: replicas, service: {}, path: {} }}\n  - apply: {}\n  - revert: {}\n",
        f[0], f[1], f[2], f[3], f[4], f[2], f[5], f[6], f[3], f[7], f[5], f[5]
    )
}

#[test]
fn the_injection_template_is_valid() {
    for field in 0..8 {
        let t = with_field(field, ["lab", "manager", "net1", "web", "web", "cut", "probe", "/"][field]);
        assert_eq!(problems(&t), "valid", "{t}");
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Shell metacharacters in any string field: the file is refused with a located problem, or
    /// what it accepted is of a shape that carries no shell meaning of its own (names are
    /// [a-z0-9-], paths and images pass their syntax); what reaches a shell is then quoted
    /// once by `shq` (next property).
    #[test]
    fn metacharacters_in_any_field_are_refused_or_harmless(
        field in 0usize..8,
        v in "[a-z/$;&|()`'\"\\\\ <>*?!#~{}\\n%0-9=.:@-]{0,24}",
    ) {
        let text = with_field(field, &v);
        match parse_str(&text, "p.yaml") {
            Err(_) => assert_located(&text, parse_str(&text, "p.yaml")),
            Ok(s) => {
                prop_assert!(is_name(&s.name) && s.nodes.iter().all(|n| is_name(&n.name)));
                prop_assert!(s.services.iter().all(|x| is_name(&x.name) && syntax::image_ref(&x.image).is_ok()));
                prop_assert!(s.faults.iter().all(|f| is_name(&f.name)));
                for st in &s.steps {
                    if let Step::Check(c) = st {
                        prop_assert!(is_name(&c.name));
                        prop_assert!(syntax::url_path(&c.path).is_ok());
                        prop_assert!(!c.path.contains(['\'', '"', '`', '\\', ' ', '\n', '<', '>', '|', '{', '}', '#']), "{}", c.path);
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// The one quoting function: whatever the text, a real shell receives it as one word, unchanged.
    #[test]
    fn shq_passes_any_text_through_a_real_shell_unchanged(v in "[ -~\\n\\t]{0,40}") {
        let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", crate::lab::shq(&v))).output().unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&out.stdout).to_string(), v);
    }
}

#[test]
fn paths_images_and_overlapping_ranges_are_located_errors() {
    let t = with_field(7, "/a b");
    assert!(
        problems(&t).contains("t.yaml:11:63:") && problems(&t).contains("has ' ', which a URL path must percent-encode"),
        "{}",
        problems(&t)
    );
    let t = with_field(4, "web; rm -rf /");
    assert!(problems(&t).contains("is not an image reference"), "{}", problems(&t));
    let k8s = "api-version: clusterlab/v1\nname: k\nnodes: [ { name: m, role: manager } ]\n\
               stack: { kind: kubernetes, pod-cidr: 10.244.0.0/16, service-cidr: 10.244.128.0/20 }\n\
               services: [ { name: web, image: web, replicas: 1 } ]\nsteps: [ { check: { name: c, kind: replicas, service: web } } ]\n";
    let p = problems(k8s);
    assert!(p.contains("t.yaml:4:") && p.contains("service-cidr 10.244.128.0/20 overlaps pod-cidr 10.244.0.0/16"), "{p}");
    let p = problems(&k8s.replace("10.244.128.0/20", "10.213.0.0/16"));
    assert!(p.contains("overlaps the labs' own range 10.213.0.0/16"), "{p}");
    assert_eq!(problems(&k8s.replace("10.244.128.0/20", "10.32.0.0/16")), "valid");
}

#[test]
fn within_is_a_duration_of_at_least_one_timeout() {
    let t = with_field(7, "/").replace("path: \"/\" }", "path: \"/\", within: 30s }");
    let s = parse_str(&t, "t.yaml").unwrap();
    let Step::Check(c) = &s.steps[0] else { panic!() };
    assert_eq!(c.within, Some(std::time::Duration::from_secs(30)));
    let short = t.replace("within: 30s", "within: 1s, timeout: 2s");
    assert!(problems(&short).contains("is shorter than the check's timeout"), "{}", problems(&short));
    let bad = t.replace("within: 30s", "within: soon");
    assert!(problems(&bad).contains("within \"soon\" is not a duration"), "{}", problems(&bad));
}

#[test]
fn streams_resolve_with_defaults_and_their_gates() {
    let s = parse_str(GOOD, "t.yaml").unwrap();
    let st = &s.streams[0];
    assert_eq!(
        (st.name.as_str(), st.to, st.from.as_slice()),
        ("manager-to-replicas", StreamTo::Replicas, ["manager".to_string()].as_slice())
    );
    assert_eq!((st.rate, st.timeout, st.bucket, st.recovered_after), (20.0, Duration::from_secs(1), Duration::from_millis(250), 10));
    let gates: Vec<String> = st.gates.iter().map(|g| g.text()).collect();
    assert_eq!(gates, ["before: lost == 0", "during: lost-share 0.2..0.5", "after: lost == 0", "break-within 2s", "recover-within 5s"]);
    // The simplest stream: from the first node, 20 req/s, no gates.
    let t = GOOD.replace("streams:\n", "streams:\n  - { name: plain, service: web, to: vip }\n");
    let s = parse_str(&t, "t.yaml").unwrap();
    let p = s.streams.iter().find(|x| x.name == "plain").unwrap();
    assert_eq!((p.from.as_slice(), p.gates.len()), (["manager".to_string()].as_slice(), 0));
}

#[test]
fn stream_mistakes_are_located() {
    let t = GOOD
        .replace("    rate: 20\n", "    rate: 900\n    via: worker-1\n")
        .replace("recover-within: 5s", "recover-within: soon")
        .replace("lost-share: \"0.2..0.5\"", "lost-share: \"0.5..0.2\"")
        .replace("steps:\n", "steps:\n  - start-stream: nope\n  - stop-stream: manager-to-replicas\n  - start-stream: manager-to-replicas\n  - wait: forever\n");
    let p = problems(&t);
    for want in [
        "rate 900 is out of range",
        "field via is for streams to: node-port",
        "recover-within \"soon\" is not a duration",
        "is empty",
        "unknown stream \"nope\"",
        "stream \"manager-to-replicas\" is started twice, or after its stop",
        "wait \"forever\" is not a duration",
    ] {
        assert!(p.contains(want), "missing {want:?} in:\n{p}");
    }
    // Each at its line.
    assert!(p.lines().filter(|l| l.starts_with("t.yaml:")).count() >= 7, "{p}");
}

#[test]
fn own_workloads_resolve_and_their_mistakes_are_located() {
    let own = GOOD.replace(
        "  - { name: web, image: web, replicas: 3, network: mynet1 }",
        "  - { name: web, image: web, replicas: 3, network: mynet1 }\n  - { name: shop, image: shop:1, port: 8080, identity: header X-Served-By, network: mynet1, publish: [ { port: 9090 } ] }\n  - { name: db, image: db:1, port: 5432, network: mynet1 }",
    ) + "  - check: { name: shop-up, kind: replicas, service: shop, status: 204, body: ok }\n  - check: { name: db-up, kind: vip, service: db, protocol: tcp, expect: { unreachable: { from: manager } } }\n";
    let s = parse_str(&own, "own.yaml").unwrap();
    let shop = s.service("shop").unwrap();
    assert_eq!((shop.port, &shop.identity, shop.publish[0].target), (8080, &Identity::Header("X-Served-By".into()), 8080));
    let db = s.service("db").unwrap();
    assert_eq!((db.port, &db.identity), (5432, &Identity::None));
    assert_eq!(s.service("web").unwrap().identity, Identity::Web);
    let checks: Vec<&Check> = s.steps.iter().filter_map(|st| if let Step::Check(c) = st { Some(c) } else { None }).collect();
    let shop_up = checks.iter().find(|c| c.name == "shop-up").unwrap();
    assert_eq!((shop_up.port, shop_up.status, shop_up.body.as_deref()), (Some(8080), Some(204), Some("ok")));
    let db_up = checks.iter().find(|c| c.name == "db-up").unwrap();
    assert_eq!((db_up.protocol, db_up.port), (CheckProtocol::Tcp, None));

    let bad = own
        .replace("identity: header X-Served-By", "identity: header")
        .replace("port: 5432,", "port: 5432, identity: hostname,")
        .replace("protocol: tcp,", "protocol: tcp, status: 200,")
        + "  - check: { name: db-split, kind: vip, service: db, protocol: tcp, expect: { unreachable: { replicas-on: worker-1 } } }\n  - check: { name: shop-teapot, kind: replicas, service: shop, status: 999 }\n  - check: { name: dns-tcp, kind: dns, service: shop, protocol: tcp }\n";
    insta::assert_snapshot!("own-workload-mistakes", problems(&bad));
}

#[test]
fn rate_and_delay_faults_resolve_and_their_mistakes_are_located() {
    let fault = "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }";
    let with = |f: &str| {
        GOOD.replace(fault, f).replace("        faults-hit: [vxlan-blocked]                # and the drop rule must count packets\n", "")
    };
    let s = parse_str(&with("  - { name: vxlan-blocked, kind: rate, node: worker-1, rate: 2.5mbit }"), "t.yaml").unwrap();
    assert_eq!(
        s.faults[0].spec,
        FaultSpec::Rate {
            nodes: vec!["worker-1".into()],
            matches: Match { protocol: Protocol::All, port: None, direction: Direction::In, peers: vec![] },
            bits: 2_500_000,
            burst: 3125,
        }
    );
    let s = parse_str(
        &with("  - { name: vxlan-blocked, kind: delay, node: worker-1, delay: 50ms, jitter: 1.5ms, distribution: normal }"),
        "t.yaml",
    )
    .unwrap();
    let FaultSpec::Delay { delay_us, jitter_us, distribution, .. } = s.faults[0].spec else { panic!("not a delay") };
    assert_eq!((delay_us, jitter_us, distribution), (50_000, 1_500, Distribution::Normal));
    let bad = [
        ("kind: rate, node: worker-1, rate: 10mbps", "rate \"10mbps\" needs a unit: bit, kbit, mbit or gbit"),
        ("kind: rate, node: worker-1, rate: 10mbit, burst: 9", "size \"9\" needs a unit: b, kb or mb"),
        ("kind: rate, node: worker-1", "a rate fault needs rate:"),
        ("kind: rate, node: worker-1, rate: 1mbit, delay: 5ms", "field delay does not apply to a rate fault"),
        ("kind: delay, node: worker-1, delay: 11s", "delay \"11s\" is not a duration up to 10s"),
        ("kind: delay, node: worker-1", "a delay fault needs delay:"),
        ("kind: delay, node: worker-1, delay: 5ms, distribution: normal", "distribution without jitter has nothing to draw"),
        ("kind: delay, node: worker-1, delay: 5ms, distribution: pareto", "unknown variant `pareto`"),
    ];
    for (f, want) in bad {
        let got = problems(&with(&format!("  - {{ name: vxlan-blocked, {f} }}")));
        assert!(got.contains(want), "{f}: {got}");
    }
}

#[test]
fn rates_and_sizes_read_as_tc_writes_them() {
    assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
    assert_eq!(parse_rate("512kbit"), Ok(512_000));
    assert_eq!(parse_rate("1.5GBIT"), Ok(1_500_000_000));
    assert!(parse_rate("0mbit").is_err() && parse_rate("mbit").is_err() && parse_rate("10").is_err());
    assert_eq!(parse_size("32kb"), Ok(32_768));
    assert_eq!(parse_size("1500b"), Ok(1500));
    assert!(parse_size("1.5kb").is_err());
    assert_eq!(default_burst(20_000_000), 25_000);
    assert_eq!(default_burst(1_000_000), 3028, "never below two full frames");
    assert_eq!(rate_words(20_000_000), "20 Mbit/s");
    assert_eq!(rate_words(1_500_000), "1.5 Mbit/s");
    assert_eq!(rate_words(512_000), "512 kbit/s");
}

const JOIN: &str = include_str!("../../../scenarios/swarm-join-blocked.yaml");

#[test]
fn install_steps_resolve_with_names_stages_and_bounds() {
    let s = parse_str(JOIN, "t.yaml").unwrap();
    assert!(s.installs_in_steps());
    let installs: Vec<&Install> = s.steps.iter().filter_map(|st| if let Step::Install(i) = st { Some(i) } else { None }).collect();
    assert_eq!(installs.len(), 2);
    assert_eq!(
        (installs[0].name.as_str(), installs[0].fails_at, installs[0].timeout),
        ("join-behind-firewall", Some(InstallStage::SwarmJoin), Duration::from_secs(120))
    );
    assert_eq!((installs[1].name.as_str(), installs[1].fails_at, installs[1].timeout), ("join-again", None, INSTALL_TIMEOUT));
    // Unnamed installs are numbered; a scenario without one installs before its steps.
    let t = JOIN.replace("  - install: { name: join-again }", "  - install: {}").replace("      name: join-behind-firewall\n", "");
    let s = parse_str(&t, "t.yaml").unwrap();
    let names: Vec<&str> = s.steps.iter().filter_map(|st| if let Step::Install(i) = st { Some(i.name.as_str()) } else { None }).collect();
    assert_eq!(names, ["install", "install-2"]);
    assert!(!parse_str(GOOD, "t.yaml").unwrap().installs_in_steps());
    // A check that takes the name an unnamed install gets is refused, saying so, either way round.
    let clash = t.replace("name: every-replica-from-every-node", "name: install");
    let e = problems(&clash);
    assert!(
        e.contains("duplicate check name \"install\"") && e.contains("an install step without a name is called install: name it"),
        "{e}"
    );
    let before = t.replace("  - apply: join-blocked\n", "  - install: { name: install-2 }\n  - apply: join-blocked\n");
    let e = problems(&before);
    assert!(e.contains("duplicate check or install name \"install-2\"") && e.contains("called install-2: name it"), "{e}");
}

#[test]
fn install_mistakes_are_located() {
    // A stage of the other stack; a check before any install and after one that must fail; a
    // kill before the stack runs; a stream nothing starts; a bad timeout.
    let t = JOIN
        .replace("fails-at: swarm-join", "fails-at: control-plane")
        .replace("      timeout: 120s", "      timeout: soon")
        .replace(
            "  - { name: join-blocked, kind: drop, node: manager, protocol: tcp, port: 2377, direction: in }",
            "  - { name: join-blocked, kind: drop, node: manager, protocol: tcp, port: 2377, direction: in }\n  - { name: no-dockerd, kind: kill, node: worker-1, component: dockerd }",
        )
        .replace(
            "  - apply: join-blocked\n",
            "  - check: { name: too-early, kind: replicas, service: web }\n  - apply: join-blocked\n  - apply: no-dockerd\n",
        )
        .replace("  - revert: join-blocked\n", "  - revert: join-blocked\n  - revert: no-dockerd\n  - scale: { service: web, replicas: 2 }\n")
        .replace("steps:\n", "streams:\n  - { name: s, service: web, to: replicas }\nsteps:\n");
    insta::assert_snapshot!(problems(&t));
    // Where it must pass: the same steps in an order that installs first.
    let ok = JOIN.replace(
        "  - check: { name: every-replica-from-every-node",
        "  - scale: { service: web, replicas: 2 }\n  - check: { name: every-replica-from-every-node",
    );
    assert_eq!(problems(&ok), "valid");
}

#[test]
fn corrupt_faults_resolve_and_need_a_percent() {
    let drop = "  - { name: vxlan-blocked, kind: drop, node: worker-1, protocol: udp, port: 4789, direction: in }";
    let add = |f: &str| GOOD.replace(drop, &format!("{drop}\n  - {f}"));
    let s = parse_str(&add("{ name: garbled, kind: corrupt, node: worker-2, protocol: udp, port: 5302, percent: 10 }"), "t.yaml").unwrap();
    let want = FaultSpec::Corrupt {
        nodes: vec!["worker-2".into()],
        matches: Match { protocol: Protocol::Udp, port: Some(5302), direction: Direction::In, peers: vec![] },
        percent: 10.0,
    };
    assert_eq!(s.fault("garbled").unwrap().spec, want);
    let bad = problems(&add("{ name: garbled, kind: corrupt, node: worker-2, delay: 5ms }"));
    assert!(bad.contains("t.yaml:") && bad.contains("percent") && bad.contains("delay"), "{bad}");
}
