# clusterlab — common tasks. `make test` is the test command CI runs (see .ci/run).
# --bin: the workspace builds several programs (the harness embeds the others).
CLUSTERLAB := cargo run -q --bin clusterlab --
.PHONY: build images run test lint doctor clean bundle baseline matrix bench conformance

build:
	cargo build

images:            ## build missing images (base via debootstrap, node, web, tools)
	$(CLUSTERLAB) images build

run:               ## the VXLAN-blocked story
	$(CLUSTERLAB) run scenarios/swarm-vxlan-blocked.yaml

test:              ## unit tests, snapshots, proptests and end-to-end labs on the real engine
	cargo test --workspace

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

doctor:
	$(CLUSTERLAB) doctor

clean:             ## remove whatever a killed run left behind (by label)
	$(CLUSTERLAB) clean

bundle:            ## Kubernetes server binaries from Debian's source package (cached by version)
	$(CLUSTERLAB) bundle

conformance:       ## Kubernetes' own [sig-network] Services and DNS [Conformance] tests against a 3-node lab (FOCUS=, NODES=, LAB=)
	scripts/conformance.sh

baseline:          ## swarm (3 nodes) and Kubernetes (2 nodes) up/down next to the hand-run scripts, alternating, with up's phases; then the scale curve
	scripts/compare-baseline.sh
	scripts/compare-k8s-baseline.sh
	cargo bench --bench scale

# The CI regression matrix on one machine: every shipped scenario, PARTITION of them (K/N, as a
# CI runner of an N-way matrix would), JOBS labs at once, each REPEAT times, with JUnit, JSON and
# HTML reports in target/matrix/. See ci/github-matrix.yml for the same over CI runners.
PARTITION ?= 1/1
JOBS ?= 2
REPEAT ?= 1
matrix:            ## every shipped scenario: make matrix PARTITION=1/2 JOBS=2 REPEAT=3
	mkdir -p target/matrix
	$(CLUSTERLAB) run scenarios/ --partition $(PARTITION) --jobs $(JOBS) --repeat $(REPEAT) \
	  --report junit=target/matrix/junit.xml --report json=target/matrix/report.json --report html=target/matrix/report.html

bench:             ## each path's forwarding on one lab (iperf3), then the harness's own criterion benches
	cargo bench --bench forwarding
	cargo bench --bench harness
