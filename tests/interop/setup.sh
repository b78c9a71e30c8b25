#!/usr/bin/env bash
# Installs what the interop tests run against, from the lock files beside this script: npm
# oidc-provider and playwright-core, PyPI Authlib + Flask in a virtual environment, and Debian's
# chromium and redis-server (the shared token store's tests start their own on a free loopback
# port); and the Node.js host's packages (host-harness/node, from its lock file) unless
# --without-node-host is given (the Node host's own `npm test` runs this script so). Safe to run
# again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "interop setup: '$1' is missing: $2" >&2; exit 1; }
}
need node "install Node.js 20 or later"
need npm "install npm (it comes with Node.js)"
need python3 "install Python 3.11 or later with the venv module"

kits=("$here/oidc-provider" "$here/browser")
if [ "${1:-}" != "--without-node-host" ]; then
  kits+=("$here/../../host-harness/node")
  node_host=", and the Node host's packages"
fi
for kit in "${kits[@]}"; do
  (cd "$kit" && npm ci --no-audit --no-fund --loglevel=error)
done

venv="$here/authlib/.venv"
stamp="$venv/requirements.sha256"
want="$(sha256sum "$here/authlib/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r "$here/authlib/requirements.txt"
  echo "$want" > "$stamp"
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "interop setup: oidc-provider, playwright-core, Authlib, chromium and redis-server are ready${node_host:-}"
