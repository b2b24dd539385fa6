#!/usr/bin/env bash
# Debian's chromium on the controller, installed with apt when missing (as root): the browser the stack's
# browser test (molecule/stack/tests/test_browser.py) drives with Playwright.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"

ensure_browser
