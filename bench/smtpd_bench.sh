#!/usr/bin/env bash
# smtpd_bench.sh: Postfix's smtp-source against smaltd, Postfix and
# OpenSMTPD, each started privately on 127.0.0.1 with its queue on the
# same filesystem and its default durability, in one run:
#
#   - messages per second accepted at 1, 20 and 100 parallel sessions
#     (smtp-source: HELO, one 4 KiB message per connection), the systems
#     alternated round by round, the median of the rounds reported;
#   - memory per idle session: total PSS of every process of the server
#     with N idle sessions (greeting read, nothing sent) minus the total
#     before, divided by N.
#
# Postfix and OpenSMTPD relay what they accept to one smtp-sink; smaltd
# is told to hold its mail (delivery_concurrency = 0) and only queues (its
# spool is cleared between runs).
# Everything listens on 127.0.0.1 only. Needs root: it installs Postfix
# with apt, unpacks OpenSMTPD (which apt will not install beside Postfix)
# into a private prefix, and creates OpenSMTPD's users and its compiled-in
# queue /var/spool/smtpd.
#
#   bench/smtpd_bench.sh [-d WORK] [-r ROUNDS] [-p BASEPORT] [-i IDLE]
#                        [-m M1,M20,M100] [-T CAP] [-S SYSTEMS]
#
# Results: a markdown table on stdout and in WORK/results.md, every run in
# WORK/runs.tsv, server logs in WORK/logs/. Compare ratios from one run,
# never absolute numbers across runs (client, servers and sink share the
# CPUs).
set -Eeuo pipefail
trap 'echo "smtpd_bench: error: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR

CMDLINE="$0 $*"
BENCH=smtpd_bench
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC_DIR/bench/lib.sh"
SMALT_BUILD=${SMALT_BUILD:-$SRC_DIR/build}
WORK=/var/tmp/smtpd-bench
ROUNDS=2
BASEPORT=24025
IDLE=1000
MSGS=2000,10000,10000
CAP=30
DRAIN_MAX=900 # OpenSMTPD 6.8 relays only some 15 msg/s to the sink here
SYSTEMS=smaltd,postfix,opensmtpd
SESSIONS=(1 20 100)
MSG_LEN=4096
SENDER=from@example.com
OS_SPOOL=/var/spool/smtpd # compiled into OpenSMTPD 6.8
OS_CHROOT=/var/lib/opensmtpd/empty

usage() {
	cat >&2 <<EOF
usage: $0 [-d WORK] [-r ROUNDS] [-p BASEPORT] [-i IDLE] [-m M1,M20,M100]
          [-T CAP] [-S SYSTEMS]
  -d WORK      work directory: queues, configs, logs (default $WORK);
               must be on the same filesystem as $OS_SPOOL
  -r ROUNDS    rounds per session count, median reported (default $ROUNDS)
  -p BASEPORT  first of 4 ports on 127.0.0.1 (default $BASEPORT)
  -i IDLE      idle sessions for the memory phase; 0 skips it (default $IDLE)
  -m M1,M20,M100  messages per run at 1, 20, 100 sessions (default $MSGS)
  -T CAP       longest run in seconds; a run cut off is rated by the
               messages the server committed in it (default $CAP)
  -S SYSTEMS   comma list out of smaltd,postfix,opensmtpd (default all)
Environment: SMALT_BUILD (default $SMALT_BUILD)
EOF
	exit 2
}

while getopts "d:r:p:i:m:T:S:h" opt; do
	case $opt in
	d) WORK=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	p) BASEPORT=$OPTARG ;;
	i) IDLE=$OPTARG ;;
	m) MSGS=$OPTARG ;;
	T) CAP=$OPTARG ;;
	S) SYSTEMS=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
IFS=, read -r -a MSG_COUNTS <<<"$MSGS"
[ ${#MSG_COUNTS[@]} -eq 3 ] || usage
IFS=, read -r -a SYS_LIST <<<"$SYSTEMS"
for s in "${SYS_LIST[@]}"; do
	case $s in smaltd | postfix | opensmtpd) ;; *) usage ;; esac
done
require_root smtpd_bench

SMALT_PORT=$BASEPORT
POSTFIX_PORT=$((BASEPORT + 1))
OS_PORT=$((BASEPORT + 2))
SINK_PORT=$((BASEPORT + 3))
LOGS=$WORK/logs
PF_DIR=$WORK/postfix
PF_CONF=$PF_DIR/etc
PF_QUEUE=$PF_DIR/queue
OS_DIR=$WORK/opensmtpd
OS_PREFIX=$OS_DIR/root
OS_LIBPATH=$OS_PREFIX/lib/x86_64-linux-gnu:$OS_PREFIX/usr/lib/x86_64-linux-gnu
SMALT_SPOOL=$WORK/smalt-spool

# ---------------------------------------------------------------- cleanup
SMALTD_PID=
OS_PID=
SINK_PID=
IDLE_PID=
PF_STARTED=0

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pid "$IDLE_PID"
	IDLE_PID=
	stop_smaltd
	stop_opensmtpd
	stop_postfix
	stop_pid "$SINK_PID"
	SINK_PID=
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- install
# Unpacks a .deb fetched with apt-get download into $OS_PREFIX.
fetch_deb() {
	local pkg=$1 deb
	mkdir -p "$OS_DIR/debs"
	chown _apt "$OS_DIR/debs" 2>/dev/null || true
	(cd "$OS_DIR/debs" && apt-get download -qq "$pkg" >/dev/null 2>&1) || {
		apt-get update -qq >/dev/null
		(cd "$OS_DIR/debs" && apt-get download -qq "$pkg" >/dev/null 2>&1)
	} || die "apt-get download $pkg failed"
	deb=$(ls -t "$OS_DIR/debs/${pkg}"_*.deb | head -1)
	dpkg-deb -x "$deb" "$OS_PREFIX"
}

install_opensmtpd() {
	local smtpd=$OS_PREFIX/usr/sbin/smtpd dep missing name
	if [ ! -x "$smtpd" ]; then
		say "unpacking opensmtpd into $OS_PREFIX (it conflicts with postfix in apt)"
		fetch_deb opensmtpd
		# Runtime libraries it depends on that are not installed.
		for dep in $(dpkg-deb -f "$(ls -t "$OS_DIR"/debs/opensmtpd_*.deb | head -1)" Depends |
			tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/:any//; s/ //g'); do
			case $dep in lib* | zlib*) ;; *) continue ;; esac
			pkg_installed "$dep" || fetch_deb "$dep"
		done
	fi
	missing=$(LD_LIBRARY_PATH=$OS_LIBPATH ldd "$smtpd" | awk '/not found/ {print $1}')
	[ -z "$missing" ] || die "opensmtpd still misses libraries: $missing"
	for name in opensmtpd opensmtpq; do
		getent group "$name" >/dev/null || addgroup --system --quiet "$name"
		id "$name" >/dev/null 2>&1 ||
			adduser --system --quiet --home "$OS_CHROOT" --no-create-home \
				--disabled-password --gecos "OpenSMTPD ($name)" \
				--ingroup "$name" "$name" 2>/dev/null
	done
	install -d -m 0755 -o root -g root "$OS_CHROOT"
}

# ---------------------------------------------------------------- helpers
# Sum of Pss (KiB) over the processes under a pid; "KIB NPROCS".
tree_pss() {
	local pid total=0 n=0 v
	for pid in $(tree_pids "$1"); do
		v=$(awk '/^Pss:/ {print $2; exit}' "/proc/$pid/smaps_rollup" 2>/dev/null) || continue
		[ -n "$v" ] || continue
		total=$((total + v))
		n=$((n + 1))
	done
	echo "$total $n"
}

# ---------------------------------------------------------------- smaltd
start_smaltd() {
	rm -rf "$SMALT_SPOOL"
	sync
	"$SMALT_BUILD/cli/smaltd" -d -o "listen=127.0.0.1:$SMALT_PORT" \
		-o "spool_dir=$SMALT_SPOOL" -o max_connections=2000 \
		-o max_connections_per_ip=2000 -o log=stderr \
		-o delivery_concurrency=0 \
		>>"$LOGS/smaltd.log" 2>&1 &
	SMALTD_PID=$!
	wait_greeting "$SMALT_PORT" smaltd
}

# ---------------------------------------------------------------- postfix
setup_postfix() {
	postfix_instance_setup "$POSTFIX_PORT" \
		"mydestination =" \
		"relayhost = [127.0.0.1]:$SINK_PORT" \
		"default_process_limit = $((IDLE + 100 > 200 ? IDLE + 100 : 200))"
}

# ---------------------------------------------------------------- opensmtpd
setup_opensmtpd() {
	# Nothing else may be using the compiled-in queue.
	if python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect("/var/run/smtpd.sock")' 2>/dev/null; then
		die "an OpenSMTPD is already running (/var/run/smtpd.sock answers); $OS_SPOOL is its"
	fi
	mkdir -p "$OS_DIR"
	cat >"$OS_DIR/smtpd.conf" <<EOF
listen on 127.0.0.1 port $OS_PORT
action "relay" relay host smtp://127.0.0.1:$SINK_PORT
match from local for any action "relay"
EOF
	# Its resolver (asr) asks DNS before /etc/hosts by default, and the
	# machine's resolver may drop queries: each client's PTR lookup could
	# stall the greeting 5 s. Postfix and smaltd read /etc/hosts first;
	# OpenSMTPD gets the same through a private resolv.conf, bind-mounted
	# in its own mount namespace (the system file is untouched).
	printf 'lookup file\n' >"$OS_DIR/resolv.conf"
	"$OS_PREFIX/usr/sbin/smtpd" -n -f "$OS_DIR/smtpd.conf" >/dev/null 2>&1 ||
		die "smtpd -n rejects $OS_DIR/smtpd.conf"
}

reset_opensmtpd_spool() {
	rm -rf "$OS_SPOOL"
	install -d -m 0711 -o root -g root "$OS_SPOOL"
	install -d -m 0700 -o opensmtpq -g root "$OS_SPOOL"/{incoming,purge,queue,temporary}
	install -d -m 0770 -o root -g opensmtpq "$OS_SPOOL/offline"
}

start_opensmtpd() {
	reset_opensmtpd_spool
	unshare -m sh -c "mount --bind '$OS_DIR/resolv.conf' /etc/resolv.conf &&
		exec env LD_LIBRARY_PATH='$OS_LIBPATH' '$OS_PREFIX/usr/sbin/smtpd' -d -f '$OS_DIR/smtpd.conf'" \
		>>"$LOGS/opensmtpd.log" 2>&1 &
	OS_PID=$!
	wait_greeting "$OS_PORT" opensmtpd
}

stop_opensmtpd() {
	stop_pid "$OS_PID"
	OS_PID=
}

opensmtpd_queued() {
	files_in "$OS_SPOOL"/{incoming,queue,temporary}
}

# ---------------------------------------------------------------- sink
start_sink() {
	smtp-sink -u nobody 127.0.0.1:$SINK_PORT 1000 >>"$LOGS/smtp-sink.log" 2>&1 &
	SINK_PID=$!
	wait_greeting "$SINK_PORT" smtp-sink
}

# ---------------------------------------------------------------- per system
rcpt_of() {
	case $1 in
	smaltd) echo root@localhost ;; # local_domains has localhost; root exists
	*) echo sink@example.com ;;    # relayed to the sink
	esac
}
port_of() {
	case $1 in
	smaltd) echo "$SMALT_PORT" ;;
	postfix) echo "$POSTFIX_PORT" ;;
	opensmtpd) echo "$OS_PORT" ;;
	esac
}
name_of() {
	case $1 in
	smaltd) echo smaltd ;;
	postfix) echo Postfix ;;
	opensmtpd) echo OpenSMTPD ;;
	esac
}
root_pid_of() {
	case $1 in
	smaltd) echo "$SMALTD_PID" ;;
	postfix) postfix_master_pid ;;
	opensmtpd) echo "$OS_PID" ;;
	esac
}

# Messages the server has committed so far, from its own log: one line
# per message accepted with 250.
committed() {
	case $1 in
	smaltd) count_in 'smalt/smtpd\[[0-9]+\]: .*\(queued\)$' "$LOGS/smaltd.log" ;;
	postfix) count_in 'postfix/qmgr.*: from=<' "$LOGS/postfix.log" ;;
	opensmtpd) count_in ' smtp message msgid=' "$LOGS/opensmtpd.log" ;;
	esac
}

# Waits until the relaying servers have handed everything to the sink, so
# that one system's deliveries never run during another's measurement.
drain() {
	local sys=$1 q=0 end=$((SECONDS + DRAIN_MAX))
	while :; do
		case $sys in
		postfix) q=$(postfix_queued) ;;
		opensmtpd) q=$(opensmtpd_queued) ;;
		*) return 0 ;;
		esac
		if [ "$q" -eq 0 ] || [ $SECONDS -ge $end ]; then break; fi
		sleep 0.2
	done
	if [ "$q" -ne 0 ]; then
		say "warning: $sys still holds $q queue files after $DRAIN_MAX s"
	fi
	sleep 0.5 # let postlogd write its last lines
}

# One timed run: prints "RATE FLAG" (FLAG: ok, capped or failed).
run_one() {
	local sys=$1 sess=$2 msgs=$3 round=$4 port rcpt t0 t1 rc c0 c1 n el rate flag
	port=$(port_of "$sys")
	rcpt=$(rcpt_of "$sys")
	if [ "$sys" = smaltd ]; then
		stop_smaltd
		start_smaltd # an empty spool for every run
	fi
	sync # what the previous runs left dirty is not this run's cost
	c0=$(committed "$sys")
	t0=$(now)
	rc=0
	timeout --signal=TERM "$CAP" smtp-source -s "$sess" -m "$msgs" \
		-l "$MSG_LEN" -f "$SENDER" -t "$rcpt" "127.0.0.1:$port" \
		>>"$LOGS/smtp-source.log" 2>"$WORK/source.err" || rc=$?
	t1=$(now)
	drain "$sys"
	c1=$(committed "$sys")
	n=$((c1 - c0))
	el=$(echo "$t1 - $t0" | bc -l)
	if [ -s "$WORK/source.err" ]; then
		sed "s/^/[$sys s=$sess r=$round] /" "$WORK/source.err" >>"$LOGS/smtp-source.err"
	fi
	if [ $rc -eq 0 ]; then
		flag=ok
		[ "$n" -eq "$msgs" ] || {
			flag=mismatch
			say "warning: $sys s=$sess: smtp-source sent $msgs, server log shows $n committed"
		}
		rate=$(echo "$msgs / $el" | bc -l)
	elif [ $rc -eq 124 ]; then
		flag=capped
		rate=$(echo "$n / $el" | bc -l)
	else
		flag=failed
		rate=$(echo "$n / $el" | bc -l)
		say "warning: smtp-source against $sys at $sess sessions failed (rc $rc): $(head -3 "$WORK/source.err" | tr '\n' ' ')"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%s\t%s\n' "$round" "$sys" "$sess" \
		"$msgs" "$n" "$el" "$rate" "$flag" "$(wc -l <"$WORK/source.err")" >>"$WORK/runs.tsv"
	say "$(name_of "$sys") s=$sess round $round: $n msgs in $(printf %.2f "$el") s = $(printf %.0f "$rate") msg/s ($flag)"
}

# ---------------------------------------------------------------- idle
write_idle_script() {
	cat >"$WORK/idle_sessions.py" <<'EOF'
# idle_sessions.py HOST PORT N STATUSFILE: opens N SMTP sessions one after
# the other, reads each 220 greeting, writes a status line to STATUSFILE,
# then holds the sessions until SIGTERM, when it reports (to stdout) how
# many the server closed meanwhile and closes them all.
import resource, select, signal, socket, sys, time

host, port, n, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = n + 64
if soft != resource.RLIM_INFINITY and soft < want:
    resource.setrlimit(resource.RLIMIT_NOFILE,
                       (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))

def greeting(s):
    buf = b""
    while True:
        d = s.recv(4096)
        if not d:
            raise ConnectionError("closed before the greeting")
        buf += d
        lines = buf.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] != b"-":
                return line
        if len(buf) > 65536:
            raise ConnectionError("greeting too long")

socks, errors = [], {}
t0 = time.time()
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=15)
        line = greeting(s)
        if not line.startswith(b"220"):
            raise ConnectionError("greeting " + line[:40].decode("ascii", "replace"))
        s.settimeout(None)
        socks.append(s)
    except Exception as e:  # report, keep going
        k = "%s: %s" % (type(e).__name__, e)
        errors[k] = errors.get(k, 0) + 1
ramp = time.time() - t0
with open(status + ".tmp", "w") as f:
    f.write("open=%d failed=%d ramp=%.1fs errors=%r\n" % (len(socks), n - len(socks), ramp, errors))
import os
os.rename(status + ".tmp", status)

done = False
def on_term(sig, frame):
    global done
    done = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
while not done:
    time.sleep(0.2)
closed = 0
for i in range(0, len(socks), 500):
    r, _, _ = select.select(socks[i:i + 500], [], [], 0)
    closed += len(r)
print("closed_by_server_while_idle=%d" % closed, flush=True)
for s in socks:
    s.close()
EOF
}

# Sets IDLE_KIB[sys] (KiB per idle session) and IDLE_DETAIL[sys].
measure_idle() {
	local sys=$1 port root before after nb na st i open per
	port=$(port_of "$sys")
	root=$(root_pid_of "$sys")
	sleep 1
	read -r before nb < <(tree_pss "$root")
	rm -f "$WORK/idle.status"
	python3 "$WORK/idle_sessions.py" 127.0.0.1 "$port" "$IDLE" "$WORK/idle.status" \
		>"$WORK/idle.out" 2>&1 &
	IDLE_PID=$!
	for i in $(seq 3000); do
		[ -s "$WORK/idle.status" ] && break
		kill -0 "$IDLE_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$WORK/idle.status" ] || die "idle sessions to $sys never came up: $(cat "$WORK/idle.out")"
	st=$(cat "$WORK/idle.status")
	sleep 2
	read -r after na < <(tree_pss "$root")
	stop_pid "$IDLE_PID"
	IDLE_PID=
	open=$(sed -n 's/^open=\([0-9]*\).*/\1/p' <<<"$st")
	[ "${open:-0}" -gt 0 ] || die "no idle session to $sys opened: $st"
	per=$(echo "($after - $before) / $open" | bc -l)
	IDLE_KIB[$sys]=$(printf '%.1f' "$per")
	IDLE_DETAIL[$sys]=$(printf '%s KiB/session; PSS %s -> %s KiB; processes %s -> %s; %s %s' \
		"${IDLE_KIB[$sys]}" "$before" "$after" "$nb" "$na" "$st" \
		"$(tr '\n' ' ' <"$WORK/idle.out")")
}

# ---------------------------------------------------------------- report
# Not lib's median: one decimal (the table rounds from it, the ratios divide
# it), and 0.0 rather than nothing when there are no numbers.
median1() { # numbers as arguments
	printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1}
		END { if (NR == 0) print ""; else if (NR % 2) printf "%.1f", v[(NR + 1) / 2];
		      else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rate_cell() { # sys sess: median rate, marked when any run was cut off/failed
	local vals flags
	vals=$(awk -F'\t' -v s="$1" -v n="$2" '$2 == s && $3 == n {print $7}' "$WORK/runs.tsv")
	flags=$(awk -F'\t' -v s="$1" -v n="$2" '$2 == s && $3 == n && $8 != "ok" {print $8}' "$WORK/runs.tsv" | sort -u | tr '\n' ' ')
	# shellcheck disable=SC2086
	printf '%s' "$(median1 $vals | awk '{printf "%.0f", $1}')"
	case $flags in *capped*) printf '†' ;; esac
	case $flags in *failed* | *mismatch*) printf '‡' ;; esac
}

rate_num() {
	local vals
	vals=$(awk -F'\t' -v s="$1" -v n="$2" '$2 == s && $3 == n {print $7}' "$WORK/runs.tsv")
	# shellcheck disable=SC2086
	median1 $vals
}

has_sys() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

report() {
	local s n cells
	{
		echo "| system | 1 session msg/s | 20 sessions msg/s | 100 sessions msg/s | KiB per idle session |"
		echo "| --- | ---: | ---: | ---: | ---: |"
		for s in "${SYS_LIST[@]}"; do
			cells="| $(name_of "$s")"
			for n in "${SESSIONS[@]}"; do cells="$cells | $(rate_cell "$s" "$n")"; done
			cells="$cells | ${IDLE_KIB[$s]:-n/a} |"
			echo "$cells"
		done
		for s in postfix opensmtpd; do
			has_sys smaltd && has_sys "$s" || continue
			cells="| smaltd / $(name_of "$s")"
			for n in "${SESSIONS[@]}"; do
				cells="$cells | $(ratio "$(rate_num smaltd "$n")" "$(rate_num "$s" "$n")")"
			done
			cells="$cells | $(ratio "${IDLE_KIB[smaltd]:-}" "${IDLE_KIB[$s]:-}") |"
			echo "$cells"
		done
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`$CMDLINE\`."
		echo "Median of $ROUNDS rounds; messages per run at 1/20/100 sessions: $MSGS;" \
			"runs capped at $CAP s."
		if grep -q 'capped' "$WORK/runs.tsv"; then
			echo "† at least one run was cut off at $CAP s: rated by the messages the server" \
				"committed (its log) in that time."
		fi
		if grep -qE 'failed|mismatch' "$WORK/runs.tsv"; then
			echo "‡ at least one run failed or the server's count differed from smtp-source's" \
				"(see runs below and logs/)."
		fi
		echo "Memory: total PSS of all the server's processes with $IDLE idle sessions" \
			"minus before, / sessions open. Ratio rows: smaltd ÷ peer (msg/s: higher" \
			"is better for smaltd; KiB: lower is better for smaltd)."
		for s in postfix opensmtpd; do
			has_sys smaltd && has_sys "$s" || continue
			echo
			echo "smaltd ÷ $(name_of "$s") round by round (runs next to each other):"
			for n in "${SESSIONS[@]}"; do
				printf '%s\n' "- $n session$([ "$n" = 1 ] || echo s): $(awk -F'\t' -v s="$s" -v n="$n" '
					$3 == n && $2 == "smaltd" { a[$1] = $7 }
					$3 == n && $2 == s { b[$1] = $7 }
					END {
						for (r = 1; r in a || r in b; r++)
							if ((r in a) && (r in b) && b[r] > 0) {
								v = a[r] / b[r]; out = out sep sprintf("%.3g", v); sep = ", "
								if (min == "" || v < min) min = v
								if (max == "" || v > max) max = v
							}
						printf "%s (min %.3g, max %.3g)", out, min, max
					}' "$WORK/runs.tsv")"
			done
		done
		if has_sys smaltd && has_sys postfix; then
			local r20 kib
			r20=$(ratio "$(rate_num smaltd 20)" "$(rate_num postfix 20)")
			echo
			echo "Goal, 20 sessions, smaltd ≥ 1.5× Postfix (both fsync before 250): $r20 →" \
				"$(awk -v r="${r20%×}" 'BEGIN { print (r + 0 >= 1.5) ? "met" : "NOT met" }')"
		fi
		if has_sys smaltd && [ -n "${IDLE_KIB[smaltd]:-}" ]; then
			kib=${IDLE_KIB[smaltd]}
			echo "Goal, idle session < 32 KiB: smaltd ${kib} KiB →" \
				"$(awk -v k="$kib" 'BEGIN { print (k + 0 < 32) ? "met" : "NOT met" }')"
		fi
		echo
		echo "Durability and setup as measured:"
		echo "- smaltd $SMALT_VERSION (commit $SMALT_REV, build $SMALT_BUILD): fsyncs" \
			"message and envelope files (two fsyncs per message, in one commit thread)" \
			"and its two queue directories (once per batch) before 250 (SPEC §4); holds" \
			"its mail (delivery_concurrency = 0), only queues (spool emptied before each run); recipient" \
			"root@localhost; spool $SMALT_SPOOL."
		echo "- Postfix $PF_VERSION: default durability (cleanup fsyncs the queue file" \
			"before 250); queue $PF_QUEUE; relays to smtp-sink while accepting;" \
			"default_process_limit $((IDLE + 100 > 200 ? IDLE + 100 : 200)), connection limits off."
		echo "- OpenSMTPD $OS_VERSION: does NOT fsync its queue before 250, and listens" \
			"with a backlog of 5 (smtp-source opens connections one at a time, so one" \
			"dropped SYN stalls every new session for the SYN retransmit time); queue" \
			"$OS_SPOOL (compiled in); relays to smtp-sink while accepting; resolver" \
			"limited to /etc/hosts (private resolv.conf) like the other two."
		echo "- Client: smtp-source -s N -m M -l $MSG_LEN (HELO, one message per" \
			"connection, no pipelining); sink: smtp-sink on 127.0.0.1:$SINK_PORT."
		echo "- Machine: $(machine_line)," \
			"$OS_SPOOL on $FS_OS$([ "$DEV_WORK" = "$DEV_OS" ] && echo " (same filesystem)" || echo " (DIFFERENT filesystem!)")."
		echo
		echo "Runs (round, system, sessions, messages asked, committed, seconds, msg/s, flag, smtp-source stderr lines):"
		echo
		echo '```'
		cat "$WORK/runs.tsv"
		echo '```'
		if [ "$IDLE" -gt 0 ]; then
			echo
			echo "Idle sessions:"
			echo
			echo '```'
			for s in "${SYS_LIST[@]}"; do echo "$s: ${IDLE_DETAIL[$s]:-}"; done
			echo '```'
		fi
	} >"$WORK/results.md"
	cat "$WORK/results.md"
}

# ---------------------------------------------------------------- main
mkdir -p "$WORK" "$LOGS"
chmod 0755 "$WORK"
: >"$WORK/runs.tsv"
for f in smaltd.log postfix.log opensmtpd.log smtp-source.log smtp-source.err smtp-sink.log; do
	: >"$LOGS/$f"
done
install_postfix
has_sys opensmtpd && install_opensmtpd
has_sys smaltd && build_smalt
command -v bc >/dev/null || die "bc is needed"

for p in "$SMALT_PORT" "$POSTFIX_PORT" "$OS_PORT" "$SINK_PORT"; do
	port_free "$p" || die "port 127.0.0.1:$p is taken (use -p)"
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

DEV_WORK=$(stat -c %d "$WORK")
FS_WORK=$(df -T "$WORK" | awk 'NR == 2 {print $2 " " $1 " (" $7 ")"}')
mkdir -p "$(dirname "$OS_SPOOL")"
DEV_OS=$(stat -c %d "$(dirname "$OS_SPOOL")")
FS_OS=$(df -T "$(dirname "$OS_SPOOL")" | awk 'NR == 2 {print $2 " " $1 " (" $7 ")"}')
[ "$DEV_WORK" = "$DEV_OS" ] || say "warning: $WORK and $OS_SPOOL are on different filesystems"
PF_VERSION=$(dpkg-query -W -f='${Version}' postfix 2>/dev/null || echo '?')
# (not unpacked when -S leaves OpenSMTPD out and WORK is new: "?")
OS_VERSION=$({ zcat "$OS_PREFIX/usr/share/doc/opensmtpd/changelog.Debian.gz" 2>/dev/null || true; } |
	sed -n '1s/.*(\(.*\)).*/\1/p')
OS_VERSION=${OS_VERSION:-?}
SMALT_REV=$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')
SMALT_VERSION=$(sed -n 's/^project(smalt VERSION \([0-9.]*\).*/\1/p' "$SRC_DIR/CMakeLists.txt")

say "work dir $WORK ($FS_WORK); OpenSMTPD queue $OS_SPOOL ($FS_OS)"
has_sys opensmtpd && say "OpenSMTPD does not fsync before 250 and listens with a backlog of 5"

# ---- throughput
start_sink
if has_sys postfix; then
	setup_postfix
	start_postfix "$POSTFIX_PORT"
fi
if has_sys opensmtpd; then
	setup_opensmtpd
	start_opensmtpd
fi
if has_sys smaltd; then start_smaltd; fi

for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) -eq 1 ]; then
		order=("${SYS_LIST[@]}")
	else
		order=()
		for ((i = ${#SYS_LIST[@]} - 1; i >= 0; i--)); do order+=("${SYS_LIST[$i]}"); done
	fi
	for k in 0 1 2; do
		for sys in "${order[@]}"; do
			run_one "$sys" "${SESSIONS[$k]}" "${MSG_COUNTS[$k]}" "$round"
		done
	done
done

# ---- memory per idle session, each server freshly started
declare -A IDLE_KIB=() IDLE_DETAIL=()
if [ "$IDLE" -gt 0 ]; then
	write_idle_script
	stop_smaltd
	stop_opensmtpd
	stop_postfix
	for sys in "${SYS_LIST[@]}"; do
		case $sys in
		smaltd) start_smaltd ;;
		postfix) start_postfix "$POSTFIX_PORT" ;;
		opensmtpd) start_opensmtpd ;;
		esac
		measure_idle "$sys"
		say "$(name_of "$sys"): ${IDLE_DETAIL[$sys]}"
		case $sys in
		smaltd) stop_smaltd ;;
		postfix) stop_postfix ;;
		opensmtpd) stop_opensmtpd ;;
		esac
	done
fi

report
