#!/usr/bin/env bash
# Refresh the web app's vendored JavaScript from npm (exact versions in web/package.json).
# Only needed to change a version: the copies are committed, so installing openpan needs no Node.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp web/package.json "$work/"
(cd "$work" && npm install --no-audit --no-fund --ignore-scripts >/dev/null)
mods="$work/node_modules"
out=openpan/web/static/vendor
# htm's standalone build bundles Preact (with its hooks) and htm in one 13 KB module.
cp "$mods/htm/preact/standalone.module.js" "$out/htm-preact-standalone.js"
cp "$mods/hash-wasm/dist/md5.umd.min.js" "$out/hash-wasm-md5.js"
{
  for pkg in htm preact hash-wasm; do
    version=$(node -p "require('$mods/$pkg/package.json').version")
    printf '== %s %s (https://www.npmjs.com/package/%s) ==\n\n' "$pkg" "$version" "$pkg"
    cat "$mods/$pkg/LICENSE"
    printf '\n\n'
  done
} > "$out/LICENSES.txt"
# The browser tests inject axe-core; it is not served by the app.
cp "$mods/axe-core/axe.min.js" tests/web/axe.min.js
cp "$mods/axe-core/LICENSE" tests/web/axe-core.LICENSE
echo "vendored into $out"
