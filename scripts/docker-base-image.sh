#!/usr/bin/env bash
# Builds outpost-agent-base:latest, the smallest image the docker provider can run the agent in:
# this machine's `node` binary, a few basic tools (sh, cat, ls, pwd, ...) for exec, git (2.38 or
# newer: snapshots need it) with its exec-path, tar and gzip (tar.gz snapshots), the shared
# libraries they link, and nothing else (no package manager), imported from a tarball with `docker import`; nothing is pulled from a registry.
# Idempotent: does nothing when the tag already exists with this script's CONTENTS label (pass --force to rebuild).
set -euo pipefail
TAG="${OUTPOST_DOCKER_IMAGE:-outpost-agent-base:latest}"
# Bump when what goes into the image changes, so an image built by an older script is rebuilt.
CONTENTS="3-node-tools-git-tar"
have="$(docker image inspect -f '{{index .Config.Labels "outpost.base-image"}}' "$TAG" 2>/dev/null || true)"
if [ "${1:-}" != "--force" ] && [ "$have" = "$CONTENTS" ]; then
  echo "docker-base-image: $TAG already exists"
  exit 0
fi
node_bin="$(readlink -f "$(command -v node)")"
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp" "$rootfs/workspace" "$rootfs/outpost" "$rootfs/outpost-state" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
chmod 1777 "$rootfs/tmp"
mkdir -p "$rootfs/bin"
cp "$node_bin" "$rootfs/usr/local/bin/node"
bins=("$node_bin")
for tool in sh cat ls pwd true env mkdir rm echo tar gzip; do
  found="$(type -P "$tool" || true)"
  case "$found" in /*) cp -L "$found" "$rootfs/bin/$tool"; bins+=("$(readlink -f "$found")") ;; esac
done
# git: the program, and its exec-path (git runs itself from there for pack-objects, index-pack, ...):
# the `git` binary and its builtins' names, however this machine ships them (symlinks, hard links
# or copies: scripts/lib/git-exec-path.sh); the helpers for remotes over HTTP, mail and daemons are
# left out (snapshots never use them, and they would bring curl and its libraries).
git_bin="$(type -P git || true)"
if [ -n "$git_bin" ]; then
  exec_path="$(git --exec-path)"
  mkdir -p "$rootfs/usr/bin"
  cp -L "$git_bin" "$rootfs/usr/bin/git"
  bash "$(dirname "$0")/lib/git-exec-path.sh" "$exec_path" "$rootfs$exec_path"
  bins+=("$(readlink -f "$git_bin")")
else
  echo "docker-base-image: no git on this machine; the image will have none (snapshots will refuse to start)" >&2
fi
# Every library they link, at the path the dynamic loader looks for it (including the loader itself).
for lib in $(ldd "${bins[@]}" 2>/dev/null | grep -oE '/[^ :]+' | grep -v "^$rootfs" | sort -u); do
  case " ${bins[*]} " in *" $lib "*) continue ;; esac
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
# Name resolution of 127.0.0.1/localhost without a resolver library's surprises.
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change 'WORKDIR /workspace' \
  --change "LABEL outpost.base-image=$CONTENTS" \
  --change 'CMD ["node", "--version"]' \
  - "$TAG" >/dev/null
# The image's git must work on its own: its version, and a commit, a bundle and a fetch (which run
# pack-objects, index-pack and upload-pack from the exec-path). An image that fails is removed.
if [ -n "$git_bin" ]; then
  check='set -e; cd /tmp; git init -q a; cd a; echo x > f; git add f
    git -c user.name=check -c user.email=check@outpost.invalid commit -qm check
    git bundle create -q ../a.bundle HEAD; cd ..; git init -q b; cd b; git fetch -q ../a.bundle HEAD; git fetch -q ../a HEAD
    git --version'
  if ! out="$(docker run --rm --network none "$TAG" sh -c "$check" 2>&1)"; then
    docker image rm -f "$TAG" >/dev/null 2>&1 || true
    echo "docker-base-image: the image's git does not work (removed $TAG):" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "docker-base-image: checked the image's git: $(printf "%s" "$out" | tail -n 1), a commit, a bundle and a fetch"
fi
echo "docker-base-image: built $TAG from $node_bin ($(node --version)), $(git --version 2>/dev/null || echo 'no git'), $CONTENTS"
