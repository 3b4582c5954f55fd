#!/usr/bin/env bash
# Browser tests of the web UI: builds rmmbridge, starts `rmmbridge demo` on a free port with a fresh data
# directory, runs the Playwright tests in headless Chromium against it, and stops the server.
# Screenshots of the key pages land in target/e2e-screenshots/.
#
#   e2e/run.sh            # needs node/npm and Chromium at /usr/bin/chromium (installed when run as root)
#   RMMBRIDGE_BIN=path    # test a binary that is already built instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
shots="$target/e2e-screenshots"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

need_root() {
  [ "$(id -u)" = 0 ] || { echo "e2e: $1 is missing; install it (or run as root to have it installed)" >&2; exit 1; }
}
if [ ! -x "$CHROMIUM" ]; then
  need_root "Chromium ($CHROMIUM)"
  echo "e2e: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
  need_root "npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
# The lockfile pins playwright-core; it drives the system Chromium and downloads no browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
  (cd e2e && npm ci --no-audit --no-fund)
fi

if [ -z "${RMMBRIDGE_BIN:-}" ]; then
  cargo build -p rmmbridge-cli --locked
  RMMBRIDGE_BIN="$target/debug/rmmbridge"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# A private copy: a parallel build in a shared target directory cannot swap the binary under the test.
cp "$RMMBRIDGE_BIN" "$work/rmmbridge"

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
"$work/rmmbridge" demo --listen "127.0.0.1:$port" --demo-dir "$work/demo" >"$work/demo.out" 2>"$work/demo.err" &
server_pid=$!

for _ in $(seq 1 150); do
  grep -q "Press Ctrl-C" "$work/demo.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { echo "e2e: the demo exited:" >&2; cat "$work/demo.out" "$work/demo.err" >&2; exit 1; }
  sleep 0.2
done
url="$(sed -n 's/^ *open: *\(http[^ ]*\).*/\1/p' "$work/demo.out" | head -n1)"
password="$(sed -n 's/^ *password: *\([^ ]*\).*/\1/p' "$work/demo.out" | head -n1)"
if [ -z "$url" ] || [ -z "$password" ]; then
  echo "e2e: could not read the URL and password from the demo's output:" >&2
  cat "$work/demo.out" "$work/demo.err" >&2
  exit 1
fi
echo "e2e: demo at $url"

rm -rf "$shots"
mkdir -p "$shots"
status=0
(cd e2e && RMMBRIDGE_E2E_URL="$url" RMMBRIDGE_E2E_PASSWORD="$password" RMMBRIDGE_E2E_SCREENSHOTS="$shots" \
  npm test --silent) || status=$?
if [ "$status" != 0 ]; then
  echo "e2e: failed; the server's log:" >&2
  tail -n 50 "$work/demo.err" >&2 || true
fi
echo "e2e: screenshots in $shots"
exit "$status"
