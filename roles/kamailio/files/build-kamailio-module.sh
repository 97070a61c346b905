#!/bin/bash
# Build one Kamailio module from the distribution's own kamailio source package.
#
#   build-kamailio-module.sh MODULE VERSION WORKDIR
#
# MODULE   module directory name under src/modules (e.g. http_async_client)
# VERSION  exact Debian version of the installed kamailio (dpkg-query -W kamailio)
# WORKDIR  scratch apt state, the source package of VERSION and the build log
#
# The host's apt configuration is left alone: deb-src entries are derived from its enabled
# deb entries (same mirrors, suites, components and Signed-By) and written to a scratch
# sources directory with its own lists and lock. The tree is configured with the flags
# debian/rules uses, and the module is checked with `kamailio -c` against the installed
# core before anything is printed: Kamailio refuses a module whose version or compile flags
# differ from its own.
#
# On success the last line of stdout is the path of the built module
# (WORKDIR/src/kamailio_VERSION/MODULE.so). Only the source package of VERSION is kept;
# the unpacked tree, the scratch lists and older versions are removed.
#
# Exit codes: 2 usage, 3 no source package for VERSION reachable, 4 the build failed
# (the compiler's last lines on stderr) or the module does not load into the installed core.
set -euo pipefail

if [ "$#" -ne 3 ]; then
    echo "usage: $0 MODULE VERSION WORKDIR" >&2
    exit 2
fi
module=$1
version=$2
workdir=$3
case "$module" in
    *[!a-z0-9_]* | "") echo "invalid module name: $module" >&2; exit 2 ;;
esac
if ! command -v kamailio > /dev/null; then
    echo "kamailio is not installed: install it before building modules for it" >&2
    exit 2
fi

aptdir=$workdir/apt
# make cannot cope with ':' in paths, and an epoch puts one in a Debian version.
srcdir=$workdir/src/kamailio_${version//:/_}
download=$srcdir/download
tree=$srcdir/tree
log=$workdir/build-$module.log
mkdir -p "$workdir/src"

apt_scratch=(
    -o "Dir::Etc::SourceList=$aptdir/sources.list"
    -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
    -o "Dir::State::Lists=$aptdir/lists"
    -o "Dir::Cache=$aptdir/cache"
)

write_deb_src_entries() {
    rm -rf "$aptdir"
    mkdir -p "$aptdir/sources.list.d" "$aptdir/lists/partial" "$aptdir/cache"
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -nE 's/^[[:space:]]*deb(-src)?([[:space:]])/deb-src\2/p' "$f"
    done | sort -u > "$aptdir/sources.list"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # deb822: one stanza per paragraph; keep every field but the type, drop disabled ones.
        awk 'BEGIN { RS = ""; ORS = "\n\n" }
             /(^|\n)[Ee]nabled:[[:space:]]*[Nn]o/ { next }
             { gsub(/(^|\n)[Tt]ypes:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' \
            "$f" > "$aptdir/sources.list.d/$(basename "$f")"
    done
}

fetch_source() {
    write_deb_src_entries
    local update_out out
    # A binary-only repository (some third-party ones) makes update complain; what matters
    # is whether the kamailio source is found afterwards, so keep the output for the message.
    # Each apt-get is bounded: apt's acquire can wait forever (see the apt_packages role).
    update_out=$(timeout --kill-after=15 300 apt-get "${apt_scratch[@]}" -q update 2>&1) || true
    rm -rf "$srcdir"
    mkdir -p "$download"
    # apt downloads as _apt when that user can write the target directory (no sandbox warning).
    if id _apt > /dev/null 2>&1; then chown _apt "$download"; fi
    if ! out=$(cd "$download" && timeout --kill-after=15 600 apt-get "${apt_scratch[@]}" -q source --download-only \
            "kamailio=$version" 2>&1); then
        {
            echo "No source package for kamailio=$version is reachable from this host's apt sources."
            echo "deb-src entries tried (derived from /etc/apt/sources.list*):"
            cat "$aptdir/sources.list" "$aptdir"/sources.list.d/*.sources 2>/dev/null |
                grep -E '^(deb-src|URIs:|Suites:)' | sed 's/^/  /' || true
            echo "apt-get source said:"
            echo "$out" | grep -vE '^(Reading|Building|Picking|NOTICE|Please use|git clone)' |
                tail -n 5 | sed 's/^/  /' || true
            if echo "$update_out" | grep -qE '^(E|W|Err):'; then
                echo "apt-get update said:"
                echo "$update_out" | grep -E '^(E|W|Err):' | tail -n 5 | sed 's/^/  /'
            fi
        } >&2
        rm -rf "$srcdir" "$aptdir"
        exit 3
    fi
    chown -R root "$download"
    rm -rf "$aptdir"
}

unpack_source() {
    local dsc out
    dsc=$(find "$download" -maxdepth 1 -name 'kamailio_*.dsc' | head -n 1)
    rm -rf "$tree"
    if ! out=$(dpkg-source --no-copy -x "$dsc" "$tree" 2>&1); then
        echo "dpkg-source could not unpack $dsc:" >&2
        echo "$out" | tail -n 10 >&2
        rm -rf "$srcdir"
        exit 3
    fi
    if [ ! -d "$tree/src/modules/$module" ]; then
        echo "kamailio $version has no module named $module" >&2
        rm -rf "$tree"
        exit 2
    fi
}

build_module() {
    # The flags debian/rules hands to 'make cfg' (hardening, reproducible version string).
    export DEB_BUILD_MAINT_OPTIONS=hardening=+all
    local cc_opts ld_opts multiarch mutex_shared=0
    # From inside the tree, as dpkg-buildpackage would (the file prefix map names it).
    cc_opts=$(cd "$tree" && echo "$(dpkg-buildflags --get CPPFLAGS) $(dpkg-buildflags --get CFLAGS) -DVERSION_NODATE")
    ld_opts=$(cd "$tree" && dpkg-buildflags --get LDFLAGS)
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    # One compile flag follows whichever libssl-dev the tree is configured against: take it
    # from the installed core instead, so libssl-dev is not needed and cannot get it wrong.
    case "$(kamailio -v 2>&1 | sed -n 's/^flags: //p')" in
        *TLS_PTHREAD_MUTEX_SHARED*) mutex_shared=1 ;;
    esac
    if ! {
        make -C "$tree" cfg quiet=verbose prefix=/usr cfg_target=/etc/kamailio/ \
            FLAVOUR=kamailio LIBDIR="lib/$multiarch" LIBSSL_SET_MUTEX_SHARED="$mutex_shared" \
            CC_EXTRA_OPTS="$cc_opts" LD_EXTRA_OPTS="$ld_opts" include_modules="$module" &&
        make -C "$tree/src/modules/$module" -j "$(nproc)" quiet=verbose
    } > "$log" 2>&1; then
        {
            echo "Building $module for kamailio $version failed (full log: $log)."
            echo "Errors:"
            grep -E ': (fatal )?error:|undefined reference|\*\*\*' "$log" | head -n 10 | cut -c1-300 || true
            echo "Last lines:"
            tail -n 8 "$log" | cut -c1-300
        } >&2
        exit 4
    fi
    cp "$tree/src/modules/$module/$module.so" "$srcdir/$module.so"
    rm -rf "$tree"
}

# Load the new module the way the daemon will, before anyone installs it.
check_module_loads() {
    local cfg=$workdir/check-$module.cfg out
    printf 'loadmodule "tm.so"\nloadmodule "pv.so"\nloadmodule "%s"\nrequest_route { exit; }\n' \
        "$srcdir/$module.so" > "$cfg"
    if ! out=$(kamailio -c -f "$cfg" 2>&1); then
        echo "The $module built for kamailio $version does not load into the installed kamailio:" >&2
        echo "$out" | grep -E 'ERROR|CRITICAL|^core:|^module:' | tail -n 8 >&2
        rm -f "$srcdir/$module.so"
        exit 4
    fi
    rm -f "$cfg"
}

if ! compgen -G "$download/kamailio_*.dsc" > /dev/null; then
    fetch_source
fi
# Sources of other (older) kamailio versions are of no further use.
find "$workdir/src" -mindepth 1 -maxdepth 1 ! -path "$srcdir" -exec rm -rf {} +
unpack_source
build_module
check_module_loads
echo "$srcdir/$module.so"
