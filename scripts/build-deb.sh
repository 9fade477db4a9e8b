#!/usr/bin/env bash
# Build the Debian package of platforma-c2d with dpkg-deb:
#
#   bash scripts/build-deb.sh [OUTDIR]      (default OUTDIR: dist/)
#
# Prints the path of dist/platforma-c2d_<version>-1_<arch>.deb. The package
# holds the service in its own virtualenv under /usr/lib/platforma-c2d, made with
# Debian's /usr/bin/python3 and the versions pinned in constraints.txt, the
# systemd units (deploy/), /etc/platforma-c2d/config.toml (the commented
# sample, a conffile), logrotate for the CDR CSV and a fail2ban filter and
# jail. postinst makes the system user and /var/lib/platforma-c2d; purge
# removes them (docs/operations.md). Needs python3-venv (dpkg-deb comes with dpkg) and the
# Python package index pip is configured with (the only network it uses).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
py=/usr/bin/python3
prefix=/usr/lib/platforma-c2d

for tool in dpkg-deb "$py"; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install python3-venv)" >&2; exit 2; }
done
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' platforma_c2d/__init__.py)
arch=$(dpkg --print-architecture)
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
pynext=$("$py" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')
deb_version="$version-1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/root
src=$work/src
mkdir -p "$stage" "$src"
# Build from a copy, so the checkout gets no build/ or *.egg-info.
cp -r platforma_c2d setup.cfg pyproject.toml README.md "$src/"
find "$src" -name __pycache__ -prune -exec rm -rf {} +

# The virtualenv, made where it will live and moved at the end: text files
# naming the build path (scripts' #! lines, activate, pyvenv.cfg) are
# rewritten, bytecode is compiled again for the final path.
"$py" -m venv "$stage$prefix"
"$stage$prefix/bin/pip" install -q --no-warn-script-location --no-compile -c constraints.txt "$src"
find "$stage$prefix" -name __pycache__ -prune -exec rm -rf {} +
grep -rlIZ -- "$stage" "$stage$prefix" | xargs -0 -r sed -i "s#$stage##g"
"$stage$prefix/bin/python" -m compileall -q -j 0 -s "$stage" -p / "$stage$prefix/lib" >/dev/null

# Commands, units, config, logrotate, fail2ban, sample Asterisk configs, docs.
install -d "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/platforma-c2d" \
    "$stage/etc/logrotate.d" "$stage/etc/fail2ban/filter.d" "$stage/etc/fail2ban/jail.d" \
    "$stage/usr/share/platforma-c2d" "$stage/usr/share/doc/platforma-c2d"
ln -s "$prefix/bin/platforma-c2d" "$stage/usr/bin/platforma-c2d"
for unit in deploy/platforma-c2d.service deploy/platforma-c2d-agi.service; do
    sed 's#/usr/local/bin/platforma-c2d#/usr/bin/platforma-c2d#' "$unit" \
        > "$stage/lib/systemd/system/$(basename "$unit")"
done
install -m 640 config/platforma-c2d.sample.toml "$stage/etc/platforma-c2d/config.toml"
install -m 644 deploy/logrotate/platforma-c2d "$stage/etc/logrotate.d/platforma-c2d"
install -m 644 deploy/fail2ban/platforma-c2d.conf "$stage/etc/fail2ban/filter.d/platforma-c2d.conf"
install -m 644 deploy/fail2ban/jail-platforma-c2d.conf "$stage/etc/fail2ban/jail.d/platforma-c2d.conf"
cp -r asterisk_conf "$stage/usr/share/platforma-c2d/asterisk_conf"
cp -r docs README.md "$stage/usr/share/doc/platforma-c2d/"
[ -f CHANGELOG.md ] && cp CHANGELOG.md "$stage/usr/share/doc/platforma-c2d/"

install -d "$stage/DEBIAN"
install -m 644 deploy/debian/conffiles "$stage/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 755 "deploy/debian/$script" "$stage/DEBIAN/$script"
done
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
    -e "s/@PYVER@/$pyver/" -e "s/@PYNEXT@/$pynext/" deploy/debian/control > "$stage/DEBIAN/control"

mkdir -p "$out"
deb="$out/platforma-c2d_${deb_version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
