#!/usr/bin/env bash
# Windows in CI: lint and build x86_64-pc-windows-gnu with Debian's mingw-w64, then prepare Wine to
# run the .exe for tests/e2e/windows.rs. Writes target/windows-ci/env.sh, which sets
# GCGA_WINDOWS_HELPER, GCGA_WINE and GCGA_WINEPREFIX for the tests (.ci/run sources it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=x86_64-pc-windows-gnu
out="$PWD/target/windows-ci"

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
wine="$(command -v wine64 || echo /usr/lib/wine/wine64)"

t0=$SECONDS
cargo clippy --locked --target "$target" --all-targets -- -D warnings
t1=$SECONDS
# The release build, as .github/workflows/release.yml makes it.
exe="$PWD/$(scripts/release-build "$target" target/windows-ci/dist | tail -1)"
t2=$SECONDS

# Rust's std (1.78 and later) imports ProcessPrng from bcryptprimitives.dll, which Wine 8 lacks:
# a one-function DLL over BCryptGenRandom stands in for it inside the prefix.
mkdir -p "$out"
cat >"$out/bcryptprimitives.c" <<'C'
#include <windows.h>
#include <bcrypt.h>
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
C
printf 'LIBRARY bcryptprimitives\nEXPORTS\n  ProcessPrng\n' >"$out/bcryptprimitives.def"
x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" \
  "$out/bcryptprimitives.c" "$out/bcryptprimitives.def" -lbcrypt

# A fresh 64-bit prefix (no Mono or Gecko: nothing here needs them).
prefix="$out/wineprefix"
rm -rf "$prefix"
export WINEPREFIX="$prefix" WINEARCH=win64 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
"$wine" wineboot --init >/dev/null 2>&1
"$(dirname "$wine")/wineserver" --wait
cp "$out/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/"
"$wine" "$exe" --version
"$(dirname "$wine")/wineserver" --kill || true
t3=$SECONDS

# The library's unit tests, built for Windows and run under Wine (cargo's runner) in a copy of
# the prefix: Windows paths, quoting and file handling as the .exe sees them.
unit_prefix="$out/unit-wineprefix"
rm -rf "$unit_prefix"
cp -al "$prefix" "$unit_prefix"
for reg in system.reg user.reg userdef.reg; do cp --remove-destination "$prefix/$reg" "$unit_prefix/$reg"; done
cat >"$out/wine-runner" <<RUNNER
#!/bin/sh
WINEPREFIX='$unit_prefix' WINEDEBUG=-all WINEDLLOVERRIDES='mscoree,mshtml=' exec '$wine' "\$@"
RUNNER
chmod +x "$out/wine-runner"
CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$out/wine-runner" \
  cargo test --locked --target "$target" --lib
"$(dirname "$wine")/wineserver" --kill || true
t4=$SECONDS

cat >"$out/env.sh" <<ENV
export GCGA_WINDOWS_HELPER='$exe' GCGA_WINE='$wine' GCGA_WINEPREFIX='$prefix'
ENV
echo "windows: clippy $((t1 - t0)) s, release build $((t2 - t1)) s, Wine prefix $((t3 - t2)) s, unit tests under Wine $((t4 - t3)) s"
