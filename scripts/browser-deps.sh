#!/usr/bin/env bash
# Makes sure what the browser tests (herald_testkit::browser) need is here and prints the path of
# axe.min.js: Debian's chromium and chromium-driver (installed with apt-get when missing and we are
# root; otherwise it stops and gives the command), and axe-core from npm, pinned with its hash in
# crates/testkit/browser/package-lock.json and installed with `npm ci` into a cache directory
# (skipped when that directory already holds the pinned lock). Used by scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver"
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Debian's chromium and chromium-driver for the browser tests ..." >&2
    bash -c "$apt_install" >&2
  else
    echo "The browser tests need Debian's chromium and chromium-driver; install them with: sudo sh -c '$apt_install'" >&2
    exit 1
  fi
fi

deps=${HERALD_BROWSER_DEPS:-$PWD/.browser-deps}
pins=crates/testkit/browser
axe=$deps/node_modules/axe-core/axe.min.js
if [ ! -f "$axe" ] || ! cmp -s "$pins/package-lock.json" "$deps/package-lock.json"; then
  echo "Installing axe-core for the browser tests in $deps ..." >&2
  if ! command -v npm >/dev/null 2>&1; then
    echo "The browser tests need npm (Node.js) to install axe-core; install it with: apt-get install -y npm" >&2
    exit 1
  fi
  mkdir -p "$deps"
  cp "$pins/package.json" "$pins/package-lock.json" "$deps/"
  npm ci --prefix "$deps" --no-audit --no-fund --loglevel=error >&2
fi
echo "$axe"
