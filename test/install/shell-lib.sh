# Shell functions the install checks share (test/install/*.sh, test/arm64/run-qemu.sh); sourced, not run.

# official_node <platform> <version> <cache dir>: prints the bin/ folder of the official Node binary for
# <platform> (linux-x64, linux-arm64), fetched once from the npm registry's node-<platform> package.
official_node() {
  dir="$3/node-$1-$2"
  if [ ! -x "$dir/package/bin/node" ]; then
    printf 'fetching node-%s@%s\n' "$1" "$2" >&2
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-$1@$2" >/dev/null &&
      tar -xzf "node-$1-$2.tgz" package/bin/node && rm -f "node-$1-$2.tgz") || return 1
  fi
  printf '%s\n' "$dir/package/bin"
}

# tools_only <dir> <tool...>: fills <dir> with links to the named tools found on PATH, so that
# PATH=<dir> offers those and nothing else (no compiler: an install that tried to build would fail).
tools_only() {
  bin=$1
  shift
  mkdir -p "$bin"
  for tool in "$@"; do
    p=$(command -v "$tool" || true)
    if [ -n "$p" ]; then ln -sf "$p" "$bin/$tool"; fi
  done
}

# cache_dependencies <package dir>: puts the runtime dependencies of <package dir>/package.json in the
# npm cache (from the registry once, from the cache after that), so that installing the packed tarball
# with --offline can resolve them: npm resolves a tarball's dependency ranges from their full registry
# metadata, which installing the repo from its lockfile does not leave in the cache.
cache_dependencies() {
  deps=$(cd "$1" && node -p "Object.entries(require('./package.json').dependencies || {}).map(([n, r]) => n + '@' + r).join(' ')")
  if [ -n "$deps" ] && ! npm cache add --prefer-offline $deps; then
    printf 'cannot put %s in the npm cache (the registry is needed once)\n' "$deps" >&2
    return 1
  fi
}
