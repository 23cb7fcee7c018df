# Shared by the shell integration tests: temp dirs, free ports, a running
# smaltd, and assertions that count.
set -u
: "${SMALT_BUILD:?SMALT_BUILD must name the build directory}"
SMALTD="$SMALT_BUILD/cli/smaltd"
SMALTCTL="$SMALT_BUILD/cli/smaltctl"
PASSED=0
FAILED=0
T=$(mktemp -d "${TMPDIR:-/tmp}/smalt-it.XXXXXX")
chmod 755 "$T"
PIDS=""

cleanup() {
	for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
	if [ "$FAILED" -eq 0 ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then ok; else fail "$what"; fi
}
finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for COMMAND...: up to 10 s
wait_for() {
	local i
	for i in $(seq 1 100); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}
