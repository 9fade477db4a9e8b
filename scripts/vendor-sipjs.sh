#!/usr/bin/env bash
# Copy SIP.js, as pinned in tests/browser/package-lock.json, into the package
# (platforma_c2d/http/static/vendor/sip.js/), where the phone page loads it from the
# service's own origin: its ES modules (lib/**/*.js, unchanged), LICENSE.md
# and package.json. Nothing is built or minified; tests/unit/test_pages.py
# checks that the shipped copy is the pinned version, file for file.
#   bash scripts/vendor-sipjs.sh      (after scripts/install-browser.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
src=tests/browser/node_modules/sip.js
dst=platforma_c2d/http/static/vendor/sip.js
pinned=$(node -p 'require("./tests/browser/package-lock.json").packages["node_modules/sip.js"].version')
have=$(node -p "require('./$src/package.json').version")
if [ "$pinned" != "$have" ]; then
    echo "vendor-sipjs: node_modules has sip.js $have, the lock file pins $pinned: run scripts/install-browser.sh" >&2
    exit 1
fi
rm -rf "$dst"
mkdir -p "$dst"
(cd "$src" && find lib -name '*.js' -print0 | xargs -0 cp --parents -t "$OLDPWD/$dst")
cp "$src/LICENSE.md" "$src/package.json" "$dst/"
(cd "$dst" && find lib -name '*.js' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "vendor-sipjs: sip.js $have: $(wc -l < "$dst/SHA256SUMS") modules in $dst"
