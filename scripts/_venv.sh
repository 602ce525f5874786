# Sourced by scripts/run, scripts/test and scripts/bench: make .venv and install photobox into it.
# Usage: ensure_venv [extra]   (extra: "" for the app, "test" for the test tools)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PHOTOBOX_VENV:-$ROOT/.venv}"

find_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "photobox needs Python 3.11 or newer (set PYTHON=/path/to/python3)." >&2
  return 1
}

ensure_venv() {
  local extra="${1:-}"
  local spec="$ROOT"
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py="$(find_python)"
    echo "==> creating virtualenv $VENV with $py" >&2
    "$py" -m venv "$VENV" || {
      echo "Could not create a virtualenv. On Debian/Raspberry Pi OS: sudo apt-get install python3-venv" >&2
      return 1
    }
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  fi
  # Reinstall only when the dependencies (pyproject.toml) or the extra changed.
  local stamp="$VENV/.photobox-installed"
  local want; want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) ${extra:-app}"
  if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
    echo "==> installing photobox${extra:+ [$extra]} into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
    echo "$want" >> "$stamp"
  fi
}
