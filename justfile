# wavecast — task runner. `just --list` shows every recipe.
#
# The two commands that matter: `just demo` (the main job) and `just test` (everything CI checks).
# Both run `just setup` first, which installs what is missing and is quiet when all is there.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# The one place the pinned versions live.
livekit_server_version := "v1.13.5"
python_sdk := "livekit==1.2.1 livekit-api==1.2.2"
# The chat seed's token endpoint as the token service's bench baseline (Flask app under gunicorn).
python_bench := "flask==3.1.3 flask-jwt-extended==4.7.4 gunicorn==27.0.1"
apt_packages := "pkg-config cmake clang nasm libopus-dev libvpx-dev libasound2-dev mesa-vulkan-drivers libvulkan1 xvfb xauth libx11-dev libxkbcommon-dev libxkbcommon-x11-dev libxcursor-dev libxrandr-dev libxi-dev openbox redis-server postgresql ffmpeg iproute2 nftables chromium"

root := justfile_directory()
tools := root / ".tools/bin"
venv := root / ".venv"
export PATH := tools + ":" + env_var('HOME') + "/.cargo/bin:/usr/local/go/bin:" + env_var('PATH')

# List the recipes.
default:
    @just --list

# Install what the build and the tests need (idempotent; quiet when everything is there).
setup: setup-apt setup-server setup-python setup-browser

# System packages (apt when root; otherwise print the apt line and stop).
setup-apt:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for p in {{apt_packages}}; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    if [ "$(id -u)" -ne 0 ]; then
      echo "wavecast needs these system packages: ${missing[*]}" >&2
      echo "install them with:  sudo apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
    echo "setup: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

# The real LiveKit server, pinned: from PATH if it is that version, else `go install` into .tools/bin.
setup-server:
    #!/usr/bin/env bash
    set -euo pipefail
    want="{{livekit_server_version}}"; want="${want#v}"
    local_bin="{{tools}}/livekit-server"
    version_of() { "$1" --version 2>/dev/null | awk '{print $NF}'; }
    [ -x "$local_bin" ] && [ "$(version_of "$local_bin")" = "$want" ] && exit 0
    mkdir -p "{{tools}}"
    if found=$(command -v livekit-server 2>/dev/null) && [ "$found" != "$local_bin" ] && [ "$(version_of "$found")" = "$want" ]; then
      ln -sf "$found" "$local_bin"; exit 0
    fi
    command -v go >/dev/null || { echo "setup: Go is needed to build livekit-server (https://go.dev/doc/install)" >&2; exit 1; }
    echo "setup: go install github.com/livekit/livekit-server/cmd/server@v$want (a few minutes, once)"
    GOBIN="{{tools}}" GOFLAGS=-mod=mod go install "github.com/livekit/livekit-server/cmd/server@v$want"
    mv -f "{{tools}}/server" "$local_bin"
    [ "$(version_of "$local_bin")" = "$want" ] || { echo "setup: built livekit-server is not $want" >&2; exit 1; }

# The official LiveKit Python SDK (interop peer) in a project-local venv, pinned.
setup-python:
    #!/usr/bin/env bash
    set -euo pipefail
    stamp="{{venv}}/.wavecast-sdk"
    want="{{python_sdk}} {{python_bench}}"
    [ -x "{{venv}}/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && exit 0
    echo "setup: python venv with $want"
    [ -x "{{venv}}/bin/python" ] || python3 -m venv "{{venv}}"
    "{{venv}}/bin/pip" install -q --disable-pip-version-check {{python_sdk}} {{python_bench}}
    echo "$want" > "$stamp"

# The browser peer of the tests (tests/browser): playwright-core and livekit-client from npm, pinned
# by package-lock.json; the browser is Debian's Chromium (setup-apt), never a downloaded one.
setup-browser:
    #!/usr/bin/env bash
    set -euo pipefail
    dir="{{root}}/tests/browser"
    stamp="$dir/node_modules/.wavecast-lock"
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && exit 0
    command -v npm >/dev/null || { echo "setup: Node.js with npm is needed for the browser tests (https://nodejs.org)" >&2; exit 1; }
    echo "setup: npm ci in tests/browser (playwright-core, livekit-client)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"

# Run livekit-server in dev mode on 127.0.0.1 with config/livekit-server.yaml (Ctrl-C stops it).
dev-server: setup-server
    #!/usr/bin/env bash
    set -euo pipefail
    livekit-server --dev --config "{{root}}/config/livekit-server.yaml" --bind 127.0.0.1 &
    pid=$!
    trap 'kill $pid 2>/dev/null' EXIT INT TERM
    for _ in $(seq 100); do
      curl -fs http://127.0.0.1:7880/ >/dev/null 2>&1 && break
      kill -0 $pid 2>/dev/null || { echo "livekit-server exited" >&2; exit 1; }
      sleep 0.1
    done
    echo "LiveKit dev server ready"
    echo "  URL:    ws://127.0.0.1:7880"
    echo "  key:    devkey"
    echo "  secret: secret"
    wait $pid

# A 2-node LiveKit cluster: two livekit-server nodes sharing a private redis-server, all on free
# loopback ports (prints the URLs and keys; Ctrl-C stops everything), e.g. `just cluster 3`.
cluster nodes="2": setup
    cargo run -q -p wavecast-testbed --example cluster -- {{nodes}}

# The main job: a local LiveKit server, a broadcaster (synthetic bars + tone) and a viewer window.
# Without a display the viewer runs headless and writes PNGs and stats to target/demo/.
demo: setup
    #!/usr/bin/env bash
    set -euo pipefail
    # Release builds: a debug build encodes 720p at a few frames per second on a small machine.
    cargo build --release -q -p wavecast -p wavecast-broadcaster -p wavecast-viewer
    bin="${CARGO_TARGET_DIR:-{{root}}/target}/release"
    log=$(mktemp)
    livekit-server --dev --config "{{root}}/config/livekit-server.yaml" --bind 127.0.0.1 >"$log" 2>&1 &
    server=$!
    trap 'kill $server ${bc:-} 2>/dev/null; rm -f "$log"' EXIT INT TERM
    for _ in $(seq 100); do curl -fs http://127.0.0.1:7880/ >/dev/null 2>&1 && break; sleep 0.1; done
    echo "== LiveKit dev server on ws://127.0.0.1:7880 (key devkey, secret secret); room from config/livekit.toml"
    "$bin/wavecast" room create wavecast-demo --metadata '{"topic":"wavecast demo"}'
    "$bin/broadcaster" --identity broadcaster --no-stdin &
    bc=$!
    if [ -n "${DISPLAY:-}" ]; then
      echo "== viewer window: F fullscreen, Q or Esc to quit"
      "$bin/viewer" --identity viewer --participant broadcaster
    else
      echo "== no DISPLAY: viewer runs headless, 90 frames to target/demo/"
      "$bin/viewer" --identity viewer --participant broadcaster --headless --frames 90 --dump "{{root}}/target/demo"
      echo "== wrote $(ls "{{root}}/target/demo"/*.png | wc -l) PNGs and target/demo/stats.json"
    fi
    "$bin/wavecast" participant list wavecast-demo

# Publish into a room (defaults from config/livekit.toml), e.g. `just run-broadcaster --room demo`.
run-broadcaster *args: setup
    cargo run --release -q -p wavecast-broadcaster -- "$@"

# Watch a room in a window (or `--headless --frames N --dump DIR`), e.g. `just run-viewer --room demo`.
run-viewer *args: setup
    cargo run --release -q -p wavecast-viewer -- "$@"

# Every participant of a room in a grid, e.g. `just run-room-visualizer --room demo`.
run-room-visualizer *args: setup
    cargo run --release -q -p wavecast-room-visualizer -- "$@"

# Everything CI checks: formatting, lints, unit and integration tests against a real server.
test: setup
    cargo fmt --all -- --check
    just lint
    cargo test --workspace --no-fail-fast
    cargo test -p wavecast-media --features cpal --test device
    just test-loom

# Clippy over every target, with the optional libwebrtc backend type-checked in the same pass (one
# check build instead of two: DOCS_RS=1 makes the `livekit` crate's build script skip its download).
lint:
    DOCS_RS=1 cargo clippy --workspace --all-targets --features wavecast-session/libwebrtc -- -D warnings
    cargo clippy -p wavecast-media --all-targets --features cpal -- -D warnings

# Type-check the optional backend on the official `livekit` crate (compile-checked only: under
# DOCS_RS its build script skips the prebuilt-libwebrtc download, so nothing is linked or run).
check-libwebrtc:
    DOCS_RS=1 cargo check -q -p wavecast-session --features libwebrtc

# Model-check the pipeline's concurrent pieces with loom (own target dir: cfg(loom) rebuilds deps).
test-loom:
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="{{root}}/target/loom" cargo test -q -p wavecast-pipeline --release --test loom
    RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="{{root}}/target/loom" cargo test -q -p wavecast-pipeline --release --lib loom_

# Criterion benchmarks plus the Python SDK side-by-side script (see docs/PERFORMANCE.md).
bench: setup
    cargo bench -p wavecast-token --bench tokens
    cargo bench -p wavecast-pipeline --bench pipeline
    "{{venv}}/bin/python" tests/python/bench_tokens.py
    cargo run --release -p wavecast-service --example token_bench
    cargo run --release -p wavecast-session --example data_bench

# The token service on 127.0.0.1:8089 (SQLite file target/wavecast-service.db unless configured),
# for the local dev server; see docs/service.md. Dev-only login secret and admin key below.
serve *args: setup
    WAVECAST_SERVICE__AUTH_SECRET="${WAVECAST_SERVICE__AUTH_SECRET:-dev-login-secret-change-me}" \
    WAVECAST_SERVICE__AUTH_ISSUER="${WAVECAST_SERVICE__AUTH_ISSUER:-https://login.example}" \
    WAVECAST_SERVICE__AUTH_AUDIENCE="${WAVECAST_SERVICE__AUTH_AUDIENCE:-wavecast}" \
    WAVECAST_SERVICE__ADMIN_KEY="${WAVECAST_SERVICE__ADMIN_KEY:-dev-admin-key-change-me}" \
    WAVECAST_SERVICE__DATABASE="${WAVECAST_SERVICE__DATABASE:-{{root}}/target/wavecast-service.db}" \
    cargo run -q -p wavecast --features recording -- serve --dev "$@"

# Load-test a server or cluster, e.g. `just load-test --url ws://127.0.0.1:7880 -p 2 -s 20 -d 30s`
# (release build; see `just load-test --help`).
load-test *args: setup
    cargo run -q --release -p wavecast-load-test -- "$@"

# Record a room into one WebM per participant + a JSON manifest, e.g. `just run-recorder --room demo --duration 30s`.
run-recorder *args: setup
    cargo run --release -q -p wavecast-recorder -- "$@"

# The admin CLI, e.g. `just wavecast room list`.
wavecast *args:
    cargo run -q -p wavecast -- "$@"
