#!/bin/sh
# Builds this plugin into {{id}}.wasm with the hookhost repository's toolchains
# (installed by its scripts/install-toolchains). HOOKHOST_REPO overrides where that
# repository is. Then: hookhost check {{id}}.wasm, and copy it into the plugins dir.
set -e
here=$(cd "$(dirname "$0")" && pwd)
exec "${HOOKHOST_REPO:-{{repo}}}/scripts/build-plugin" {{lang}} "$here" "$here/{{id}}.wasm"
