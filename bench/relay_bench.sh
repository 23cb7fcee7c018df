#!/usr/bin/env bash
# relay_bench.sh: relay throughput from the queue to smtp-sink, smaltd
# against Postfix and OpenSMTPD configured to relay everything to the same
# smarthost (Postfix's smtp-sink on 127.0.0.1), in one run:
#
#   - each system is started with an empty queue and delivery held
#     (smaltd: delivery_concurrency = 0 in its config file; Postfix: every
#     message put on hold at the end of DATA; OpenSMTPD: smtpd -P mta),
#     and N messages are injected with smtp-source and committed to its
#     queue;
#   - then delivery is released (smaltd: the config file says
#     delivery_concurrency = 20 and the master gets SIGHUP; Postfix:
#     postsuper -H ALL + postqueue -f; OpenSMTPD: smtpctl resume mta),
#     and the time from the release until the sink has taken all N
#     messages is measured (smtp-sink -c counts every "." it answers;
#     polled every 20 ms);
#   - messages per second, the systems alternated round by round, the
#     median of the rounds, and the ratios smaltd / Postfix and smaltd /
#     OpenSMTPD.
#
# N is 10,000 by default, but 1,000 for OpenSMTPD (-N): OpenSMTPD 6.8
# relays here over one connection at a time, 100 messages per connection,
# each message held ~45 ms by Nagle's algorithm against the sink's delayed
# ACK (it writes the final ".\r\n" apart from the body): about 15 msg/s,
# the same at 1,000 and 3,000 messages; 10,000 would take 11 minutes.
#
# Everything listens on 127.0.0.1 high ports; every system runs from a
# private config and queue (OpenSMTPD 6.8's queue is compiled in:
# /var/spool/smtpd) and is stopped at the end. A peer that is not
# installed is skipped with a note (-I installs Postfix with apt and
# unpacks OpenSMTPD, as smtpd_bench.sh does). Needs root.
#
#   bench/relay_bench.sh [-d WORK] [-n N] [-N N_OS] [-r ROUNDS] [-p BASEPORT]
#                        [-l LEN] [-s SESSIONS] [-c CONC] [-X SETTING]...
#                        [-T CAP] [-S SYSTEMS] [-O PREFIX] [-I]
#
# Results: a markdown table on stdout and in WORK/results.md, every run in
# WORK/runs.tsv, logs in WORK/logs/. Compare ratios from one run, never
# absolute numbers across runs (the MTA and the sink share the CPUs).
set -Eeuo pipefail
trap 'echo "relay_bench: error: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR

CMDLINE=$0
for a in "$@"; do # the command line as it could be typed again
	if [[ $a =~ ^[A-Za-z0-9_./,:=@+-]+$ ]]; then CMDLINE+=" $a"; else CMDLINE+=" '$a'"; fi
done
BENCH=relay_bench
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC_DIR/bench/lib.sh"
SMALT_BUILD=${SMALT_BUILD:-$SRC_DIR/build}
WORK=/var/tmp/relay-bench
NMSG=10000
OS_NMSG=1000 # OpenSMTPD 6.8 relays ~15 msg/s here: 10,000 would take 11 minutes
ROUNDS=1
BASEPORT=24055
MSG_LEN=3072
INJ_SESS=4    # OpenSMTPD 6.8 listens with a backlog of 5: stay below it
CONC=20       # smaltd's delivery_concurrency after the release (its default)
CAP=300       # longest timed phase in seconds
STALL=30      # a run whose sink count stops growing this long is cut off
DRAIN_MAX=120 # after a run: longest wait for the queue to empty
SYSTEMS=smaltd,postfix,opensmtpd
OS_PREFIX=
INSTALL=0
SM_EXTRA=()
SENDER=from@example.com
RCPT=sink@example.com
OS_SPOOL=/var/spool/smtpd # compiled into OpenSMTPD 6.8
OS_SOCK=/var/run/smtpd.sock

usage() {
	cat >&2 <<EOF
usage: $0 [-d WORK] [-n N] [-N N_OS] [-r ROUNDS] [-p BASEPORT] [-l LEN] [-s SESSIONS]
          [-c CONC] [-X SETTING]... [-T CAP] [-S SYSTEMS] [-O PREFIX] [-I]
  -d WORK      work directory: queues, configs, logs (default $WORK)
  -n N         messages per run (default $NMSG)
  -N N_OS      messages per OpenSMTPD run (default $OS_NMSG: it relays one
               message at a time, each stalled ~45 ms by Nagle + delayed
               ACK, about 15 msg/s at 1,000 and at 3,000 alike)
  -r ROUNDS    rounds, median reported (default $ROUNDS)
  -p BASEPORT  first of 5 ports on 127.0.0.1: smaltd, Postfix, OpenSMTPD,
               the sink, and a dead UDP port for smaltd's resolver
               (default $BASEPORT)
  -l LEN       smtp-source message length in bytes (default $MSG_LEN)
  -s SESSIONS  smtp-source sessions for the injection, not timed
               (default $INJ_SESS)
  -c CONC      smaltd's delivery_concurrency after the release
               (default $CONC, its default)
  -X SETTING   a further line for smaltd's config file, e.g.
               "destination_concurrency = 20" (repeatable; default none)
  -T CAP       longest timed phase in seconds; a run cut off is rated by
               the messages the sink had by then (default $CAP)
  -S SYSTEMS   comma list out of smaltd,postfix,opensmtpd (default all)
  -O PREFIX    where OpenSMTPD is unpacked (default: WORK/opensmtpd/root,
               else smtpd_bench.sh's /var/tmp/smtpd-bench/opensmtpd/root,
               else the system's opensmtpd package)
  -I           install missing peers: Postfix with apt, OpenSMTPD unpacked
               into WORK/opensmtpd/root; without -I they are skipped
Environment: SMALT_BUILD (default $SMALT_BUILD), SMALT_REV (the commit
named in the report; default: git rev-parse in the tree the build came
from), SMALT_SMTP_SINK (an smtp-sink outside PATH; smtp-source is taken
from the same folder)
EOF
	exit 2
}

while getopts "d:n:N:r:p:l:s:c:X:T:S:O:Ih" opt; do
	case $opt in
	d) WORK=$OPTARG ;;
	n) NMSG=$OPTARG ;;
	N) OS_NMSG=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	p) BASEPORT=$OPTARG ;;
	l) MSG_LEN=$OPTARG ;;
	s) INJ_SESS=$OPTARG ;;
	c) CONC=$OPTARG ;;
	X) SM_EXTRA+=("$OPTARG") ;;
	T) CAP=$OPTARG ;;
	S) SYSTEMS=$OPTARG ;;
	O) OS_PREFIX=$OPTARG ;;
	I) INSTALL=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$NMSG" "$OS_NMSG" "$ROUNDS" "$BASEPORT" "$MSG_LEN" "$INJ_SESS" "$CONC" "$CAP"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
IFS=, read -r -a SYS_LIST <<<"$SYSTEMS"
for s in "${SYS_LIST[@]}"; do
	case $s in smaltd | postfix | opensmtpd) ;; *) usage ;; esac
done
[[ $WORK == /* ]] || WORK=$PWD/$WORK
require_root relay_bench

SMALT_PORT=$BASEPORT
POSTFIX_PORT=$((BASEPORT + 1))
OS_PORT=$((BASEPORT + 2))
SINK_PORT=$((BASEPORT + 3))
DEAD_PORT=$((BASEPORT + 4)) # smaltd's resolver: nothing answers there
LOGS=$WORK/logs
PF_DIR=$WORK/postfix
PF_CONF=$PF_DIR/etc
PF_QUEUE=$PF_DIR/queue
SM_DIR=$WORK/smaltd
SM_SPOOL=$SM_DIR/spool
SM_CONF=$SM_DIR/smalt.conf
OS_DIR=$WORK/opensmtpd
SINK_COUNTER=$WORK/sink.counter

# ---------------------------------------------------------------- cleanup
SMALTD_PID=
OS_PID=
SINK_PID=
PF_STARTED=0
OS_CTL_COPY=

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_smaltd
	stop_opensmtpd
	stop_postfix
	stop_sink
	[ -z "$OS_CTL_COPY" ] || rm -f "$OS_CTL_COPY"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

has_sys() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

drop_sys() { # sys reason: leaves a peer out of this run
	say "skipping $(name_of "$1"): $2"
	SKIPPED="${SKIPPED:+$SKIPPED; }$(name_of "$1"): $2"
	local s out=()
	for s in "${SYS_LIST[@]}"; do [ "$s" = "$1" ] || out+=("$s"); done
	SYS_LIST=("${out[@]}")
	SYSTEMS=$(
		IFS=,
		echo "${SYS_LIST[*]}"
	)
}
SKIPPED=

name_of() {
	case $1 in
	smaltd) echo smaltd ;;
	postfix) echo Postfix ;;
	opensmtpd) echo OpenSMTPD ;;
	esac
}
port_of() {
	case $1 in
	smaltd) echo "$SMALT_PORT" ;;
	postfix) echo "$POSTFIX_PORT" ;;
	opensmtpd) echo "$OS_PORT" ;;
	esac
}
log_of() {
	case $1 in
	smaltd) echo "$LOGS/smaltd.log" ;;
	postfix) echo "$LOGS/postfix.log" ;;
	opensmtpd) echo "$LOGS/opensmtpd.log" ;;
	esac
}

# ---------------------------------------------------------------- sink
# A fresh smtp-sink for every run, so its counter starts at 0.
start_sink() {
	stop_sink
	: >"$SINK_COUNTER"
	echo "=== $(date '+%F %T') smtp-sink" >>"$LOGS/smtp-sink.log"
	"$SMTP_SINK" -c -u nobody "127.0.0.1:$SINK_PORT" 1000 \
		>"$SINK_COUNTER" 2>>"$LOGS/smtp-sink.log" &
	SINK_PID=$!
	wait_greeting "$SINK_PORT" smtp-sink
	# wait_greeting's own session counts as a session, not a message.
}

stop_sink() {
	stop_pid "$SINK_PID"
	SINK_PID=
}

# ---------------------------------------------------------------- smaltd
# The config file holds delivery_concurrency: smaltd applies -o overrides
# again on every reload, so a held -o delivery_concurrency=0 could not be
# lifted by SIGHUP.
write_smaltd_conf() { # file delivery_concurrency
	cat >"$1" <<EOF
# relay_bench.sh
hostname = smaltd-bench.localdomain
local_domains = smaltd-bench.localdomain
listen = 127.0.0.1:$SMALT_PORT
spool_dir = $SM_SPOOL
relayhost = [127.0.0.1]:$SINK_PORT
relayhost_tls = none
aliases = /dev/null
resolver = 127.0.0.1:$DEAD_PORT
log = stderr
max_connections = 2000
max_connections_per_ip = 2000
delivery_concurrency = $2
EOF
	if [ ${#SM_EXTRA[@]} -gt 0 ]; then printf '%s\n' "${SM_EXTRA[@]}" >>"$1"; fi
}

setup_smaltd() {
	mkdir -p "$SM_DIR"
	write_smaltd_conf "$SM_CONF" 0
	check_smaltd_conf "$SM_CONF" "$LOGS/smaltd-n.txt"
	SM_DEST_CONC=$(sed -n 's/^destination_concurrency *= *//p' "$LOGS/smaltd-n.txt")
}

start_smaltd() { # held: an empty spool, delivery_concurrency = 0
	rm -rf "$SM_SPOOL"
	write_smaltd_conf "$SM_CONF" 0
	write_smaltd_conf "$SM_DIR/smalt.conf.release" "$CONC"
	launch_smaltd "$SM_CONF"
}

# ---------------------------------------------------------------- postfix
# Held: every message is put on hold at the end of DATA (cleanup writes
# it into hold/, the qmgr never sees it). Released: postsuper -H ALL moves
# hold/ into deferred/ and postqueue -f makes the qmgr take the deferred
# queue up at once. (Leaving the qmgr service out of master.cf instead
# keeps mail in incoming/, but then every cleanup waits about a second
# for the missing public/qmgr trigger: 4 msg/s injected.)
setup_postfix() {
	postfix_instance_setup "$POSTFIX_PORT" \
		"mydestination =" \
		"relayhost = [127.0.0.1]:$SINK_PORT" \
		"smtp_tls_security_level = none" \
		"smtpd_end_of_data_restrictions = check_client_access static:HOLD"
	postfix_check
	PF_SMTP_CONC=$(postconf -c "$PF_CONF" -x -h smtp_destination_concurrency_limit)
	PF_SMTP_CONC_INIT=$(postconf -c "$PF_CONF" -x -h smtp_initial_destination_concurrency)
	PF_PROC_LIMIT=$(postconf -c "$PF_CONF" -x -h default_process_limit)
}

start_postfix_held() {
	local n
	n=$(postfix_queued)
	if [ "$n" -ne 0 ]; then
		say "warning: Postfix's queue holds $n files before a run; removing them"
		postsuper -c "$PF_CONF" -d ALL >>"$LOGS/postfix-ctl.log" 2>&1 || true
	fi
	start_postfix "$POSTFIX_PORT"
}

postfix_release_cmd() {
	echo "postsuper -c '$PF_CONF' -H ALL 2>>'$LOGS/postfix-ctl.log' && postqueue -c '$PF_CONF' -f"
}

# ---------------------------------------------------------------- opensmtpd
# Finds OpenSMTPD (sets OS_PREFIX, OS_SMTPD, OS_SMTPCTL, OS_LIBPATH) or
# returns 1.
find_opensmtpd() {
	local p
	if [ -z "$OS_PREFIX" ]; then
		for p in "$OS_DIR/root" /var/tmp/smtpd-bench/opensmtpd/root; do
			if [ -x "$p/usr/sbin/smtpd" ] && [ -x "$p/usr/sbin/smtpctl" ]; then
				OS_PREFIX=$p
				break
			fi
		done
	fi
	if [ -z "$OS_PREFIX" ] && pkg_installed opensmtpd; then OS_PREFIX=/; fi
	if [ -z "$OS_PREFIX" ] && [ "$INSTALL" = 1 ]; then
		say "unpacking opensmtpd into $OS_DIR/root (it conflicts with postfix in apt)"
		opensmtpd_unpack "$OS_DIR/root" "$OS_DIR/debs"
		OS_PREFIX=$OS_DIR/root
	fi
	[ -n "$OS_PREFIX" ] || return 1
	OS_PREFIX=${OS_PREFIX%/}
	OS_SMTPD=$OS_PREFIX/usr/sbin/smtpd
	OS_SMTPCTL=$OS_PREFIX/usr/sbin/smtpctl
	[ -x "$OS_SMTPD" ] && [ -x "$OS_SMTPCTL" ] || return 1
	OS_LIBPATH=$(opensmtpd_libpath "${OS_PREFIX:-/}")
	return 0
}

# smtpctl insists on running setgid opensmtpq, which dpkg-deb -x does not
# give it: a private copy that is, removed at the end.
opensmtpd_ctl_copy() {
	mkdir -p "$OS_DIR"
	OS_CTL_COPY=$OS_DIR/smtpctl # smtpctl goes by its name (mailq, sendmail)
	install -m 2555 -o root -g opensmtpq "$OS_SMTPCTL" "$OS_CTL_COPY"
}

opensmtpd_busy() { # another OpenSMTPD runs: its control socket answers
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$OS_SOCK" 2>/dev/null
}

setup_opensmtpd() {
	local missing
	missing=$(LD_LIBRARY_PATH=$OS_LIBPATH ldd "$OS_SMTPD" | awk '/not found/ {print $1}')
	[ -z "$missing" ] || die "OpenSMTPD in $OS_PREFIX misses libraries: $missing (-I unpacks them)"
	opensmtpd_users
	opensmtpd_ctl_copy
	mkdir -p "$OS_DIR"
	cat >"$OS_DIR/smtpd.conf" <<EOF
listen on 127.0.0.1 port $OS_PORT
action "relay" relay host smtp://127.0.0.1:$SINK_PORT
match from local for any action "relay"
EOF
	# Its resolver (asr) asks DNS before /etc/hosts, and this machine's
	# resolver may drop queries; like smtpd_bench.sh, it gets a private
	# resolv.conf ("lookup file") bind-mounted in its own mount namespace.
	printf 'lookup file\n' >"$OS_DIR/resolv.conf"
	LD_LIBRARY_PATH=$OS_LIBPATH "$OS_SMTPD" -n -f "$OS_DIR/smtpd.conf" >/dev/null 2>&1 ||
		die "smtpd -n rejects $OS_DIR/smtpd.conf"
}

reset_opensmtpd_spool() {
	rm -rf "$OS_SPOOL"
	install -d -m 0711 -o root -g root "$OS_SPOOL"
	install -d -m 0700 -o opensmtpq -g root "$OS_SPOOL"/{incoming,purge,queue,temporary}
	install -d -m 0770 -o root -g opensmtpq "$OS_SPOOL/offline"
}

start_opensmtpd_held() { # an empty queue, the mta paused from the start
	reset_opensmtpd_spool
	echo "=== $(date '+%F %T') smtpd -d -P mta -f $OS_DIR/smtpd.conf" >>"$LOGS/opensmtpd.log"
	unshare -m sh -c "mount --bind '$OS_DIR/resolv.conf' /etc/resolv.conf &&
		exec env LD_LIBRARY_PATH='$OS_LIBPATH' '$OS_SMTPD' -d -P mta -f '$OS_DIR/smtpd.conf'" \
		>>"$LOGS/opensmtpd.log" 2>&1 &
	OS_PID=$!
	wait_greeting "$OS_PORT" opensmtpd
}

stop_opensmtpd() {
	stop_pid "$OS_PID"
	OS_PID=
}

opensmtpd_queued() { # envelopes and message files in its queue
	files_in "$OS_SPOOL"/{incoming,queue,temporary}
}

opensmtpd_release_cmd() {
	echo "env LD_LIBRARY_PATH='$OS_LIBPATH' '$OS_CTL_COPY' resume mta >>'$LOGS/opensmtpd-ctl.log' 2>&1"
}

# ---------------------------------------------------------------- per system
cpu_ticks() { # "busy total" jiffies of the whole machine, from /proc/stat
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat
}

start_held() {
	case $1 in
	smaltd) start_smaltd ;;
	postfix) start_postfix_held ;;
	opensmtpd) start_opensmtpd_held ;;
	esac
}
stop_sys() {
	case $1 in
	smaltd) stop_smaltd ;;
	postfix) stop_postfix ;;
	opensmtpd) stop_opensmtpd ;;
	esac
}
release_cmd() {
	case $1 in
	smaltd) echo "mv -f '$SM_DIR/smalt.conf.release' '$SM_CONF' && kill -HUP $SMALTD_PID" ;;
	postfix) postfix_release_cmd ;;
	opensmtpd) opensmtpd_release_cmd ;;
	esac
}
queued() {
	case $1 in
	smaltd) smaltd_queued ;;
	postfix) postfix_queued ;;
	opensmtpd) opensmtpd_queued ;;
	esac
}
# Messages the system has committed to its queue, from its log: one line
# per message accepted with 250.
committed() {
	case $1 in
	smaltd) count_in 'smalt/smtpd\[[0-9]+\]: .*\(queued\)$' "$LOGS/smaltd.log" ;;
	postfix) count_in 'postfix/cleanup\[[0-9]+\]: [0-9A-F]+: message-id=' "$LOGS/postfix.log" ;;
	opensmtpd) count_in ' smtp message msgid=' "$LOGS/opensmtpd.log" ;;
	esac
}
# Log lines of recipients delivered, deferred, bounced.
sent_lines() {
	case $1 in
	smaltd) count_in 'status=sent' "$LOGS/smaltd.log" ;;
	postfix) count_in 'postfix/smtp\[[0-9]+\]: .* status=sent' "$LOGS/postfix.log" ;;
	opensmtpd) count_in 'mta delivery .* result="Ok"' "$LOGS/opensmtpd.log" ;;
	esac
}
deferred_lines() {
	case $1 in
	smaltd) count_in 'status=deferred' "$LOGS/smaltd.log" ;;
	postfix) count_in 'postfix/smtp\[[0-9]+\]: .* status=deferred' "$LOGS/postfix.log" ;;
	opensmtpd) count_in 'mta delivery .* result="TempFail"' "$LOGS/opensmtpd.log" ;;
	esac
}

# Waits until the queue is empty (the run's deliveries are all done); sets
# DRAIN_LEFT to what is left after DRAIN_MAX seconds.
DRAIN_LEFT=0
drain() { # sys [max seconds]
	local q end=$((SECONDS + ${2:-$DRAIN_MAX}))
	while :; do
		q=$(queued "$1")
		if [ "$q" -eq 0 ] || [ $SECONDS -ge $end ]; then break; fi
		sleep 0.2
	done
	DRAIN_LEFT=$q
}

# The timed phase: runs the release command, then polls the sink's
# counter every 20 ms until it reaches N, CAP seconds have passed, or it
# has not grown for STALL seconds.
write_run_script() {
	cat >"$WORK/relay_run.py" <<'EOF'
# relay_run.py COUNTER N CAP STALL OUTFILE -- CMD...
# Prints to OUTFILE "elapsed count flag cmd_rc cmd_elapsed first":
# elapsed: seconds from the start of CMD (the release) until the sink had
# N messages (ok), or until its last message (stalled), or CAP (capped);
# cmd_elapsed: how long CMD itself ran; first: when the first message
# reached the sink (-1: none).
import os, re, subprocess, sys, time

counter, n, cap, stall, out = sys.argv[1:6]
n, cap, stall = int(n), float(cap), float(stall)
assert sys.argv[6] == "--"
cmd = sys.argv[7:]
rec = re.compile(rb"mesg=(\d+)\r")

def count():
    try:
        with open(counter, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 200))
            m = rec.findall(f.read())
            return int(m[-1]) if m else 0
    except FileNotFoundError:
        return 0

c0 = count()
t0 = time.monotonic()
rc = subprocess.run(cmd).returncode
t_cmd = time.monotonic() - t0
last_c, last_t, first = c0, t0, -1.0
while True:
    c = count() - c0
    t = time.monotonic()
    if c > 0 and first < 0:
        first = t - t0
    if c != last_c:
        last_c, last_t = c, t
    if c >= n:
        flag, el = "ok", t - t0
        break
    if t - t0 >= cap:
        flag, el = "capped", t - t0
        break
    if t - last_t >= stall:
        flag, el = "stalled", last_t - t0
        break
    time.sleep(0.02)
with open(out, "w") as f:
    f.write("%.4f %d %s %d %.4f %.4f\n" % (el, c, flag, rc, t_cmd, first))
EOF
}

# One run: prints a line, appends one to runs.tsv.
run_one() {
	local sys=$1 round=$2 port c0 c1 s0 s1 d0 d1 t0 t1 inj src_rc q held
	local el n flag rel_rc t_rel first final left rate load i sess0 sess b0 tt0 b1 tt1 busy nm=$NMSG
	[ "$sys" != opensmtpd ] || nm=$OS_NMSG
	port=$(port_of "$sys")
	start_sink
	start_held "$sys"
	[ "$(queued "$sys")" -eq 0 ] || die "$sys's queue is not empty before a run"
	c0=$(committed "$sys")
	s0=$(sent_lines "$sys")
	d0=$(deferred_lines "$sys")
	# Injection (not timed): N messages into the held queue.
	t0=$(now)
	src_rc=0
	"$SMTP_SOURCE" -s "$INJ_SESS" -m "$nm" -l "$MSG_LEN" -f "$SENDER" -t "$RCPT" \
		"127.0.0.1:$port" >>"$LOGS/smtp-source.log" 2>"$WORK/source.err" || src_rc=$?
	t1=$(now)
	inj=$(echo "$nm / ($t1 - $t0)" | bc -l)
	if [ -s "$WORK/source.err" ]; then
		sed "s/^/[$sys r=$round] /" "$WORK/source.err" >>"$LOGS/smtp-source.err"
	fi
	[ "$src_rc" -eq 0 ] || say "warning: smtp-source against $sys failed (rc $src_rc): $(head -2 "$WORK/source.err" | tr '\n' ' ')"
	# Every message committed (the log line may lag the 250 a little).
	for i in $(seq 300); do
		c1=$(committed "$sys")
		[ $((c1 - c0)) -lt "$nm" ] || break
		sleep 0.1
	done
	c1=$(($(committed "$sys") - c0))
	q=$(queued "$sys")
	held=$(sink_messages "$SINK_COUNTER")
	[ "$c1" -eq "$nm" ] || say "warning: $sys committed $c1 of $nm messages"
	[ "$held" -eq 0 ] || say "warning: $sys delivered $held messages while held"
	sync # the injection's dirty pages are not the relay's cost
	sleep 1
	load=$(cut -d' ' -f1 /proc/loadavg)
	sess0=$(sink_messages "$SINK_COUNTER" sess)
	say "$(name_of "$sys") round $round: $c1 messages queued ($q queue files)" \
		"in $(printf %.1f "$(echo "$t1 - $t0" | bc -l)") s; releasing"
	rm -f "$WORK/run.out"
	read -r b0 tt0 < <(cpu_ticks)
	python3 "$WORK/relay_run.py" "$SINK_COUNTER" "$c1" "$CAP" "$STALL" "$WORK/run.out" -- \
		bash -c "$(release_cmd "$sys")"
	read -r b1 tt1 < <(cpu_ticks)
	busy=$(((b1 - b0) * 100 / (tt1 - tt0 > 0 ? tt1 - tt0 : 1)))
	read -r el n flag rel_rc t_rel first <"$WORK/run.out"
	[ "$rel_rc" -eq 0 ] || say "warning: the release command for $sys failed (rc $rel_rc)"
	if [ "$flag" = ok ]; then drain "$sys"; else drain "$sys" 10; fi
	left=$DRAIN_LEFT
	sleep 1 # a duplicate still in flight, the last log lines
	final=$(sink_messages "$SINK_COUNTER")
	s1=$(sent_lines "$sys")
	d1=$(deferred_lines "$sys")
	stop_sys "$sys"
	# The sink counts a session when it ends: Postfix's cached connections
	# end only now.
	sleep 0.5
	sess=$(($(sink_messages "$SINK_COUNTER" sess) - sess0))
	stop_sink
	if [ "$flag" = ok ] && { [ "$final" -ne "$nm" ] || [ "$c1" -ne "$nm" ] ||
		[ "$src_rc" -ne 0 ] || [ "$held" -ne 0 ]; }; then
		flag=mismatch
	fi
	if [ "$flag" != ok ] || [ "$left" -ne 0 ]; then
		say "warning: $sys round $round: $flag: $n of $nm at the sink when timed," \
			"$final after draining; $((s1 - s0)) sent, $((d1 - d0)) deferred in" \
			"the log; $left queue files left"
	fi
	if [ "$n" -gt 0 ] && [ "$(echo "$el > 0" | bc -l)" = 1 ]; then
		rate=$(echo "$n / $el" | bc -l)
	else
		rate=0
	fi
	printf '%s\t%s\t%s\t%s\t%.3f\t%.1f\t%s\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\n' \
		"$round" "$sys" "$c1" "$n" "$el" "$rate" "$flag" "$first" "$t_rel" \
		"$final" "$((s1 - s0))" "$((d1 - d0))" "$left" "$inj" "$load" "$sess" "$busy" >>"$WORK/runs.tsv"
	say "$(name_of "$sys") round $round: $n msgs at the sink in $(printf %.2f "$el") s" \
		"= $(printf %.0f "$rate") msg/s ($flag; first after $(printf %.2f "$first") s;" \
		"$final at the sink after draining, in $sess sessions; CPU $busy% busy; $((s1 - s0)) sent, $((d1 - d0)) deferred in its log)"
}

# ---------------------------------------------------------------- report
col_of() { # column sys
	awk -F'\t' -v c="$1" -v s="$2" '$2 == s {print $c}' "$WORK/runs.tsv"
}

rate_num() { # sys
	# shellcheck disable=SC2046
	median $(col_of 6 "$1")
}

rate_cell() { # sys: median rate, marked when a run was cut off/failed
	local v flags
	v=$(rate_num "$1")
	[ -n "$v" ] || {
		printf 'n/a'
		return
	}
	flags=$(col_of 7 "$1" | sort -u | tr '\n' ' ')
	printf '%.0f' "$v"
	case $flags in *capped* | *stalled*) printf '†' ;; esac
	case $flags in *mismatch*) printf '‡' ;; esac
}

med0() { # column sys: median, no decimals
	# shellcheck disable=SC2046
	median $(col_of "$1" "$2") | awk '{printf "%.0f", $1}'
}

sec_cell() { # column sys: median seconds
	local v
	# shellcheck disable=SC2046
	v=$(median $(col_of "$1" "$2"))
	[ -n "$v" ] && printf '%.2f' "$v" || printf 'n/a'
}

report() {
	local s peer
	{
		echo "| system | relay msg/s | messages | seconds | first message after s | sink sessions | machine CPU busy % | sent in log | deferred in log | injection msg/s (not timed) |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for s in "${SYS_LIST[@]}"; do
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(name_of "$s")" "$(rate_cell "$s")" \
				"$(col_of 3 "$s" | sort -u | tr '\n' ' ' | sed 's/ $//')" "$(sec_cell 5 "$s")" "$(sec_cell 8 "$s")" \
				"$(med0 16 "$s")" "$(med0 17 "$s")" "$(med0 11 "$s")" "$(med0 12 "$s")" "$(med0 14 "$s")"
		done
		for peer in postfix opensmtpd; do
			has_sys smaltd && has_sys "$peer" || continue
			printf '| smaltd / %s | %s | | | | | | | | |\n' "$(name_of "$peer")" \
				"$(ratio "$(rate_num smaltd)" "$(rate_num "$peer")")"
		done
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`$CMDLINE\`."
		echo "Messages per second from the release of delivery until smtp-sink had taken" \
			"the messages (its -c counter, polled every 20 ms); $NMSG messages per" \
			"run$(! has_sys opensmtpd || echo " ($OS_NMSG for OpenSMTPD)");" \
			"$MSG_LEN-byte messages; median of $ROUNDS" \
			"round(s), systems alternated; runs capped at $CAP s. Ratio rows:" \
			"smaltd ÷ peer (higher is better for smaltd)."
		if grep -qE 'capped|stalled' "$WORK/runs.tsv"; then
			echo "† at least one run was cut off (at $CAP s, or the sink count stopped" \
				"growing for $STALL s): rated by the messages at the sink by then."
		fi
		if grep -q 'mismatch' "$WORK/runs.tsv"; then
			echo "‡ at least one run had a count other than the messages sent: committed, at the sink" \
				"after draining (lost or duplicated), or delivered while held (see runs)."
		fi
		[ -z "$SKIPPED" ] || echo "Skipped: $SKIPPED."
		for peer in postfix opensmtpd; do
			has_sys smaltd && has_sys "$peer" || continue
			echo
			printf '%s\n' "smaltd ÷ $(name_of "$peer") round by round: $(awk -F'\t' -v p="$peer" '
				$2 == "smaltd" { a[$1] = $6 }
				$2 == p { b[$1] = $6 }
				END {
					for (r = 1; r in a || r in b; r++)
						if ((r in a) && (r in b) && b[r] > 0) {
							v = a[r] / b[r]; out = out sep sprintf("%.3g", v); sep = ", "
						}
					print (out == "" ? "n/a" : out)
				}' "$WORK/runs.tsv")"
		done
		if has_sys smaltd && has_sys postfix; then
			local r
			r=$(ratio "$(rate_num smaltd)" "$(rate_num postfix)")
			echo
			echo "Goal, smaltd ≥ Postfix's relay rate: $r →" \
				"$(awk -v r="${r%×}" 'BEGIN { print (r + 0 >= 1) ? "met" : "NOT met" }')"
		fi
		echo
		printf 'Log lines with warning/error/fatal/panic:'
		for s in "${SYS_LIST[@]}"; do
			printf ' %s %s;' "$(name_of "$s")" "$(count_in '(warning|error|fatal|panic)' "$(log_of "$s")")"
		done
		echo " see $LOGS/."
		echo
		echo "Setup as measured:"
		if has_sys smaltd; then
			echo "- smaltd $SMALT_VERSION (commit $SMALT_REV, build $SMALT_BUILD): held" \
				"with delivery_concurrency = 0 in its config file, released by writing" \
				"delivery_concurrency = $CONC there and SIGHUP to the master;" \
				"destination_concurrency ${SM_DEST_CONC:-?}$([ ${#SM_EXTRA[@]} -gt 0 ] &&
					printf ' (-X: %s)' "$(printf '%s; ' "${SM_EXTRA[@]}" | sed 's/; $//')" ||
					echo ' (its default)'); relayhost" \
				"[127.0.0.1]:$SINK_PORT, relayhost_tls = none; resolver a dead port;" \
				"restarted with an empty spool $SM_SPOOL for every run."
		fi
		if has_sys postfix; then
			echo "- Postfix $PF_VERSION: held by putting every message on hold" \
				"(smtpd_end_of_data_restrictions = check_client_access static:HOLD)," \
				"released by postsuper -H ALL (hold/ to deferred/) and postqueue -f;" \
				"relayhost [127.0.0.1]:$SINK_PORT," \
				"smtp_tls_security_level = none; otherwise its defaults:" \
				"smtp_destination_concurrency_limit $PF_SMTP_CONC (starting at" \
				"$PF_SMTP_CONC_INIT), default_process_limit $PF_PROC_LIMIT, connection" \
				"cache on demand; queue $PF_QUEUE, restarted for every run."
		fi
		if has_sys opensmtpd; then
			echo "- OpenSMTPD $OS_VERSION (${OS_PREFIX:-/}): started with \`smtpd -d -P mta\`" \
				"(relaying paused), released by \`smtpctl resume mta\`; \`action \"relay\"" \
				"relay host smtp://127.0.0.1:$SINK_PORT\`; does NOT fsync its queue;" \
				"resolver limited to /etc/hosts (private resolv.conf); queue $OS_SPOOL" \
				"(compiled in), emptied for every run."
		fi
		echo "- Injection (not timed): smtp-source -s $INJ_SESS -m N -l $MSG_LEN" \
			"-f $SENDER -t $RCPT, then sync. Sink: $SMTP_SINK -c on" \
			"127.0.0.1:$SINK_PORT, a fresh one per run."
		echo "- Machine: $(machine_line)."
		echo
		echo "Runs (round, system, committed, at the sink when timed, seconds, msg/s, flag," \
			"first message after s, release command s, at the sink after draining, sent and" \
			"deferred log lines, queue files left, injection msg/s, 1-minute load, sink" \
			"sessions, machine CPU % busy during the timed phase — the MTA, the sink and" \
			"anything else running):"
		echo
		echo '```'
		cat "$WORK/runs.tsv"
		echo '```'
	} >"$WORK/results.md"
	cat "$WORK/results.md"
}

# ---------------------------------------------------------------- main
mkdir -p "$WORK" "$LOGS"
chmod 0755 "$WORK"
: >"$WORK/runs.tsv"
for f in smaltd.log postfix.log opensmtpd.log opensmtpd-ctl.log smtp-source.log \
	smtp-source.err smtp-sink.log postfix-ctl.log; do
	: >"$LOGS/$f"
done
command -v bc >/dev/null || die "bc is needed"

# Peers: Postfix (also the source of smtp-sink and smtp-source).
if has_sys postfix && ! pkg_installed postfix; then
	if [ "$INSTALL" = 1 ]; then install_postfix; else drop_sys postfix "not installed (apt-get install postfix, or -I)"; fi
fi
if ! SMTP_SINK=$(smtp_tool smtp-sink) || ! SMTP_SOURCE=$(smtp_tool smtp-source); then
	if [ "$INSTALL" = 1 ]; then
		install_postfix
		if ! SMTP_SINK=$(smtp_tool smtp-sink) || ! SMTP_SOURCE=$(smtp_tool smtp-source); then
			die "no smtp-sink/smtp-source after installing postfix"
		fi
	else
		die "Postfix's smtp-sink and smtp-source are needed: install postfix (or -I)," \
			"or set SMALT_SMTP_SINK to an smtp-sink unpacked beside its smtp-source (see .ci/run)"
	fi
fi
if has_sys opensmtpd && ! find_opensmtpd; then
	if [ -n "$OS_PREFIX" ]; then
		drop_sys opensmtpd "no usr/sbin/smtpd and usr/sbin/smtpctl under $OS_PREFIX (-O)"
	else
		drop_sys opensmtpd "not found in $OS_DIR/root, /var/tmp/smtpd-bench/opensmtpd/root or the opensmtpd package (-I unpacks it, -O names where it is)"
	fi
fi
if has_sys smaltd; then build_smalt; fi
[ ${#SYS_LIST[@]} -gt 0 ] || die "no system left to run"

for p in "$SMALT_PORT" "$POSTFIX_PORT" "$OS_PORT" "$SINK_PORT"; do
	port_free "$p" || die "port 127.0.0.1:$p is taken (use -p)"
done
port_free "$DEAD_PORT" udp || die "udp port 127.0.0.1:$DEAD_PORT is taken (use -p)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
write_run_script

PF_VERSION=$(dpkg-query -W -f='${Version}' postfix 2>/dev/null || echo '?')
OS_VERSION=$({ zcat "$OS_PREFIX/usr/share/doc/opensmtpd/changelog.Debian.gz" 2>/dev/null || true; } |
	sed -n '1s/.*(\(.*\)).*/\1/p')
OS_VERSION=${OS_VERSION:-?}
if [ -z "${SMALT_REV:-}" ] && has_sys smaltd; then
	BUILD_SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$SMALT_BUILD/CMakeCache.txt" 2>/dev/null) || BUILD_SRC=
	SMALT_REV=$(git -C "${BUILD_SRC:-$SRC_DIR}" rev-parse --short HEAD 2>/dev/null) ||
		SMALT_REV="unknown: built from ${BUILD_SRC:-?}, not a git tree (set SMALT_REV)"
fi
SMALT_REV=${SMALT_REV:-?}
SMALT_VERSION=$(sed -n 's/^project(smalt VERSION \([0-9.]*\).*/\1/p' "$SRC_DIR/CMakeLists.txt")

has_sys smaltd && setup_smaltd
has_sys postfix && setup_postfix
if has_sys opensmtpd && opensmtpd_busy; then
	drop_sys opensmtpd "another OpenSMTPD is running ($OS_SOCK answers) and $OS_SPOOL is its queue"
fi
if has_sys opensmtpd; then setup_opensmtpd; fi
[ ${#SYS_LIST[@]} -gt 0 ] || die "no system left to run"
say "work dir $WORK; systems $SYSTEMS; $NMSG messages$(! has_sys opensmtpd || echo " ($OS_NMSG for OpenSMTPD)") of $MSG_LEN bytes per run, $ROUNDS round(s)"

for round in $(seq "$ROUNDS"); do
	if [ $((round % 2)) -eq 1 ]; then
		order=("${SYS_LIST[@]}")
	else
		order=()
		for ((i = ${#SYS_LIST[@]} - 1; i >= 0; i--)); do order+=("${SYS_LIST[$i]}"); done
	fi
	for sys in "${order[@]}"; do
		run_one "$sys" "$round"
	done
done

report
