#!/usr/bin/env bash
# Installs code-server (VS Code 1.100.3 served to a browser) for the in-host test suite,
# without any download other than the npm registry and Debian's apt repositories.
# See /work/shared/VSCODE-TESTING.md for the recipe. Idempotent: each step leaves a stamp file,
# so a second run only checks the stamps and prints the version.
#
#   bash scripts/install-code-server.sh
#
# Tools folder: ${CCGW_TOOLS_DIR:-$HOME/.cache/claude-code-gateway/tools}/code-server
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
TOOLS_ROOT="${CCGW_TOOLS_DIR:-$HOME/.cache/claude-code-gateway/tools}"
DIR="$TOOLS_ROOT/code-server"
STAMPS="$DIR/.stamps"
mkdir -p "$STAMPS"

log() { printf '[install-code-server] %s\n' "$*" >&2; }
stamp_ok() { [[ -f "$STAMPS/$1" ]]; }
stamp_set() { date -u +%FT%TZ > "$STAMPS/$1"; }

# A change of pinned version invalidates every stamp.
if [[ "$(cat "$STAMPS/version" 2>/dev/null || true)" != "$CODE_SERVER_VERSION" ]]; then
  rm -f "$STAMPS"/*
  echo "$CODE_SERVER_VERSION" > "$STAMPS/version"
fi

# --- 1. Debian packages (only when missing) -------------------------------------------------
APT_PACKAGES=(chromium python3 make g++ libkrb5-dev ripgrep)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
  log "apt-get install: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- environment for every npm step -----------------------------------------------------------
NODE_PREFIX="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
export npm_config_build_from_source=true
# node-gyp wants the directory that *contains* include/node (it adds <nodedir>/include/node to the
# include path and looks for <nodedir>/include/node/common.gypi); with the Debian/NodeSource layout
# that is the node prefix (/usr), whose include/node holds the headers. Without it, node-gyp downloads.
export npm_config_nodedir="$NODE_PREFIX"
export npm_config_yes=true
export npm_config_fund=false
export npm_config_audit=false
export npm_config_update_notifier=false
export XDG_CONFIG_HOME="$DIR/xdg/config"
export XDG_DATA_HOME="$DIR/xdg/data"
export XDG_CACHE_HOME="$DIR/xdg/cache"
mkdir -p "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
if [[ ! -f "$NODE_PREFIX/include/node/common.gypi" || ! -f "$NODE_PREFIX/include/node/node_api.h" ]]; then
  log "node headers not found in $NODE_PREFIX/include/node; node-gyp would try to download them"
  exit 1
fi

CS="$DIR/node_modules/code-server"
VS="$CS/lib/vscode"

# --- 2. code-server itself, scripts off -------------------------------------------------------
if ! stamp_ok 2-code-server; then
  log "npm install code-server@$CODE_SERVER_VERSION --ignore-scripts"
  cd "$DIR"
  [[ -f package.json ]] || echo '{"name":"ccgw-tools-code-server","private":true}' > package.json
  npm install --save-exact "code-server@$CODE_SERVER_VERSION" --ignore-scripts --loglevel=error
  stamp_set 2-code-server
fi

# --- 4. lib/vscode production dependencies, ripgrep from Debian, native rebuilds -------------
if ! stamp_ok 4a-vscode-deps; then
  log "npm install in lib/vscode"
  cd "$VS"
  npm install --omit=dev --ignore-scripts --loglevel=error
  stamp_set 4a-vscode-deps
fi
if ! stamp_ok 4b-ripgrep; then
  log "ripgrep: copy /usr/bin/rg"
  mkdir -p "$VS/node_modules/@vscode/ripgrep/bin"
  cp -f /usr/bin/rg "$VS/node_modules/@vscode/ripgrep/bin/rg"
  chmod +x "$VS/node_modules/@vscode/ripgrep/bin/rg"
  stamp_set 4b-ripgrep
fi
if ! stamp_ok 4c-rebuild; then
  cd "$VS"
  # Every package with an install script or a binding.gyp, except @vscode/ripgrep (its install
  # downloads from GitHub; step 4b put Debian's rg in place) and @parcel/watcher (it ships its
  # prebuilt binary as the optional package @parcel/watcher-linux-x64-glibc; its install script only
  # compiles when npm_config_build_from_source is set, which we need for the others).
  mapfile -t REBUILD < <(node -e '
    const fs = require("fs"), path = require("path");
    const out = new Set();
    const visit = (dir) => {
      for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!ent.isDirectory() || ent.name.startsWith(".")) continue;
        const p = path.join(dir, ent.name);
        if (ent.name.startsWith("@")) { visit(p); continue; }
        let pkg; try { pkg = JSON.parse(fs.readFileSync(path.join(p, "package.json"), "utf8")); } catch { continue; }
        const s = pkg.scripts || {};
        if (s.install || s.preinstall || s.postinstall || fs.existsSync(path.join(p, "binding.gyp"))) out.add(pkg.name);
      }
    };
    visit("node_modules");
    out.delete("@vscode/ripgrep");
    if (fs.existsSync("node_modules/@parcel/watcher-linux-x64-glibc")) out.delete("@parcel/watcher");
    console.log([...out].sort().join("\n"));
  ')
  log "npm rebuild: ${REBUILD[*]}"
  npm rebuild "${REBUILD[@]}" --loglevel=error
  stamp_set 4c-rebuild
fi

# --- 5. symlinks the packaged layout expects --------------------------------------------------
if ! stamp_ok 5-links; then
  log "symlinks"
  cd "$VS"
  ln -sfn node_modules node_modules.asar
  ln -sfn code-linux.sh bin/remote-cli/code-server
  ln -sfn browser-linux.sh bin/helpers/browser.sh
  stamp_set 5-links
fi

# --- 6. built-in extensions' dependencies -----------------------------------------------------
if ! stamp_ok 6-extensions; then
  log "npm install in lib/vscode/extensions + postinstall.mjs"
  cd "$VS/extensions"
  npm install --omit=dev --ignore-scripts --loglevel=error
  node postinstall.mjs
  stamp_set 6-extensions
fi

# --- 7. argon2 at the top level ---------------------------------------------------------------
if ! stamp_ok 7-argon2; then
  log "npm rebuild argon2"
  cd "$DIR"
  npm rebuild argon2 --loglevel=error
  stamp_set 7-argon2
fi

"$DIR/node_modules/.bin/code-server" --version
