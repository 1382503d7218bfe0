#!/usr/bin/env bash
# Provide the Pulumi engine in .engine/bin: the `pulumi` CLI and the Python language host, built
# from the Go module proxy through the wrapper modules in tools/engine (they pin the versions),
# plus the launcher dynamic providers need. Idempotent: cached binaries are never rebuilt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.engine/bin"
# The language host's binary and its program runner; .engine/bin holds the launcher the CLI starts.
libexec="$root/.engine/libexec"
# Versions: keep in step with tools/engine/go.mod and tools/engine/langhost/go.mod.
CLI_VERSION=v3.274.1
LANGHOST_VERSION=v3.67.1
# A machine-wide copy, so that a fresh clone on the same machine (CI) does not rebuild.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/vlaninfra/engine-$CLI_VERSION-$LANGHOST_VERSION"
mkdir -p "$bin" "$libexec"
# A checkout set up before the launcher below has the host's binary and runner in .engine/bin:
# they move to libexec (no rebuild).
if [ -x "$bin/pulumi-language-python" ] && [ ! -e "$libexec/pulumi-language-python" ] &&
   [ "$(head -c 2 "$bin/pulumi-language-python")" != "#!" ]; then
  mv -f "$bin/pulumi-language-python" "$libexec/"
  if [ -e "$bin/pulumi-language-python-exec" ]; then
    mv -f "$bin/pulumi-language-python-exec" "$libexec/"
  fi
fi

have() { [ -x "$1" ] && "$1" version >/dev/null 2>&1; }

if [ -n "${VLANINFRA_PULUMI:-}" ] || { p=$(command -v pulumi 2>/dev/null) && [ "$p" != "$bin/pulumi" ]; }; then
  # A pulumi already on PATH (a user's workstation) is used as it is.
  echo "engine: using $(command -v pulumi) ($(pulumi version))"
  ln -sf "$(command -v pulumi)" "$bin/pulumi"
elif ! have "$bin/pulumi" || [ ! -x "$libexec/pulumi-language-python" ]; then
  if [ -x "$cache/pulumi" ] && [ -x "$cache/pulumi-language-python" ]; then
    cp "$cache/pulumi" "$bin/"
    cp "$cache/pulumi-language-python" "$cache/pulumi-language-python-exec" "$libexec/"
    echo "engine: copied from $cache"
  else
    command -v go >/dev/null || { echo "engine: Go >= 1.21 is needed to build the Pulumi engine (apt-get install golang or see README)" >&2; exit 1; }
    export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=${GOFLAGS:--buildvcs=false}
    start=$(date +%s)
    ldv="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"
    (cd "$root/tools/engine" && go build -trimpath -ldflags "-s -w $ldv=$CLI_VERSION" \
        -o "$bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
    (cd "$root/tools/engine/langhost" && go build -trimpath -ldflags "-s -w $ldv=$LANGHOST_VERSION" \
        -o "$libexec/pulumi-language-python" github.com/pulumi/pulumi/sdk/v3/python/cmd/pulumi-language-python)
    # The program runner script ships in the sdk/v3 module of the same release as the CLI.
    sdkdir=$(cd "$root/tools/engine" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
    install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$libexec/"
    echo "engine: built in $(( $(date +%s) - start ))s"
    mkdir -p "$cache" && cp "$bin/pulumi" "$libexec/pulumi-language-python" \
      "$libexec/pulumi-language-python-exec" "$cache/"
  fi
fi

# The language host starts with SIGINT at its default. A pulumi started with SIGINT ignored (a
# script's background job, a CI runner) passes that on to the host it starts first, for the
# runtime's metadata; pulumi stops its plugins with SIGINT and waits 5 s before killing them,
# so every `up` and `preview` would wait those 5 s. (The runner script must sit next to the
# host's binary, which finds it there.)
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
# Writes stdin to the launcher $bin/$1 in one step: a pulumi starting meanwhile never finds half.
launcher() { cat > "$bin/$1.new" && chmod 0755 "$bin/$1.new" && mv -f "$bin/$1.new" "$bin/$1"; }
if [ -x "$libexec/pulumi-language-python" ]; then
  rm -f "$bin/pulumi-language-python-exec"
  host=$(quote "$libexec/pulumi-language-python")
  envbin=$(command -v env)
  if "$envbin" --default-signal=INT true 2>/dev/null; then
    launch="exec $(quote "$envbin") --default-signal=INT $host \"\$@\""
  else
    echo "engine: $envbin has no --default-signal: a pulumi started with SIGINT ignored will" \
      "wait 5 s for its language host" >&2
    launch="exec $host \"\$@\""
  fi
  # The host's Python answers its per-phase `pip list` without pip (tools/engine/langhost-python).
  # A host given a virtualenv flag runs that virtualenv's python by name: left as it is.
  install -m 0755 "$root/tools/engine/langhost-python" "$libexec/langhost-python.new"
  mv -f "$libexec/langhost-python.new" "$libexec/langhost-python"
  shim=$(quote "$libexec/langhost-python")
  launcher pulumi-language-python <<EOS
#!/bin/sh
case " \$* " in *" -virtualenv"* | *" --virtualenv"*) ;; *)
  VLANINFRA_PYTHON_CMD=\${PULUMI_PYTHON_CMD:-} PULUMI_PYTHON_CMD=$shim
  export PULUMI_PYTHON_CMD VLANINFRA_PYTHON_CMD ;;
esac
$launch
EOS
fi

# Dynamic providers run as the plugin `pulumi-resource-pulumi-python`: python -m pulumi.dynamic,
# through vlaninfra.providers.serve (more request threads), in the project's virtualenv
# (PULUMI_RUNTIME_VIRTUALENV, as Pulumi's own launcher; the engine helper sets it from
# Pulumi.yaml), else this checkout's; a program whose PYTHONPATH puts an older vlaninfra first
# (one without it) gets Pulumi's own.
launcher pulumi-resource-pulumi-python <<EOS
#!/bin/sh
py=$(quote "$root/.venv/bin/python")
if [ -n "\${PULUMI_RUNTIME_VIRTUALENV:-}" ] && [ -x "\$PULUMI_RUNTIME_VIRTUALENV/bin/python" ]; then
  py=\$PULUMI_RUNTIME_VIRTUALENV/bin/python
fi
exec "\$py" -u -c '
try:
    from vlaninfra.providers.serve import main
except ImportError:
    import runpy
    def main() -> None:
        runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
main()' "\$@"
EOS
