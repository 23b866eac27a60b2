#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs to also run the Node-level GPU tests on a GPU machine that has
# no Node and no network, into .gpu-carry/ (git-ignored through .git/info/exclude):
#   node.xz               this machine's node binary, xz-compressed (~24 MB)
#   node_modules.tar.xz   the test runner's dependencies (mocha, tsx, esbuild; not typescript or cmake-js)
#   splash.node           the addon built here with CUDA (SPLASH_CUDA=1 npm run build; static CUDA runtime),
#                         or the file named by SPLASH_CARRY_ADDON
# Then, with the device tool: run `bash scripts/gpu-check.sh` with carry [".gpu-carry"].
set -euo pipefail
cd "$(dirname "$0")/.."
ADDON="${SPLASH_CARRY_ADDON:-build/Release/splash.node}"
[ -f "$ADDON" ] || { echo "gpu-carry: no $ADDON: build the addon first (SPLASH_CUDA=1 npm run build)"; exit 1; }
node -e "process.exit(require(require('path').resolve(process.argv[1])).info().cuda.compiled ? 0 : 1)" "$ADDON" ||
  { echo "gpu-carry: $ADDON was built without CUDA: rebuild with SPLASH_CUDA=1 npm run build"; exit 1; }
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
mkdir -p .gpu-carry
xz -T0 -c "$(command -v node)" > .gpu-carry/node.xz
tar -cJf .gpu-carry/node_modules.tar.xz --exclude=node_modules/typescript --exclude=node_modules/cmake-js \
  --exclude=node_modules/prebuildify --exclude=node_modules/node-api-headers node_modules
cp "$ADDON" .gpu-carry/splash.node
du -sh .gpu-carry/*
