//! An engineer's first tests with clusterlab: their own image (built here from `greeter/`), as a
//! service on a 3-node lab; every path to it asserted; a partition; asserted again. Dropping the
//! `Lab` removes it, also when an assertion fails; a `kill -9` of this process is covered by the
//! run's reaper.
//!
//! `cargo test -p clusterlab-examples` (a Docker engine; the Kubernetes test also needs the
//! Kubernetes bundle: `clusterlab bundle`).

use clusterlab::model::parse_str;
use clusterlab::vocab::Outcome;
use clusterlab::Lab;
use clusterlab_examples::greeter_image;

/// The scenario, written here as it would be in a file: the greeter serves HTTP on 8080 (and
/// says who served in `X-Served-By`) and raw TCP on 7000.
fn scenario(stack: &str, image: &str) -> clusterlab::model::Scenario {
    let (name, nodes, stack_line) = match stack {
        "swarm" => ("example-greeter-swarm", "[ { name: manager, role: manager }, { name: worker, count: 2 } ]", "{ kind: swarm }"),
        _ => ("example-greeter-k8s", "[ { name: master, role: manager }, { name: worker, count: 2 } ]", "{ kind: kubernetes }"),
    };
    let yaml = format!(
        r#"api-version: clusterlab/v1
name: {name}
nodes: {nodes}
stack: {stack_line}
services:
  - {{ name: greeter, image: "{image}", replicas: 3, port: 8080, identity: header X-Served-By }}
streams:
  - {{ name: hello-stream, service: greeter, to: replicas, from: {first}, path: /cgi-bin/hello, rate: 20, timeout: 1s }}
faults:
  - {{ name: cut-off, kind: partition, side-a: worker-2, side-b: [ {first}, worker-1 ] }}
steps:
  # within: after a partition, swarm's gossip may take its time to heal (a split longer than
  # ~4 s drops the other side's endpoints until a bulk sync, every 30 s); the check waits for it.
  - check: {{ name: hello, kind: replicas, service: greeter, path: /cgi-bin/hello, status: 200, body: hello from the greeter, within: 120s }}
  - check: {{ name: hello-vip, kind: vip, service: greeter, path: /cgi-bin/hello, requests: 30 }}
  # One connection a pair: the greeter's busybox nc accepts one at a time (listen backlog 1);
  # three at once from every node overflowed it once on a loaded CI machine.
  - check: {{ name: tcp, kind: replicas, service: greeter, protocol: tcp, port: 7000, requests: 1 }}
  - check: {{ name: wrong-greeting, kind: replicas, service: greeter, path: /cgi-bin/hello, body: goodbye }}
  - apply: cut-off
  - check:
      name: hello-cut-off
      kind: replicas
      service: greeter
      path: /cgi-bin/hello
      timeout: 1s
      expect: {{ unreachable: [ {{ replicas-on: worker-2, from: [ {first}, worker-1 ] }}, {{ from: worker-2, replicas-on: [ {first}, worker-1 ] }} ], faults-hit: [cut-off] }}
  - revert: cut-off
"#,
        first = if stack == "swarm" { "manager" } else { "master" },
    );
    parse_str(&yaml, &format!("{name}.yaml")).unwrap_or_else(|p| panic!("{p}"))
}

/// The whole story on one stack. The swarm and Kubernetes tests run at once (cargo runs a
/// binary's tests in parallel): their labs have different names, and two labs share this
/// machine's two cores as the end-to-end suite's do.
async fn greeter_story(stack: &str) {
    let image = greeter_image().await;
    let mut lab = Lab::up(&scenario(stack, &image)).await.expect("the lab comes up");

    // Every node reaches every replica; each answer names the replica it came from.
    let hello = lab.check("hello").await.unwrap();
    assert_eq!(hello.outcome, Outcome::Pass, "{}\n{:?}", hello.summary, hello.diagnosis);
    assert_eq!(hello.observation.totals(), (27, 27), "3 entry nodes x 3 replicas x 3 requests");

    // Live traffic to every replica's own address on the service's port: every request answered
    // (the greeter's answers are counted by address; the agent reads only our web image's names).
    lab.start_stream("hello-stream").await.unwrap();
    lab.wait(std::time::Duration::from_secs(3)).await.unwrap();
    let stream = lab.stop_stream("hello-stream").await.unwrap();
    assert!(stream.figures.sent >= 20, "{}", stream.summary);
    assert_eq!(stream.figures.answered, stream.figures.sent, "{}", stream.summary);

    // Through the VIP: the split names replicas (the header says who served), and all three serve.
    // A swarm VIP needs IPVS in the host's kernel; where it is missing (as on some CI kernels)
    // the check says so — unsupported, with the measured reason — and is never a pass.
    let vip = lab.check("hello-vip").await.unwrap();
    match vip.outcome {
        Outcome::Unsupported => assert!(vip.summary.contains("IP_VS"), "{}", vip.summary),
        _ => {
            assert_eq!(vip.outcome, Outcome::Pass, "{}", vip.summary);
            for row in &vip.observation.cells {
                assert_eq!(row.iter().map(|c| c.hits).sum::<u32>(), 30, "every VIP request answered by a named replica");
            }
        }
    }

    // Raw TCP on 7000, for what does not speak HTTP.
    let tcp = lab.check("tcp").await.unwrap();
    assert_eq!(tcp.outcome, Outcome::Pass, "{}: {:?}", tcp.summary, tcp.observation.cells[0]);
    assert_eq!(tcp.observation.totals(), (9, 9), "3 entry nodes x 3 replicas x 1 connection");

    // The body rule is a rule: a greeting the service does not give fails every request, and
    // each cell says why.
    let wrong = lab.check("wrong-greeting").await.unwrap();
    assert_eq!(wrong.outcome, Outcome::Fail);
    assert_eq!(wrong.observation.totals(), (27, 0));
    assert_eq!(wrong.observation.cells[0][0].detail, "body lacks \"goodbye\"");

    // Cut worker-2 off: its replica is unreachable from the others and it reaches none of
    // theirs; every other pair still answers. The fault's rules matched packets.
    lab.apply("cut-off").await.unwrap();
    let cut = lab.check("hello-cut-off").await.unwrap();
    assert_eq!(cut.outcome, Outcome::Pass, "{}\n{:?}", cut.summary, cut.diagnosis);
    let worker_2 = cut.observation.cols.iter().position(|t| t.node == "worker-2").expect("a replica on worker-2");
    for (r, from) in cut.observation.rows.iter().enumerate() {
        let hits = cut.observation.cells[r][worker_2].hits;
        if from == "worker-2" {
            assert_eq!(hits, 3, "worker-2 still reaches its own replica");
        } else {
            assert_eq!(hits, 0, "{from} must not reach worker-2's replica while it is cut off");
        }
    }
    // Reverted, every pair answers again (within the check's 120 s); then the cut's check, which
    // expects the cut, must not pass.
    lab.revert("cut-off").await.unwrap();
    let again = lab.check("hello").await.unwrap();
    assert_eq!(again.outcome, Outcome::Pass, "{}\n{:?}", again.summary, again.diagnosis);
    let healed = lab.check("hello-cut-off").await.unwrap();
    assert_eq!(healed.outcome, Outcome::Fail, "after the revert every pair answers again: {}", healed.summary);

    // The typed result is the JSON report's check.
    let json = serde_json::to_value(&hello).unwrap();
    assert_eq!(json["outcome"], "pass");
    lab.down().await.unwrap();
}

#[tokio::test]
async fn greeter_on_swarm_survives_a_partition() {
    greeter_story("swarm").await;
}

#[tokio::test]
async fn greeter_on_kubernetes_survives_a_partition() {
    greeter_story("kubernetes").await;
}
