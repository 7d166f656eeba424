#!/bin/sh
# Builds the page's WebAssembly into web/pkg/ (the README's one build command for the page).
# Needs the wasm32 target and wasm-bindgen-cli at the version of the wasm-bindgen crate in
# Cargo.lock; the error says how to install either.
set -eu
cd "$(dirname "$0")/.."
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  echo "web/build.sh: the wasm32 target is missing: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "web/build.sh: wasm-bindgen-cli $want is needed (found: ${have:-none}): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
cargo build --release --target wasm32-unknown-unknown -p shadergrad-web
wasm-bindgen --target web --no-typescript --out-dir web/pkg target/wasm32-unknown-unknown/release/shadergrad_web.wasm
echo "built web/pkg; serve the repository (python3 -m http.server) and open http://localhost:8000/web/"
