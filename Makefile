# clusterlab — common tasks. `make test` is the test command CI runs (see .ci/run).
CLUSTERLAB := cargo run -q --
.PHONY: build images run test lint doctor clean bundle baseline

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

baseline:          ## `up` of the 3-node swarm lab next to the hand-run shell baseline, one run
	scripts/compare-baseline.sh
	scripts/compare-k8s-baseline.sh
