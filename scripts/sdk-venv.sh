#!/usr/bin/env bash
# Makes sure the virtualenv with the official Auth0 SDK that crates/api/tests/sdk.rs drives exists
# (auth0-python, and schemathesis for crates/api/tests/schemathesis.rs, from PyPI, pinned in
# crates/api/tests/sdk/requirements.txt), creating or updating
# it when the pins changed, and prints its python. Used by scripts/test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${HERALD_SDK_VENV:-$PWD/.venv-sdk}
requirements=crates/api/tests/sdk/requirements.txt
if ! "$venv/bin/python" -c 'import auth0.management' 2>/dev/null ||
  ! cmp -s "$requirements" "$venv/requirements.txt"; then
  echo "Installing the SDK test's virtualenv in $venv ..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$venv/requirements.txt"
fi
echo "$venv/bin/python"
