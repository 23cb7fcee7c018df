#!/usr/bin/env bash
# `cmake --install` puts the programs, the mailq/newaliases names and
# every man page where a packager expects them.
. "$(dirname "$0")/lib.sh"
: "${SMALT_SRC:?}"

P="$T/prefix"
cmake --install "$SMALT_BUILD" --prefix "$P" >"$T/install.log" 2>&1
check "cmake --install succeeds" [ $? -eq 0 ]
for prog in smaltd smaltctl sendmail; do
	check "sbin/$prog installed" [ -x "$P/sbin/$prog" ]
done
for link in mailq newaliases; do
	check "sbin/$link -> sendmail" [ "$(readlink "$P/sbin/$link")" = sendmail ]
done
for page in "$SMALT_SRC"/docs/*.[0-9]; do
	name=$(basename "$page")
	section=${name##*.}
	check "man page $name installed" cmp -s "$page" "$P/share/man/man$section/$name"
done
if [ "$(id -u)" -eq 0 ] && getent group smaltdrop >/dev/null; then
	check "sendmail is setgid smaltdrop" [ "$(stat -c '%G %a' "$P/sbin/sendmail")" = "smaltdrop 2755" ]
	check "sendmail is not setuid" [ ! -u "$P/sbin/sendmail" ]
fi
"$P/sbin/smaltd" -n -f /dev/null >"$T/n.out" 2>&1
check "the installed smaltd runs" grep -q "^spool_dir = /var/spool/smalt$" "$T/n.out"
finish
