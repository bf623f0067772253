#!/usr/bin/env bash
# Builds and imports a local container base image, so the project's images can be built and run on these
# machines, which have no Docker engine and can pull no image. Needs root.
#   deploy/podman-base.sh [IMAGE]        (default IMAGE: localhost/pybase:3.11; make images runs it when missing)
# What it does:
#   - installs Debian's podman, runc and debootstrap if they are missing;
#   - debootstraps Debian bookworm (python3 3.11, venv, ca-certificates) into a temporary folder;
#   - copies this machine's CA bundle and a pip.conf pointing at it into the image (the package registries
#     are reached through this machine's certificate chain);
#   - imports it as IMAGE.
# Then build and run with the flags this sandbox needs (crun and systemd cgroups do not work here):
#   P="podman --runtime runc --cgroup-manager=cgroupfs"
#   U="--ulimit nofile=1024:20000 --ulimit nproc=4096:4096"
#   $P build --network host $U -f deploy/Dockerfile --build-arg SERVICE=alerts \
#        --build-arg PYTHON_IMAGE=localhost/pybase:3.11 -t feedback/alerts:dev .
#   $P run -d --network host $U -e ALERTS_HTTP__PORT=8012 ... localhost/feedback/alerts:dev
# Seen working: the alerts image built in about 1 minute and started in production mode against the embedded
# broker and database on the host network (/readyz: broker and database true).
set -euo pipefail
image=${1:-localhost/pybase:3.11}
need=()
for t in podman runc debootstrap; do command -v "$t" >/dev/null || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates bookworm "$root" >/dev/null
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > "$root/etc/pip.conf"
tar -C "$root" -c . | podman import - "$image" >/dev/null
echo "imported $image"
