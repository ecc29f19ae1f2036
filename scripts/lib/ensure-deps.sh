# Sourced by scripts/*: installs what the project needs when it is missing.
# Usage: ensure_cmd <command> <debian package>

apt_updated=0
ensure_cmd() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  echo "==> $cmd not found: installing Debian package $pkg"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $cmd is missing and cannot be installed here (need root and apt-get); install $pkg yourself" >&2
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq || { echo "error: apt-get update failed" >&2; return 1; }
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null || {
    echo "error: could not install $pkg (needed for $cmd)" >&2
    return 1
  }
  command -v "$cmd" >/dev/null 2>&1 || { echo "error: $pkg installed but $cmd is still missing" >&2; return 1; }
}

ensure_cargo() {
  command -v cargo >/dev/null 2>&1 && return 0
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH" && return 0
  echo "error: cargo (the Rust toolchain) is missing; install it with rustup first" >&2
  return 1
}
