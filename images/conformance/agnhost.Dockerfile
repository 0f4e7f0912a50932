# agnhost, Kubernetes' own test server, as its e2e suite expects it (k8s.gcr.io/e2e-test-images/
# agnhost:2.21), built from our base image and the agnhost binary compiled from the bundle's
# source tree: nothing is pulled. The upstream recipe (test/images/agnhost/Dockerfile) adds these
# tools on Alpine; here Debian's equivalents:
# dnsutils (dig: the DNS tests' probes), curl and netcat-openbsd (the Services tests' requests,
# `nc -z`), iproute2, iperf (2), bash; hostname and getent come with the base.
# The same image is tagged as the DNS tests' jessie-dnsutils:1.0 ("Debian with dig"): those
# containers run `sh -c` probes with dig, getent and hostname only.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y dnsutils curl netcat-openbsd iproute2 iperf bash hostname \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /uploads
EXPOSE 80 8080 8081 9376
COPY agnhost /agnhost
# Some tests override the entrypoint with agnhost-2 (entrypoint-tester).
RUN ln -s agnhost /agnhost-2
ENTRYPOINT ["/agnhost"]
CMD ["pause"]
