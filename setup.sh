#!/bin/sh
# Installs every Debian 12 package smalt needs to build, test and
# benchmark, and creates the unprivileged user and the maildrop group.
# Idempotent: run it as often as you like. Needs root (re-runs itself
# through sudo when it can).
set -eu

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo "$0" "$@"
	fi
	echo "setup.sh: run me as root" >&2
	exit 1
fi

PACKAGES="
build-essential cmake pkg-config
libssl-dev libevent-dev libc-ares-dev libspf2-dev libcrypt-dev
clang libclang-rt-14-dev clang-format
python3 swaks ca-certificates passwd procps util-linux mount
dnsmasq-base python3-aiosmtpd
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -n "$missing" ]; then
	echo "setup.sh: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The daemon's network side runs as this user (the `user` key).
if ! getent group smalt >/dev/null; then
	groupadd --system smalt
fi
if ! getent passwd smalt >/dev/null; then
	useradd --system --gid smalt --home-dir /var/spool/smalt \
		--no-create-home --shell /usr/sbin/nologin \
		--comment "smalt mail transfer agent" smalt
fi
# Members of this group may write into spool_dir/maildrop (mode 1730),
# as Postfix's postdrop group: sendmail is not setuid root.
if ! getent group smaltdrop >/dev/null; then
	groupadd --system smaltdrop
fi
echo "setup.sh: packages, user smalt and group smaltdrop are in place"
