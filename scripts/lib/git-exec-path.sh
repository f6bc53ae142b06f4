#!/usr/bin/env bash
# Copies git's exec-path for an image: the `git` program, and each builtin's dashed name
# (git-upload-pack, git-pack-objects, ...: git runs some of them by that name) as a symlink to it.
# Distributions ship the builtins as symlinks (Debian), hard links (git's own `make install`,
# Fedora) or plain copies; all three are recognised (same file, or same bytes as git) and become a
# symlink in DEST, so the image carries the program once. Helpers that are programs or scripts of
# their own (remote helpers for HTTP, mail, daemons, shell scripts) are left out: snapshots never
# use them, and they would bring curl and its libraries.
# Usage: git-exec-path.sh SRC DEST   (SRC: `git --exec-path`; DEST: where it goes in the image root)
set -euo pipefail
src="$1"
dest="$2"
mkdir -p "$dest"
cp -L "$src/git" "$dest/git"
for f in "$src"/git-*; do
  [ -e "$f" ] || continue
  name="$(basename "$f")"
  # -ef: the same file (a symlink to git, or a hard link of it); cmp: a copy of it.
  if [ "$f" -ef "$src/git" ] || cmp -s "$f" "$src/git"; then
    ln -sfn git "$dest/$name"
  fi
done
