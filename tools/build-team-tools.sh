#!/usr/bin/env bash
# Provide in .engine/bin the tools of the team-state and review tests: versitygw (an S3 server a
# team runs in front of a POSIX file system; the tests keep Pulumi state on it) and actionlint
# (the validator of examples/ci's GitHub Actions workflow), built from the Go module proxy, and
# Debian's shellcheck, which actionlint runs on the workflow's scripts.
# Idempotent: a machine-wide copy in ~/.cache/vlaninfra is reused, never rebuilt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.engine/bin"
VERSITYGW_VERSION=v1.8.0
ACTIONLINT_VERSION=v1.7.12
cache="${XDG_CACHE_HOME:-$HOME/.cache}/vlaninfra/team-tools-$VERSITYGW_VERSION-$ACTIONLINT_VERSION"
mkdir -p "$bin"

if [ ! -x "$cache/versitygw" ] || [ ! -x "$cache/actionlint" ]; then
  command -v go >/dev/null || { echo "team tools: Go >= 1.24 is needed to build versitygw and actionlint (apt-get install golang)" >&2; exit 1; }
  export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=${GOFLAGS:--buildvcs=false}
  start=$(date +%s)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
      "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
  mkdir -p "$cache" && cp "$tmp/versitygw" "$tmp/actionlint" "$cache/"
  echo "team tools: built in $(( $(date +%s) - start ))s"
fi
for tool in versitygw actionlint; do
  cmp -s "$cache/$tool" "$bin/$tool" || install -m 0755 "$cache/$tool" "$bin/$tool"
done

if ! dpkg-query -W -f='${Status}' shellcheck 2>/dev/null | grep -q "install ok installed"; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends shellcheck
fi
