#!/usr/bin/env bash
# The demo: the app in demo/app runs under debugpy from a "container" directory
# (a copy at $DEMO_ROOT/usr/src/app), and dap-sidecar listens on localhost:5678 in front
# of it, mapping your checkout's demo/app to the container path. Attach VS Code with the
# printed launch.json and set a breakpoint in demo/app/main.py. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet

DEMO_ROOT=${DEMO_ROOT:-$(mktemp -d /tmp/dap-sidecar-demo.XXXXXX)}
APP_DIR="$DEMO_ROOT/usr/src/app"
mkdir -p "$APP_DIR"
cp demo/app/main.py "$APP_DIR/"
TOKEN_FILE="$DEMO_ROOT/token"
[ -s "$TOKEN_FILE" ] || python3 -c 'import secrets; print(secrets.token_hex(24))' > "$TOKEN_FILE"
chmod 600 "$TOKEN_FILE"

cat > "$DEMO_ROOT/dap-sidecar.yaml" <<YAML
host: 127.0.0.1
port: ${DEMO_PORT:-5678}
upstream: 127.0.0.1:${DEMO_UPSTREAM_PORT:-5679}
http:
  host: 127.0.0.1
  port: ${DEMO_HTTP_PORT:-5680}
path_mappings:
  - local_root: $PWD/demo/app
    remote_root: $APP_DIR
auth:
  token_file: $TOKEN_FILE
YAML

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

(cd "$APP_DIR" && exec "$OLDPWD/.venv/bin/python" -Xfrozen_modules=off -m debugpy \
  --listen "127.0.0.1:${DEMO_UPSTREAM_PORT:-5679}" main.py) &
pids+=($!)
./target/release/dap-sidecar --config "$DEMO_ROOT/dap-sidecar.yaml" &
pids+=($!)

cat <<MSG

dap-sidecar demo is running.
  app:      $APP_DIR/main.py under debugpy on 127.0.0.1:${DEMO_UPSTREAM_PORT:-5679}
  sidecar:  DAP on 127.0.0.1:${DEMO_PORT:-5678}
  token:    $(cat "$TOKEN_FILE")   (also in $TOKEN_FILE)

Put this in .vscode/launch.json, set a breakpoint in demo/app/main.py, and start
"Attach (dap-sidecar)"; paste the token when asked:
MSG
./target/release/dap-sidecar --config "$DEMO_ROOT/dap-sidecar.yaml" launch-json
echo
echo "Ctrl-C to stop."
wait -n "${pids[@]}"
