#!/usr/bin/env bash
# Install, upgrade, roll back or remove edge-agent as a systemd service. Idempotent.
#
#   systemd/install.sh install   [options]   user, release venv, config skeleton, unit; start
#   systemd/install.sh upgrade   [options]   same as install; the replaced release is kept
#   systemd/install.sh rollback  [options]   switch back to the previous release, restart
#   systemd/install.sh uninstall [--purge]   remove unit and releases (--purge: config, state, user)
#   systemd/install.sh status    [options]   show the current and previous release
#
# Options:
#   --wheel FILE       install this wheel (offline boxes; combine with --pip-args)
#   --source DIR       install this project checkout (default: the one holding this script)
#   --pip-args "ARGS"  extra pip arguments, e.g. "--no-index --find-links /media/wheels"
#   --extras LIST      pip extras, e.g. gpu or openvino
#   --python PY        Python >= 3.11 that builds the venv (default: python3)
#   --prefix DIR       install below DIR instead of / : no user, no chown, no systemctl
#                      (packaging and tests); the unit's paths point below DIR
#   --dry-run          print every change instead of making it
#   --no-start         do not (re)start the service
#
# Layout:
#   /opt/edge-agent/releases/<version>-<hash>/venv   one venv per release, never modified
#   /opt/edge-agent/current  -> releases/...          what the unit runs
#   /opt/edge-agent/previous -> releases/...          what `rollback` returns to
#   /etc/edge-agent/agent.yaml                        the config (never overwritten)
#   /etc/edge-agent/credentials/                      secrets, root only: ${cred:secret_<file>}
#   /etc/systemd/system/edge-agent.service            the unit
#   /var/lib/edge-agent                               state: outbox, audit log, file drop (StateDirectory=)
set -euo pipefail

NAME=edge-agent
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=/
SOURCE=$(dirname "$HERE")
WHEEL=""
PIP_ARGS=""
EXTRAS=""
PYTHON=${PYTHON:-python3}
DRY_RUN=0
START=1
PURGE=0

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# A change on disk: printed, and made unless --dry-run.
run() {
  echo "+ $*"
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# A change to the host system (users, ownership, systemd): also skipped under --prefix.
sys() {
  if [ "$PREFIX" != "/" ]; then echo "skip (--prefix): $*"; return 0; fi
  run "$@"
}

parse_args() {
  [ $# -ge 1 ] || usage
  CMD=$1; shift
  while [ $# -gt 0 ]; do
    case $1 in
      --wheel) WHEEL=$(realpath "$2"); shift 2 ;;
      --source) SOURCE=$(realpath "$2"); shift 2 ;;
      --pip-args) PIP_ARGS=$2; shift 2 ;;
      --extras) EXTRAS=$2; shift 2 ;;
      --python) PYTHON=$2; shift 2 ;;
      --prefix) PREFIX=$(realpath -m "$2"); shift 2 ;;
      --dry-run) DRY_RUN=1; shift ;;
      --no-start) START=0; shift ;;
      --purge) PURGE=1; shift ;;
      -h|--help) usage ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  P=${PREFIX%/}
  OPT=$P/opt/$NAME
  ETC=$P/etc/$NAME
  UNIT=$P/etc/systemd/system/$NAME.service
  STATE=$P/var/lib/$NAME
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2; }

need_root() {
  if [ "$PREFIX" = "/" ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "$CMD changes the system: run as root (or use --prefix DIR / --dry-run)"
  fi
}

# --- releases ---------------------------------------------------------------

source_hash() {
  if [ -n "$WHEEL" ]; then
    sha256sum "$WHEEL" | cut -c1-12
  else
    (cd "$SOURCE" && find pyproject.toml agent plc models -type f \
      ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
  fi
}

source_version() {
  if [ -n "$WHEEL" ]; then
    basename "$WHEEL" | cut -d- -f2
  else
    sed -n 's/^version *= *"\(.*\)"/\1/p' "$SOURCE/pyproject.toml" | head -n1
  fi
}

# Copy the tracked (and untracked, not ignored) files of the checkout: no .venv, no build/.
export_source() {
  local dest=$1
  mkdir -p "$dest"
  if git -C "$SOURCE" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$SOURCE" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) \
      | tar -xf - -C "$dest"
  else
    cp -a "$SOURCE/." "$dest/"
  fi
}

build_release() {
  # Built in place (a venv cannot move); RELEASE is written last and marks it complete.
  local rel=$1 target extras=""
  [ -n "$EXTRAS" ] && extras="[$EXTRAS]"
  run rm -rf "$rel"
  run mkdir -p "$rel"
  run "$PYTHON" -m venv "$rel/venv"
  if [ -n "$WHEEL" ]; then
    target="$WHEEL$extras"
  else
    target="$rel/src$extras"
    if [ "$DRY_RUN" = 0 ]; then export_source "$rel/src"; else echo "+ export $SOURCE -> $rel/src"; fi
  fi
  # shellcheck disable=SC2086  # PIP_ARGS is a list of words by design
  run "$rel/venv/bin/python" -m pip install --quiet --disable-pip-version-check $PIP_ARGS "$target"
  run rm -rf "$rel/src"
  link_package_data "$rel"
  for f in README.md systemd/edge-agent.service systemd/install.sh; do
    if [ -f "$SOURCE/$f" ]; then run install -D -m 0644 "$SOURCE/$f" "$rel/share/$f"; fi
  done
  if [ "$DRY_RUN" = 0 ]; then
    printf 'release=%s\nsource=%s\ninstalled=%s\n' "$(basename "$rel")" "${WHEEL:-$SOURCE}" \
      "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$rel/RELEASE"
  else
    echo "+ write $rel/RELEASE"
  fi
}

# The bundled models and example configs are package data of the installed wheel:
# RELEASE/models and RELEASE/share/config point into it, so that a config names
# /opt/edge-agent/current/models/... and gets the model of the release that runs.
link_package_data() {
  local rel=$1 data
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ ln -s <package data agent/data of $rel/venv> $rel/models $rel/share/config"
    return
  fi
  # -I: the installed package, never a checkout in the current directory
  data=$("$rel/venv/bin/python" -I -c 'from agent.data import data_path; print(data_path())') \
    || die "the installed release has no agent.data package"
  [ -f "$data/models/defect-cnn/model.onnx" ] || die "the installed wheel lacks its bundled model"
  run ln -sfn "$(realpath --relative-to="$rel" "$data/models")" "$rel/models"
  run mkdir -p "$rel/share"
  run ln -sfn "$(realpath --relative-to="$rel/share" "$data/config")" "$rel/share/config"
}

link() {  # atomic symlink switch: link NAME TARGET
  run ln -sfn "$2" "$OPT/$1.new"
  run mv -T "$OPT/$1.new" "$OPT/$1"
}

current_release() { readlink "$OPT/current" 2>/dev/null || true; }
previous_release() { readlink "$OPT/previous" 2>/dev/null || true; }

switch_to() {
  local rel=$1 cur
  cur=$(current_release)
  if [ "$cur" = "$rel" ]; then say "release $(basename "$rel") is already current"; return 1; fi
  if [ -n "$cur" ]; then link previous "$cur"; fi
  link current "$rel"
  say "current release: $(basename "$rel") (previous: ${cur:+$(basename "$cur")})"
}

prune_releases() {
  local keep_cur keep_prev d
  keep_cur=$(current_release); keep_prev=$(previous_release)
  for d in "$OPT"/releases/*; do
    [ -d "$d" ] || continue
    if [ "$d" != "$keep_cur" ] && [ "$d" != "$keep_prev" ]; then run rm -rf "$d"; fi
  done
}

# --- system -----------------------------------------------------------------

ensure_user() {
  if [ "$PREFIX" = "/" ] && id -u "$NAME" >/dev/null 2>&1; then return; fi
  sys useradd --system --user-group --home-dir /var/lib/$NAME --no-create-home \
    --shell /usr/sbin/nologin --comment "edge-agent daemon" "$NAME"
  if getent group video >/dev/null; then sys usermod -a -G video "$NAME"; fi
}

ensure_config() {
  run install -d -m 0755 "$ETC"
  run install -d -m 0700 "$ETC/credentials"
  local demo=$OPT/current/share/config/demo.yaml example=$ETC/agent.yaml.example
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ write $example (from $demo)"
  elif [ -f "$demo" ]; then
    write_example "$demo" "$example"
  fi
  if [ ! -f "$ETC/agent.yaml" ]; then
    say "no $ETC/agent.yaml yet: start from $example, then: systemctl enable --now $NAME"
  fi
}

# The demo config of the installed release with this layout's paths: what it writes
# (state_dir, the file drop under ../var/demo) goes into the unit's StateDirectory,
# the model comes from the current release. A relative path left over is an error:
# it would resolve against /etc/edge-agent, read-only under ProtectSystem=strict.
write_example() {
  local demo=$1 example=$2
  {
    echo "# Generated by install.sh from the release's config/demo.yaml: a starting point."
    echo "# Every path the agent writes is under /var/lib/$NAME (the unit's StateDirectory)."
    sed -e "s#\.\./var/demo#/var/lib/$NAME#g" -e "s#\.\./models/#$OPT/current/models/#g" "$demo"
  } > "$example.tmp"
  if grep -n '\.\./' "$example.tmp" >&2; then
    rm -f "$example.tmp"; die "$demo: a relative path is left in $example (above)"
  fi
  mv "$example.tmp" "$example"
}

render_unit() {
  # Under --prefix the unit's absolute paths point below the prefix (so that
  # `systemd-analyze verify` checks the files really installed there).
  sed -e "s#/opt/$NAME/#$OPT/#g" -e "s#/etc/$NAME/#$ETC/#g" "$HERE/$NAME.service"
}

install_unit() {
  local rendered
  rendered=$(render_unit)
  if [ -f "$UNIT" ] && [ "$(cat "$UNIT")" = "$rendered" ]; then return; fi
  run install -d -m 0755 "$(dirname "$UNIT")"
  if [ "$DRY_RUN" = 0 ]; then printf '%s\n' "$rendered" > "$UNIT"; chmod 0644 "$UNIT"
  else echo "+ write $UNIT"; fi
  sys systemctl daemon-reload
}

validate_config() {
  local cfg=$ETC/agent.yaml creds
  [ -f "$cfg" ] || return 0
  creds=$(mktemp -d)
  for f in "$ETC"/credentials/*; do [ -f "$f" ] && ln -s "$f" "$creds/secret_$(basename "$f")"; done
  if ! CREDENTIALS_DIRECTORY=$creds "$OPT/current/venv/bin/$NAME" validate "$cfg"; then
    rm -rf "$creds"; return 1
  fi
  rm -rf "$creds"
}

restart_service() {
  if [ "$START" = 0 ] || [ ! -f "$ETC/agent.yaml" ]; then return 0; fi
  if [ "$DRY_RUN" = 0 ] && ! validate_config; then
    echo "install.sh: $ETC/agent.yaml is invalid for this release" >&2; return 1
  fi
  sys systemctl enable "$NAME.service"
  sys systemctl restart "$NAME.service"  # Type=notify: returns once READY=1 or fails
}

# --- commands ---------------------------------------------------------------

cmd_install() {
  need_root
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
    || die "$PYTHON is not Python >= 3.11 (use --python)"
  [ -z "$WHEEL" ] || [ -f "$WHEEL" ] || die "no such wheel: $WHEEL"
  [ -n "$WHEEL" ] || [ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE is not an edge-agent checkout"
  ensure_user
  run install -d -m 0755 "$OPT/releases"
  local rel changed=0
  rel=$OPT/releases/$(source_version)-$(source_hash)
  if [ -f "$rel/RELEASE" ]; then say "release $(basename "$rel") already built"
  else say "building release $(basename "$rel")"; build_release "$rel"; fi
  if switch_to "$rel"; then changed=1; fi
  ensure_config
  install_unit
  prune_releases
  if [ "$changed" = 1 ] || ! service_active; then
    if ! restart_service; then
      if [ -n "$(previous_release)" ] && [ "$changed" = 1 ]; then
        echo "install.sh: start failed, rolling back to $(basename "$(previous_release)")" >&2
        cmd_rollback
      fi
      return 1
    fi
  fi
  say "installed: $(basename "$(current_release)")"
}

service_active() {
  [ "$PREFIX" = "/" ] && systemctl is-active --quiet "$NAME.service" 2>/dev/null
}

cmd_rollback() {
  need_root
  local prev
  prev=$(previous_release)
  [ -n "$prev" ] && [ -d "$prev" ] || die "no previous release to roll back to"
  switch_to "$prev" || true
  restart_service
}

cmd_uninstall() {
  need_root
  if [ -f "$UNIT" ]; then
    sys systemctl disable --now "$NAME.service"
    run rm -f "$UNIT"
    sys systemctl daemon-reload
  fi
  run rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    run rm -rf "$ETC" "$STATE"
    if [ "$PREFIX" != "/" ] || id -u "$NAME" >/dev/null 2>&1; then sys userdel "$NAME"; fi
  else
    say "kept $ETC and $STATE (use --purge to remove them and the $NAME user)"
  fi
}

cmd_status() {
  echo "current:  $(basename "$(current_release)" 2>/dev/null)"
  echo "previous: $(basename "$(previous_release)" 2>/dev/null)"
  ls -1 "$OPT/releases" 2>/dev/null | sed 's/^/release:  /' || true
}

main() {
  parse_args "$@"
  case $CMD in
    install|upgrade) cmd_install ;;
    rollback) cmd_rollback ;;
    uninstall) cmd_uninstall ;;
    status) cmd_status ;;
    -h|--help|help) usage ;;
    *) die "unknown command $CMD (install, upgrade, rollback, uninstall, status)" ;;
  esac
}

main "$@"
