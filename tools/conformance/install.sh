#!/usr/bin/env bash
# Install the Autobahn Testsuite (wstest) into a cache directory outside the
# work tree, once; later calls only check a stamp.  Prints the path of the
# wstest wrapper on its last line.
#
#   tools/conformance/install.sh
#
# WSSERVICE_CONFORMANCE_CACHE  where to install (default
#                              ${XDG_CACHE_HOME:-~/.cache}/wsservice/autobahntestsuite)
# PYTHON3                      the Python 3 that bootstraps virtualenv (default python3)
#
# Why it is this way: see README.md beside this file.
set -euo pipefail
unset PYTHONPATH PYTHONHOME  # the Python 2.7 must not see a Python 3's modules

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${WSSERVICE_CONFORMANCE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsservice/autobahntestsuite}"
python3="${PYTHON3:-python3}"
# Debian 11 packages that make a working CPython 2.7 (with ssl, ctypes and headers).
debs="python2.7-minimal libpython2.7-minimal libpython2.7-stdlib libpython2.7-dev libssl1.1 libffi7"
virtualenv_pin="virtualenv==20.21.1"  # the last virtualenv that creates Python 2.7 environments
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
# Reinstall whenever this script or the pins change.
stamp="$(cat "$here/install.sh" "$here/requirements-py27.txt" | sha256sum | cut -c1-16)"

say() { echo "install.sh: $*" >&2; }
die() { say "$*"; exit 1; }

installed() { [ "$(cat "$cache/.stamp" 2>/dev/null)" = "$stamp" ] && [ -x "$cache/bin/wstest" ]; }

# The first URI in this machine's apt sources for the Debian archive ($1 = "")
# or its security archive ($1 = "-security").
apt_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        grep -hE '^[[:space:]]*(URIs:|deb[[:space:]])' "$f" | grep -oE '[a-z+]+://[^[:space:]]+' \
            | grep -E "/debian$1/?\$" | head -n1 | grep . && return 0
    done
    return 1
}

install() {
    for tool in apt-get dpkg-deb gcc "$python3"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    [ -r "$keyring" ] || die "$keyring is missing (Debian's debian-archive-keyring package)"
    local main security
    main="$(apt_uri "")" || die "no Debian archive in this machine's apt sources"
    security="$(apt_uri -security)" || die "no Debian security archive in this machine's apt sources"

    rm -rf "${cache:?}"/{apt,debs,py27,boot,venv27,bin,.stamp}
    mkdir -p "$cache/apt/lists/partial" "$cache/apt/archives/partial" "$cache/debs" "$cache/bin"
    printf 'deb [signed-by=%s] %s bullseye main\ndeb [signed-by=%s] %s bullseye-security main\n' \
        "$keyring" "$main" "$keyring" "$security" > "$cache/apt/sources.list"
    : > "$cache/apt/status"
    # A private apt: its own sources, lists, cache and (empty) status; the
    # machine's apt state is neither read nor changed.
    local apt=(apt-get -q -o Dir::Etc::SourceList="$cache/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
               -o Dir::State::Lists="$cache/apt/lists" -o Dir::Cache="$cache/apt" -o Dir::State::status="$cache/apt/status"
               -o Debug::NoLocking=1 -o Acquire::Languages=none)
    # As root apt downloads as the _apt user, who cannot write to a home directory.
    [ "$(id -u)" != 0 ] || apt+=(-o APT::Sandbox::User=root)

    say "downloading Debian 11 python2.7 packages"
    "${apt[@]}" update > "$cache/apt.log" 2>&1 || die "apt-get update failed, see $cache/apt.log"
    # shellcheck disable=SC2086
    (cd "$cache/debs" && "${apt[@]}" download $debs) >> "$cache/apt.log" 2>&1 \
        || die "apt-get download failed, see $cache/apt.log"
    for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$cache/py27"; done
    rm -rf "$cache/apt" "$cache/debs"

    local libs="$cache/py27/usr/lib/$(gcc -print-multiarch)" py27="$cache/py27/usr/bin/python2.7"
    export LD_LIBRARY_PATH="$libs"  # libssl1.1 and libffi7 are not on Debian 12
    "$py27" -c 'import ssl, ctypes' || die "the unpacked python2.7 does not work"

    say "creating the Python 2.7 virtualenv"
    "$python3" -m venv "$cache/boot"
    "$cache/boot/bin/pip" install -q "$virtualenv_pin" > "$cache/pip.log" 2>&1 \
        || die "pip install $virtualenv_pin failed, see $cache/pip.log"
    "$cache/boot/bin/virtualenv" -q --no-periodic-update -p "$py27" "$cache/venv27" >> "$cache/pip.log" 2>&1 \
        || die "virtualenv failed, see $cache/pip.log"
    rm -rf "$cache/boot"

    say "installing the pinned Python 2.7 packages"
    # Debian's python2.7 looks for its headers in /usr/include: point gcc at the unpacked ones.
    CFLAGS="-I$cache/py27/usr/include/python2.7 -I$cache/py27/usr/include" \
        "$cache/venv27/bin/pip" install -q --no-deps --no-warn-script-location \
        -r "$here/requirements-py27.txt" >> "$cache/pip.log" 2>&1 \
        || die "pip install -r requirements-py27.txt failed, see $cache/pip.log"

    cat > "$cache/bin/wstest" <<WRAPPER
#!/bin/sh
unset PYTHONPATH PYTHONHOME
LD_LIBRARY_PATH="$libs" exec "$cache/venv27/bin/wstest" "\$@"
WRAPPER
    chmod +x "$cache/bin/wstest"
    "$cache/bin/wstest" --autobahnversion >&2 || die "wstest does not start"
    echo "$stamp" > "$cache/.stamp"
}

if ! installed; then
    mkdir -p "$cache"
    exec 9> "$cache/.lock"
    flock 9  # one installer at a time; the others wait and then find it done
    if ! installed; then
        start=$SECONDS
        say "installing the Autobahn Testsuite into $cache (once, about a minute)"
        install
        say "installed in $((SECONDS - start)) s"
    fi
fi
echo "$cache/bin/wstest"
