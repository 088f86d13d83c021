#!/usr/bin/env bash
# System packages the test suite needs, then the aarch64 emulation sysroot (cached between runs).
#   openssh-server  tests/e2e/test_ssh.py starts a throwaway sshd on 127.0.0.1 (ssh/scp clients come with it)
#   debootstrap     `edgeopt targets setup rpi4-emulated` builds an arm64 Debian userland with it
#   chromium        tests/e2e/test_report_browser.py renders the HTML report in headless Chromium (skipped without it)
#   postgresql      the optimize tests start a throwaway PostgreSQL server on 127.0.0.1 (tests/e2e/postgres_fixture.py)
# The sysroot lands in ${EDGEOPT_CACHE:-~/.cache/edgeopt}/sysroot-aarch64 (about 1 minute, ~450 MB, once);
# if it cannot be built, tests/e2e/test_emulated.py skips with the reason and this script says so.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    need=()
    [ -x /usr/sbin/sshd ] || need+=(openssh-server)
    command -v ssh >/dev/null 2>&1 && command -v scp >/dev/null 2>&1 || need+=(openssh-client)
    command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
    command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup-system: installing ${need[*]}"
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
    fi
else
    echo "setup-system: no apt-get here; install openssh-server, debootstrap, chromium and postgresql yourself" >&2
fi

make install >/dev/null
for attempt in 1 2; do
    if .venv/bin/edgeopt targets setup rpi4-emulated; then
        exit 0
    fi
    echo "setup-system: building the aarch64 sysroot failed (attempt $attempt)" >&2
    sleep 5
done
echo "setup-system: WARNING: no aarch64 sysroot; the emulated-target tests will be skipped" >&2
