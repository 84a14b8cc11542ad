# Shared by scripts/toolchains/*: where tools live and an idempotent apt install.
# Sourced, not run. Everything installed lands under target/toolchains (gitignored),
# except Debian packages and wit-bindgen (see scripts/toolchains/wit-bindgen).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tools="$root/target/toolchains"
mkdir -p "$tools"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    # A fresh machine's package lists are empty or stale; update once per run.
    if [ ! -e "$tools/.apt-updated.$PPID" ]; then
        apt-get update -qq
        touch "$tools/.apt-updated.$PPID"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# pinned_venv VENV REQUIREMENTS CHECK...: a Python venv at VENV holding exactly the
# pins in REQUIREMENTS. Skips the install when the venv was made from the same file
# and CHECK (a command, run quietly) succeeds, else makes it afresh. CHECK should
# run something from the venv, since a venv that was moved or copied keeps its old
# absolute paths.
pinned_venv() {
    local venv=$1 req=$2
    shift 2
    if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.txt" \
        && "$@" >/dev/null 2>&1; then
        return 0
    fi
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
}
