#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run calls it: makes sure the Auth0 SDK's
# virtualenv exists (scripts/sdk-venv.sh), then runs every Rust test. Extra arguments go to
# cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

HERALD_SDK_PYTHON=$(bash scripts/sdk-venv.sh)
export HERALD_SDK_PYTHON

exec cargo test --workspace --all-features --locked "$@"
