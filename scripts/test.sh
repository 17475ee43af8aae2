#!/usr/bin/env bash
# The whole test suite, as the README gives it and .ci/run calls it: makes sure the virtualenv with
# the official Auth0 SDK that crates/api/tests/sdk.rs drives exists (auth0-python from PyPI, pinned
# in crates/api/tests/sdk/requirements.txt), then runs every Rust test. Extra arguments go to
# cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${HERALD_SDK_VENV:-$PWD/.venv-sdk}
requirements=crates/api/tests/sdk/requirements.txt
if ! "$venv/bin/python" -c 'import auth0.management' 2>/dev/null ||
  ! cmp -s "$requirements" "$venv/requirements.txt"; then
  echo "Installing the SDK test's virtualenv in $venv ..."
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
export HERALD_SDK_PYTHON="$venv/bin/python"

exec cargo test --workspace --all-features --locked "$@"
