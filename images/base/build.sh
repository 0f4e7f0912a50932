#!/usr/bin/env bash
# Base rootfs for every clusterlab image, built offline from Debian packages.
# Writes a tar of a minimal bookworm root filesystem to stdout; `clusterlab images build`
# streams it into the engine's image import (the `docker import` of the API), so no registry is needed.
# MIRROR defaults to the first Debian mirror this host's apt already uses, so the build goes
# wherever the host's package traffic goes and nothing else.
set -euo pipefail
SUITE=${SUITE:-bookworm}
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$( (grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
             grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}') |
           grep -v -e security -e nodesource -e google | head -n1) || true
fi
[ -n "$MIRROR" ] || { echo "no Debian mirror found in /etc/apt; set MIRROR=" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
  # A fresh machine lacks it; as root with apt, install it rather than stop.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing debootstrap" >&2
    # DPkg::Lock::Timeout: the bundle and the images build at once (.ci/run, or a user in two
    # terminals); either may be installing packages, so wait for dpkg's lock instead of failing.
    (apt-get -o DPkg::Lock::Timeout=300 install -y -q debootstrap || { apt-get update -q && apt-get -o DPkg::Lock::Timeout=300 install -y -q debootstrap; }) >&2
  else
    echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1
  fi
fi
root=$(mktemp -d /tmp/clusterlab-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
# minbase: only Essential + apt, the smallest root that can still apt-get install in later stages.
debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >&2
# Keep the image small and its builds reproducible-ish: no apt lists, no caches, no docs.
chroot "$root" apt-get clean >&2
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
# Skip docs and caches in every later apt-get of images built on this base.
cat > "$root/etc/dpkg/dpkg.cfg.d/01-clusterlab-nodoc" <<'CFG'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/locale/*
CFG
echo 'APT::Install-Recommends "false"; APT::Install-Suggests "false";' > "$root/etc/apt/apt.conf.d/01-clusterlab"
tar --numeric-owner -C "$root" -c .
