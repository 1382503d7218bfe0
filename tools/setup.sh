#!/usr/bin/env bash
# One-time, idempotent set-up on a Debian machine, as root: system packages, the virtualenv with
# vlaninfra installed editable, and the Pulumi engine. A second run reuses what the first built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# System packages: the lab's daemons and tools, QEMU for VM lab hosts, Python's venv, Graphviz
# for `vlaninfra graph`.
pkgs=(docker.io openssh-server openssh-client iproute2 busybox-static iputils-ping procps psmisc
      python3 python3-venv curl qemu-system-x86 qemu-utils debootstrap cpio kmod e2fsprogs
      graphviz)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The virtualenv, from Debian's python3; reinstalled only when pyproject.toml changes.
py=/usr/bin/python3
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=.venv/.vlaninfra-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # The build backend is chatty even with -q: its log is shown only when the install fails.
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } \
      > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    exit 1
  fi
  echo "setup: virtualenv ready (.venv)"
  echo "$want" > "$stamp"
fi
# Bytecode for the checkout's own modules: the program and the provider processes import about
# 150 of them at every start, and under PYTHONDONTWRITEBYTECODE (set on some CI machines) Python
# never writes it itself, so each start compiled them again (0.05 s of CPU each, four per `up`).
.venv/bin/python -m compileall -q vlaninfra

# A real Mermaid parser for the tests of `vlaninfra diff --format markdown` (when npm is here).
if command -v npm > /dev/null && [ ! -d tools/mermaid-parse/node_modules ]; then
  npm ci --prefix tools/mermaid-parse --no-audit --no-fund -q > /dev/null 2>&1 \
    || echo "setup: npm ci in tools/mermaid-parse failed; the Mermaid parse test will skip" >&2
fi

tools/build-engine.sh
# The S3 server of the team-state tests, the validator of examples/ci's workflow.
tools/build-team-tools.sh
