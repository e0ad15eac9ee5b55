#!/usr/bin/env bash
# Idempotent set-up on a Debian machine: the apt packages the project and its
# tests need, a .venv, and an editable install with the test extras.
# Called by `make demo` and `make test`; safe to run again at any time.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(fuse3 libfuse3-dev pkg-config libacl1-dev acl attr dump tar mt-st
              e2fsprogs util-linux gcc python3-dev amanda-common tshark iproute2
              samba smbclient python3-samba)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing apt packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    # tshark asks whether non-root users may capture; answer no, without asking.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install
# (or an install from before the stamp named its editable mode).
# The editable install is setuptools' "compat" mode where it has it: a plain
# path entry in a .pth file.  The default mode's import hook loads pathlib,
# urllib and more in every Python process of the venv, ~10 ms of each
# pydump/pyrestore start; where compat is gone, the default mode it is.
stamp=.venv/.snapdump-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! grep -q '^editable_mode=' "$stamp"; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    if .venv/bin/pip install -q -e ".[test]" --config-settings editable_mode=compat >/dev/null 2>&1; then
        echo "editable_mode=compat" > "$stamp"
    else
        .venv/bin/pip install -q -e ".[test]"
        echo "editable_mode=default" > "$stamp"
    fi
fi
