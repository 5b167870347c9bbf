#!/usr/bin/env bash
# Checks that every image the compose demo pulls is pinned to an exact version (x.y.z,
# Debian's x.y, or a digest): the images in docker-compose.yml as docker-compose resolves it, and the
# Dockerfile's base images. switchboard:demo is built here, by every service that runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
pinned() {
	case "$1" in
	*@sha256:*) return 0 ;;
	esac
	local tag="${1##*:}"
	case "$1" in
	debian:*) [[ "$tag" =~ ^[0-9]+\.[0-9]+ ]] ;; # Debian's point releases are x.y
	*) [[ "$1" == *:* && "$tag" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+ ]] ;;
	esac
}
resolved="$(docker-compose config)"
while read -r image; do
	if [ "$image" = "switchboard:demo" ]; then
		continue
	fi
	if ! pinned "$image"; then
		echo "docker-compose.yml: image $image is not pinned to an exact version (name:x.y.z or a digest)"
		status=1
	fi
done < <(printf '%s\n' "$resolved" | sed -n 's/^ *image: *//p' | tr -d "\"'")
# Every service that runs the local image can build it.
services_without_build="$(printf '%s\n' "$resolved" | awk '
	/^services:/ { in_services = 1; next }
	in_services && /^[^ ]/ { in_services = 0 }
	in_services && /^  [A-Za-z0-9_.-]+:$/ { if (svc != "" && local && !build) print svc; svc = $1; local = 0; build = 0 }
	in_services && /^    image: *switchboard:demo/ { local = 1 }
	in_services && /^    build:/ { build = 1 }
	END { if (svc != "" && local && !build) print svc }')"
if [ -n "$services_without_build" ]; then
	echo "docker-compose.yml: these services run switchboard:demo but cannot build it: $services_without_build"
	status=1
fi
if grep -q '^version:' docker-compose.yml; then
	echo "docker-compose.yml: drop the version: key (Compose v2 warns that it is obsolete)"
	status=1
fi
while read -r image; do
	if ! pinned "$image"; then
		echo "Dockerfile: base image $image is not pinned to an exact version"
		status=1
	fi
done < <(sed -n 's/^FROM \([^ ]*\).*/\1/p' Dockerfile)
exit "$status"
