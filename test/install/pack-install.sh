#!/bin/sh
# Packs splash-attention as a user would get it from the registry and installs the tarball where no
# compiler exists, so the install can only succeed by using the shipped prebuilt addon.
#
#   test/install/pack-install.sh <workdir>
#
# Writes <workdir>/pack.json (npm pack --json, with the file list), <workdir>/install.log and
# <workdir>/load.json (what the installed package loaded). Reuses prebuilds/<platform>-<arch>/ when the repo has them (CI runs
# `npm run prebuildify` first); otherwise builds a CPU-only one in a scratch copy, leaving the repo
# untouched.
# The install itself runs with --offline; the package's dependencies are put in the npm cache first
# (from the registry once, from the cache after that).
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/install/shell-lib.sh"
WORK=$(cd "${1:?usage: pack-install.sh <workdir>}" && pwd)
PLATFORM=$(node -p "process.platform + '-' + process.arch")
STAGE="$WORK/stage"
PROJECT="$WORK/project"
mkdir -p "$STAGE" "$PROJECT"

# ---- 1. a scratch copy of the package sources (never build or write inside the repo) -------------
cd "$ROOT"
for f in package.json package-lock.json README.md LICENSE CHANGELOG.md tsconfig.json CMakeLists.txt \
         binding.gyp lib native scripts prebuilds; do
  if [ -e "$f" ]; then tar -cf - "$f" | tar -C "$STAGE" -xf -; fi
done
ln -s "$ROOT/node_modules" "$STAGE/node_modules"
cd "$STAGE"

if ls "prebuilds/$PLATFORM/"*.node >/dev/null 2>&1; then
  echo "pack-install: reusing prebuilds/$PLATFORM from the repo"
else
  # CPU only unless SPLASH_CUDA / SPLASH_HIP say otherwise: the GPU parts took minutes of a fresh
  # machine's `npm test` on 2 cores, and CI checks them by prebuilding with CUDA and HIP before npm test.
  echo "pack-install: no prebuilds/$PLATFORM in the repo; building them (npm run prebuildify)"
  SPLASH_CUDA="${SPLASH_CUDA:-0}" SPLASH_HIP="${SPLASH_HIP:-0}" npm run prebuildify
fi

# ---- 2. dist/: the real TypeScript build, or a throwaway entry while lib/index.ts does not exist --
if [ -f lib/index.ts ]; then
  npm run build:ts
else
  echo "pack-install: lib/index.ts missing; compiling the loader only, with a throwaway dist/index.js"
  "$ROOT/node_modules/.bin/tsc" --outDir dist/backends --module commonjs --target ES2022 --strict \
    --types node --skipLibCheck --declaration lib/backends/native.ts
  echo "module.exports = require('./backends/native');" > dist/index.js
fi

# ---- 3. the tarball --------------------------------------------------------------------------------
npm pack --ignore-scripts --json --pack-destination "$WORK" > "$WORK/pack.json"
TARBALL="$WORK/$(node -p "require('$WORK/pack.json')[0].filename")"

# ---- 4. its dependencies in the npm cache, for the offline install ---------------------------------
cache_dependencies "$STAGE"

# ---- 5. install it with no compiler on PATH ---------------------------------------------------------
BIN="$WORK/bin"
tools_only "$BIN" node npm npx sh bash env cat ls mkdir rm cp mv ln chmod uname dirname basename sed grep tar gzip
for tool in cc c++ gcc g++ clang clang++ make cmake ninja nvcc hipcc; do
  if PATH="$BIN" command -v "$tool" >/dev/null 2>&1; then
    echo "pack-install: $tool is still reachable on the stripped PATH" >&2
    exit 1
  fi
done

cd "$PROJECT"
echo '{ "name": "pack-install-check", "version": "1.0.0", "private": true }' > package.json
# --foreground-scripts puts the package's install script (node-gyp-build) in install.log, which shows
# it ran; without a usable prebuild it would fall back to node-gyp and fail for want of a compiler.
# --loglevel=notice keeps that line under `npm run -s` too, whose silent level npm would inherit.
status=0
PATH="$BIN" npm install --offline --no-audit --no-fund --foreground-scripts --loglevel=notice "$TARBALL" >"$WORK/install.log" 2>&1 || status=$?
cat "$WORK/install.log"
if [ "$status" != 0 ]; then echo "pack-install: npm install failed ($status)" >&2; exit "$status"; fi

# ---- 6. what the installed package loads ------------------------------------------------------------
PATH="$BIN" node -e '
const fs = require("fs");
const path = require("path");
const out = process.argv[1];
const pkgDir = path.dirname(require.resolve("splash-attention/package.json"));
const result = { pkgDir, hasBuildDir: fs.existsSync(path.join(pkgDir, "build")) };
try {
  // loadNative is internal (not in the exports map), so load the compiled file by path.
  const ld = require(path.join(pkgDir, "dist/backends/native.js")).loadNative();
  Object.assign(result, { path: ld.path, variant: ld.variant, error: ld.error,
    version: ld.info && ld.info.version, attempts: ld.attempts.map((a) => ({ path: a.path, reason: a.reason })) });
} catch (e) { result.loaderThrew = String(e && e.stack || e); }
try {
  const m = require("splash-attention");
  result.backends = typeof m.backends === "function" ? m.backends() : null;
} catch (e) { result.requireError = String(e && e.message || e); }
import("splash-attention").then(
  (m) => { result.esmBackends = typeof m.backends === "function"; },
  (e) => { result.esmError = String(e && e.message || e); },
).finally(() => fs.writeFileSync(out, JSON.stringify(result, null, 2)));
' "$WORK/load.json"
cat "$WORK/load.json"
