#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run calls it: makes sure the Auth0 SDK's
# virtualenv exists (scripts/sdk-venv.sh) and the browser tests' chromium, chromedriver and
# axe-core are here (scripts/browser-deps.sh), then runs every Rust test. Extra arguments go to
# cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

HERALD_SDK_PYTHON=$(bash scripts/sdk-venv.sh)
export HERALD_SDK_PYTHON
HERALD_AXE_JS=$(bash scripts/browser-deps.sh)
export HERALD_AXE_JS

exec cargo test --workspace --all-features --locked "$@"
