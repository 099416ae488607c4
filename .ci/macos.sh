#!/usr/bin/env bash
# macOS in CI: every crate compiled and linted for aarch64-apple-darwin, with zig as the C compiler
# (ring's C needs Apple's headers, which zig ships). Nothing is linked or run: linking needs
# Apple's SDK, which is not redistributable, so the binary is built and run on a Mac only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=aarch64-apple-darwin
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
python3 -c 'import ziglang' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check ziglang
# cc-rs calls CC_<target> with clang's options; zig's clang takes them with zig's own spelling
# of the target instead of cc-rs's --target=arm64-apple-macosx.
wrapper="$PWD/target/macos-ci/zigcc-$target"
mkdir -p "$(dirname "$wrapper")"
cat >"$wrapper" <<SH
#!/bin/sh
for arg do
  shift
  case "\$arg" in --target=*) ;; *) set -- "\$@" "\$arg" ;; esac
done
exec '$(command -v python3)' -m ziglang cc -target aarch64-macos "\$@"
SH
chmod +x "$wrapper"
t0=$SECONDS
CC_aarch64_apple_darwin="$wrapper" cargo clippy --locked --target "$target" -- -D warnings
echo "macos: clippy $((SECONDS - t0)) s"
