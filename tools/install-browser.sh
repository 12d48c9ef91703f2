#!/usr/bin/env bash
# Debian's Chromium for the browser test (tests/deployment/test_ui_browser.py), when it is not installed yet.
# Playwright drives this system browser; it never downloads one of its own (`playwright install` is not used).
# A CJK font comes along, so that Chinese names render in the screenshots instead of empty boxes.
# Used by .ci/run before the tests; in CI (CI=true) the browser test fails when /usr/bin/chromium is missing.
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)

has_cjk_font() { command -v fc-list >/dev/null && [ -n "$(fc-list :lang=zh family)" ]; }

if [ -x "$CHROMIUM" ] && has_cjk_font; then
    echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
echo "installing ${PACKAGES[*]} with apt-get"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
echo "chromium: $("$CHROMIUM" --version)"
