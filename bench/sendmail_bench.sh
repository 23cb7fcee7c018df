#!/usr/bin/env bash
# sendmail_bench.sh: local injection, smalt's sendmail against Postfix's
# sendmail on the same machine, in one run:
#
#   - a shell loop injects N messages (4 KiB), one sendmail call each, as a
#     script would: printf MESSAGE | SENDMAIL -C CONF -i RCPT (recipients on
#     the command line) or ... | SENDMAIL -C CONF -t -i (from To:);
#   - messages per second over the whole loop, and the latency of each call
#     (median and p99 in ms);
#   - called by root, and by an ordinary user through the setgid path real
#     users take (smalt: a copy of sendmail, group smaltdrop, mode 2755;
#     Postfix: its postdrop, setgid postdrop);
#   - the systems alternated round by round, the median of the rounds
#     reported, and the ratio smalt / Postfix per case.
#
# Both daemons run while their sendmail is called: smaltd (as root, from
# the config the sendmail reads) and a private Postfix instance (its own
# config_directory and queue_directory; its sendmail picks it with -C).
# Mode queue (the default): the daemons only take the mail from maildrop
# into their queue: smaltd with delivery_concurrency = 0, Postfix with a
# header_checks HOLD for every message (cleanup queues it in hold/, qmgr
# never sees it). Mode mbox: both deliver to the test user's mbox.
# After every run the script waits until every message the loop handed
# over is in the queue (or the mailbox), checks the count against the
# daemon's pickup log lines and its queue files, and then empties the
# queue for the next run. Needs root: it installs Postfix with apt,
# creates the test user, starts both daemons, and lists the private
# Postfix config directory in /etc/postfix/main.cf (alternate_config_
# directories; Postfix's setgid postdrop accepts -C from a user only for
# directories listed there), restored on exit.
#
#   bench/sendmail_bench.sh [-d WORK] [-r ROUNDS] [-n N] [-l LEN]
#                           [-p BASEPORT] [-c CALLERS] [-f FORMS]
#                           [-M MODES] [-S SYSTEMS] [-u USER] [-T CAP]
#
# Results: a markdown table on stdout and in WORK/results.md, every run in
# WORK/runs.tsv, per-call latencies in WORK/lat/, logs in WORK/logs/.
# Compare ratios from one run, never absolute numbers across runs (the
# loop, both daemons and anything else on the machine share the CPUs and
# the disk).
set -Eeuo pipefail
trap 'echo "sendmail_bench: error: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR

CMDLINE="$0 $*"
BENCH=sendmail_bench
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC_DIR/bench/lib.sh"
SMALT_BUILD=${SMALT_BUILD:-$SRC_DIR/build}
WORK=/var/tmp/sendmail-bench
ROUNDS=3
NMSG=500
MSG_LEN=4096
BASEPORT=24045
CALLERS=root,user
FORMS=args,t
MODES=queue
SYSTEMS=smalt,postfix
BENCH_USER=smaltbench
CAP=120      # longest loop in seconds; a loop cut off is rated by the calls it made
DRAIN_MAX=60 # after the loop: longest wait for the last message to be queued or delivered
MAX_FAILS=10 # the loop stops after this many failed calls
DOMAIN=bench.example
PF_SENDMAIL=/usr/sbin/sendmail

usage() {
	cat >&2 <<EOF
usage: $0 [-d WORK] [-r ROUNDS] [-n N] [-l LEN] [-p BASEPORT]
          [-c CALLERS] [-f FORMS] [-M MODES] [-S SYSTEMS] [-u USER] [-T CAP]
  -d WORK      work directory: spools, configs, latencies, logs
               (default $WORK)
  -r ROUNDS    rounds per case, median reported (default $ROUNDS)
  -n N         sendmail calls (messages) per run (default $NMSG)
  -l LEN       message size in bytes, headers included (default $MSG_LEN)
  -p BASEPORT  first of 3 ports on 127.0.0.1: smaltd's listener, Postfix's
               smtpd, and a dead port for smaltd's resolver (default $BASEPORT)
  -c CALLERS   comma list out of root,user: who calls sendmail; user is
               USER through the setgid path (default $CALLERS)
  -f FORMS     comma list out of args,t: recipients on the command line
               (-i RCPT) or from the header (-t -i) (default $FORMS)
  -M MODES     comma list out of queue,mbox: the daemons only queue what
               they pick up, or deliver it to USER's mbox (default $MODES)
  -S SYSTEMS   comma list out of smalt,postfix (default $SYSTEMS)
  -u USER      the test user: the recipient and the non-root caller,
               created as a system user with its home under WORK when
               missing (default $BENCH_USER)
  -T CAP       longest loop in seconds (default $CAP)
Environment: SMALT_BUILD (default $SMALT_BUILD; built when missing),
SMALT_REV (the commit named in the report; default: git rev-parse in the
source tree)
EOF
	exit 2
}

while getopts "d:r:n:l:p:c:f:M:S:u:T:h" opt; do
	case $opt in
	d) WORK=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	n) NMSG=$OPTARG ;;
	l) MSG_LEN=$OPTARG ;;
	p) BASEPORT=$OPTARG ;;
	c) CALLERS=$OPTARG ;;
	f) FORMS=$OPTARG ;;
	M) MODES=$OPTARG ;;
	S) SYSTEMS=$OPTARG ;;
	u) BENCH_USER=$OPTARG ;;
	T) CAP=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
for v in "$ROUNDS" "$NMSG" "$MSG_LEN" "$BASEPORT" "$CAP"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
[ "$MSG_LEN" -ge 512 ] || usage
check_list() { # value allowed...: a comma list out of the allowed words
	local list=$1 w ok a
	local -a ws
	shift
	[ -n "$list" ] || return 1
	IFS=, read -r -a ws <<<"$list"
	for w in "${ws[@]}"; do
		ok=0
		for a in "$@"; do [ "$w" = "$a" ] && ok=1; done
		[ $ok = 1 ] || return 1
	done
}
check_list "$CALLERS" root user || usage
check_list "$FORMS" args t || usage
check_list "$MODES" queue mbox || usage
check_list "$SYSTEMS" smalt postfix || usage
IFS=, read -r -a CALLER_LIST <<<"$CALLERS"
IFS=, read -r -a FORM_LIST <<<"$FORMS"
IFS=, read -r -a MODE_LIST <<<"$MODES"
IFS=, read -r -a SYS_LIST <<<"$SYSTEMS"
[[ $BENCH_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || usage
[[ $WORK == /* ]] || WORK=$PWD/$WORK
require_root sendmail_bench

SMALT_PORT=$BASEPORT
POSTFIX_PORT=$((BASEPORT + 1))
DEAD_PORT=$((BASEPORT + 2)) # smaltd's resolver: nothing answers there
LOGS=$WORK/logs
PF_DIR=$WORK/postfix
PF_CONF=$PF_DIR/etc
PF_QUEUE=$PF_DIR/queue
SM_DIR=$WORK/smalt
SM_SPOOL=$SM_DIR/spool
SM_SETGID=$WORK/bin/sendmail # the copy a user calls: group smaltdrop, mode 2755
RCPT=$BENCH_USER@$DOMAIN
LOOP=$WORK/inject_loop.sh
BODY=$WORK/body.txt

has_sys() { [[ ",$SYSTEMS," == *",$1,"* ]]; }
has_caller() { [[ ",$CALLERS," == *",$1,"* ]]; }

# ---------------------------------------------------------------- cleanup
SMALTD_PID=
PF_STARTED=0
MAINCF_STATE= # absent: we created /etc/postfix/main.cf; saved: we changed it

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_smaltd
	stop_postfix
	restore_postfix_main_cf
	rm -f "$SM_SETGID" # no setgid copy stays behind
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- set-up
# Postfix's sendmail and postdrop (setgid) take -C DIR from a user only
# when the default main.cf lists DIR in alternate_config_directories.
allow_postfix_config_dir() {
	local cur
	if [ -e /etc/postfix/main.cf ]; then
		cur=$(postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null) || cur=
		case " ${cur//,/ } " in *" $PF_CONF "*) return 0 ;; esac
		cp -p /etc/postfix/main.cf "$WORK/etc-postfix-main.cf.orig"
		MAINCF_STATE=saved
		postconf -c /etc/postfix -e "alternate_config_directories = ${cur:+$cur, }$PF_CONF"
	else
		MAINCF_STATE=absent
		printf '# written by %s for its run; removed when it ends\nalternate_config_directories = %s\n' \
			"$0" "$PF_CONF" >/etc/postfix/main.cf
	fi
	say "listed $PF_CONF in /etc/postfix/main.cf (alternate_config_directories) until the end of the run"
}

restore_postfix_main_cf() {
	case $MAINCF_STATE in
	absent) rm -f /etc/postfix/main.cf ;;
	saved) cp -p "$WORK/etc-postfix-main.cf.orig" /etc/postfix/main.cf ;;
	esac
	MAINCF_STATE=
}

# The loop the benchmark times, run as root or as the test user. One line
# per call on stdout ("MICROSECONDS EXIT_STATUS"), then "total START END"
# (EPOCHREALTIME). bash's EPOCHREALTIME is the clock of date +%s.%N read
# without starting a process: two date(1) per call would add about a
# millisecond of fork and exec to every call of both systems.
write_loop_script() {
	cat >"$LOOP" <<'EOF'
#!/bin/bash
# inject_loop.sh N FORM RCPT TAG BODYFILE MAX_FAILS -- SENDMAIL [ARG...]
set -u
export LC_ALL=C # EPOCHREALTIME with a dot
n=$1 form=$2 rcpt=$3 tag=$4 body=$(<"$5") max_fails=$6
shift 6
[ "$1" = -- ] && shift
fails=0
start=$EPOCHREALTIME
for ((i = 1; i <= n; i++)); do
	a=$EPOCHREALTIME
	if [ "$form" = t ]; then
		printf 'From: Bench Sender <sender@example.com>\nTo: %s\nSubject: %s %d\n\n%s\n' \
			"$rcpt" "$tag" "$i" "$body" | "$@" -t -i
	else
		printf 'From: Bench Sender <sender@example.com>\nTo: %s\nSubject: %s %d\n\n%s\n' \
			"$rcpt" "$tag" "$i" "$body" | "$@" -i "$rcpt"
	fi
	rc=$?
	b=$EPOCHREALTIME
	echo "$((${b/./} - ${a/./})) $rc"
	if [ $rc -ne 0 ]; then
		echo "call $i: exit $rc" >&2
		fails=$((fails + 1))
		[ $fails -lt "$max_fails" ] || break
	fi
done
echo "total $start $EPOCHREALTIME"
EOF
	chmod 0755 "$LOOP"
	# The body: lines of 75 letters, the whole message about LEN bytes
	# (the headers above take about 128 of them).
	awk -v n=$((MSG_LEN - 128)) 'BEGIN {
		for (i = 0; i < 75; i++) line = line sprintf("%c", 97 + i % 26)
		while (n > 76) { print line; n -= 76 }
		print substr(line, 1, n > 1 ? n - 1 : 1)
	}' >"$BODY"
	chmod 0644 "$BODY"
}

# ---------------------------------------------------------------- smalt
write_smalt_conf() { # mode
	local dc=
	[ "$1" = queue ] && dc="delivery_concurrency = 0"
	install -d -m 0755 "$SM_DIR"
	cat >"$SM_DIR/smalt-$1.conf" <<EOF
# sendmail_bench.sh, mode $1
hostname = smalt-bench.localdomain
local_domains = $DOMAIN
listen = 127.0.0.1:$SMALT_PORT
spool_dir = $SM_SPOOL
mail_spool_directory = $SM_DIR/mail
aliases = /dev/null
resolver = 127.0.0.1:$DEAD_PORT
log = stderr
$dc
EOF
	chmod 0644 "$SM_DIR/smalt-$1.conf"
	check_smaltd_conf "$SM_DIR/smalt-$1.conf" "$LOGS/smaltd-n-$1.txt"
}

# The sendmail a user calls: setgid smaltdrop, as installed.
install_setgid_copy() {
	install -d -m 0755 "$WORK/bin"
	install -m 0755 "$SMALT_BUILD/cli/sendmail" "$SM_SETGID"
	chgrp smaltdrop "$SM_SETGID"
	chmod 2755 "$SM_SETGID"
}

start_smaltd() { # mode: an empty spool
	rm -rf "$SM_SPOOL"
	launch_smaltd "$SM_DIR/smalt-$1.conf"
	[ -d "$SM_SPOOL/maildrop" ] || die "smaltd made no $SM_SPOOL/maildrop"
}

smalt_queued() {
	files_in "$SM_SPOOL"/{maildrop,incoming,deferred,hold,msg,tmp}
}

# ---------------------------------------------------------------- postfix
setup_postfix() {
	rm -rf "$PF_QUEUE" # what an interrupted run left there
	postfix_instance_setup "$POSTFIX_PORT" \
		"mydomain = localdomain" \
		"myorigin = \$myhostname" \
		"mydestination = $DOMAIN" \
		"local_recipient_maps = unix:passwd.byname" \
		"relayhost =" \
		"biff = no" \
		"mailbox_size_limit = 0"
	# Queue mode: cleanup queues every message in hold/.
	printf '/^/ HOLD sendmail_bench queue mode\n' >"$PF_CONF/hold_all.regexp"
}

configure_postfix() { # mode
	local pc="postconf -c $PF_CONF"
	case $1 in
	queue) $pc -e "header_checks = regexp:$PF_CONF/hold_all.regexp" \
		"mail_spool_directory = $PF_DIR/mail" ;;
	mbox) $pc -e "header_checks =" "mail_spool_directory = $PF_DIR/mail" "home_mailbox =" ;;
	esac
	postfix_check
}

# ---------------------------------------------------------------- per system
name_of() {
	case $1 in
	smalt) echo smalt ;;
	postfix) echo Postfix ;;
	esac
}
log_of() {
	case $1 in
	smalt) echo "$LOGS/smaltd.log" ;;
	postfix) echo "$LOGS/postfix.log" ;;
	esac
}
queued() {
	case $1 in
	smalt) smalt_queued ;;
	postfix) postfix_queued ;;
	esac
}
mailbox_of() { # sys
	case $1 in
	smalt) echo "$SM_DIR/mail/$BENCH_USER" ;;
	postfix) echo "$PF_DIR/mail/$BENCH_USER" ;;
	esac
}
# The sendmail command line of a system and caller, in CMD.
CMD=()
set_cmd() { # sys caller
	case $1/$2 in
	smalt/root) CMD=("$SMALT_BUILD/cli/sendmail" -C "$SM_DIR/smalt-$MODE.conf") ;;
	smalt/user) CMD=("$SM_SETGID" -C "$SM_DIR/smalt-$MODE.conf") ;;
	postfix/*) CMD=("$PF_SENDMAIL" -C "$PF_CONF") ;;
	esac
}
uid_of() { # caller
	case $1 in
	root) echo 0 ;;
	user) id -u "$BENCH_USER" ;;
	esac
}
# Pickup log lines (one per message the daemon took from maildrop) with
# the caller's uid.
picked_up() { # sys uid
	case $1 in
	smalt) count_in "smalt/pickup\[[0-9]+\]: [0-9A-Za-z]+: uid=$2 from=<" "$LOGS/smaltd.log" ;;
	postfix) count_in "postfix/pickup\[[0-9]+\]: [0-9A-Za-z]+: uid=$2 from=<" "$LOGS/postfix.log" ;;
	esac
}
# Messages that have arrived where the mode puts them: in the queue
# (queue mode: smalt's incoming/, Postfix's hold/) or in the mailbox.
arrived() { # sys
	local box
	case $MODE/$1 in
	queue/smalt) files_in "$SM_SPOOL/incoming" ;;
	queue/postfix) files_in "$PF_QUEUE/hold" ;;
	mbox/*)
		box=$(mailbox_of "$1")
		count_in '^From ' "$box"
		;;
	esac
}

reset_mailboxes() {
	local s d
	for s in smalt postfix; do
		d=$(dirname "$(mailbox_of $s)")
		rm -f "$d/$BENCH_USER" "$d/$BENCH_USER.lock"
		install -d -m 1777 -o root -g root "$d"
	done
}

# Empties the system's queue after a run: queue mode throws the held mail
# away; mbox mode waits (up to DRAIN_MAX) until everything is delivered.
# smaltd is stopped and its spool removed.
clear_queue() { # sys
	local sys=$1 q=0 end=$((SECONDS + DRAIN_MAX))
	if [ "$MODE" = mbox ]; then
		while :; do
			q=$(queued "$sys")
			if [ "$q" -eq 0 ] || [ $SECONDS -ge $end ]; then break; fi
			sleep 0.2
		done
		[ "$q" -eq 0 ] || say "warning: $sys still holds $q queue files after $DRAIN_MAX s; removing them"
	fi
	case $sys in
	smalt)
		stop_smaltd
		rm -rf "$SM_SPOOL"
		;;
	postfix)
		postsuper -c "$PF_CONF" -d ALL >>"$LOGS/postfix-ctl.log" 2>&1 || true
		[ "$(postfix_queued)" -eq 0 ] || {
			sleep 1
			postsuper -c "$PF_CONF" -d ALL >>"$LOGS/postfix-ctl.log" 2>&1 || true
		}
		;;
	esac
}

# Runs the loop: N calls, as root or as the test user. Output in $1,
# stderr (the loop's and every sendmail's) in $2. Returns timeout's status.
run_loop() { # out err n sys caller form tag
	local out=$1 err=$2 n=$3 sys=$4 caller=$5 form=$6 tag=$7 rc=0
	local -a as=()
	set_cmd "$sys" "$caller"
	if [ "$caller" = user ]; then as=(runuser -u "$BENCH_USER" --); fi
	(cd / && timeout --kill-after=10 "$CAP" "${as[@]}" bash "$LOOP" "$n" "$form" \
		"$RCPT" "$tag" "$BODY" "$MAX_FAILS" -- "${CMD[@]}") >"$out" 2>"$err" || rc=$?
	return $rc
}

# Waits until N messages have arrived (or DRAIN_MAX s without them all);
# prints "SECONDS_SINCE_START COUNT" (SECONDS is for the last poll when
# they did not all arrive).
wait_arrival() { # sys n start
	local sys=$1 n=$2 start=$3 c t end=$((SECONDS + DRAIN_MAX))
	while :; do
		c=$(arrived "$sys")
		t=$(now)
		if [ "$c" -ge "$n" ] || [ $SECONDS -ge $end ]; then break; fi
		sleep 0.05
	done
	echo "$(echo "$t - $start" | bc -l) $c"
}

# The daemon's log may lag (Postfix logs through postlogd): waits up to
# 5 s for WANT more pickup lines than BEFORE; prints the count.
wait_log() { # sys uid before want
	local c i
	for i in $(seq 50); do
		c=$(($(picked_up "$1" "$2") - $3))
		[ "$c" -lt "$4" ] || break
		sleep 0.1
	done
	echo "$c"
}

# Latency statistics of a loop output, ms: "p50 p99 mean max".
lat_stats() { # file
	awk 'NF == 2 && $1 ~ /^[0-9]+$/ {print $1}' "$1" | sort -n | awk '
		function rank(p,  i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return v[i] }
		{ v[NR] = $1; s += $1 }
		END {
			if (NR == 0) { print "0 0 0 0"; exit }
			printf "%.3f %.3f %.3f %.3f\n", rank(0.5) / 1000, rank(0.99) / 1000, s / NR / 1000, v[NR] / 1000
		}'
}

# One timed run; appends a line to runs.tsv.
run_one() { # sys caller form round
	local sys=$1 caller=$2 form=$3 round=$4 uid tag out err rc p0 load
	local calls ok start='' end='' loop_s rate p50 p99 mean max e2e_s e2e_rate lag got picked q flag errl
	uid=$(uid_of "$caller")
	tag="sendmail_bench $sys $MODE $caller $form r$round"
	out=$WORK/lat/$MODE-$sys-$caller-$form-r$round.txt
	err=$WORK/loop.err
	if [ "$MODE" = mbox ]; then reset_mailboxes; fi
	if [ "$sys" = smalt ]; then start_smaltd "$MODE"; fi
	[ "$(queued "$sys")" -eq 0 ] || die "$sys's queue is not empty before a run"
	sync # what the previous runs left dirty is not this run's cost
	load=$(cut -d' ' -f1 /proc/loadavg) # others' work on the machine shows here
	p0=$(picked_up "$sys" "$uid")
	rc=0
	run_loop "$out" "$err" "$NMSG" "$sys" "$caller" "$form" "$tag" || rc=$?
	calls=$(awk 'NF == 2 && $1 ~ /^[0-9]+$/' "$out" | wc -l)
	ok=$(awk 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 == 0' "$out" | wc -l)
	read -r start end < <(awk '$1 == "total" {print $2, $3}' "$out") || true
	if [ -z "$start" ]; then # cut off: no total line; rated by the calls' own time
		loop_s=$(awk 'NF == 2 && $1 ~ /^[0-9]+$/ {s += $1} END {printf "%.6f", s / 1e6}' "$out")
	else
		loop_s=$(echo "$end - $start" | bc -l)
	fi
	rate=$(echo "if ($loop_s > 0) $ok / $loop_s else 0" | bc -l)
	read -r p50 p99 mean max < <(lat_stats "$out")
	if [ -n "$start" ]; then
		read -r e2e_s got < <(wait_arrival "$sys" "$ok" "$start")
	else
		e2e_s=0
		got=$(arrived "$sys")
	fi
	e2e_rate=$(echo "if ($e2e_s > 0) $got / $e2e_s else 0" | bc -l)
	lag=$(echo "if ($e2e_s > $loop_s) $e2e_s - $loop_s else 0" | bc -l)
	picked=$(wait_log "$sys" "$uid" "$p0" "$ok")
	if [ "$MODE" = mbox ]; then
		clear_queue "$sys" # waits for the deliveries
		q=$(mailbox_count mbox "$(mailbox_of "$sys")")
	else
		q=$(arrived "$sys")
		clear_queue "$sys"
	fi
	errl=$(grep -vc '^call [0-9]*: exit' "$err" || true)
	if [ -s "$err" ]; then
		sed "s/^/[$MODE $sys $caller $form r$round] /" "$err" >>"$LOGS/sendmail.err"
	fi
	flag=ok
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		flag=capped
	elif [ "$ok" -ne "$NMSG" ]; then
		flag=failed
	elif [ "$got" -lt "$ok" ]; then
		flag=stalled
	elif [ "$picked" -ne "$ok" ] || [ "$q" -ne "$ok" ]; then
		flag=mismatch
	elif [ "$rc" -ne 0 ]; then
		flag=failed
	fi
	if [ "$flag" != ok ]; then
		say "warning: $sys $MODE $caller $form r$round: $flag: $ok of $calls calls" \
			"(of $NMSG) exited 0, loop status $rc; $got arrived within $DRAIN_MAX s," \
			"$picked pickup log lines with uid=$uid, $q in the $([ "$MODE" = mbox ] && echo mailbox || echo queue)" \
			"$([ -s "$err" ] && echo "; stderr: $(head -3 "$err" | tr '\n' ' ')")"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%.3f\t%s\t%s\t%s\t%s\t%s\n' \
		"$round" "$MODE" "$sys" "$caller" "$form" "$NMSG" "$calls" "$ok" "$loop_s" "$rate" \
		"$p50" "$p99" "$mean" "$max" "$e2e_s" "$e2e_rate" "$lag" "$picked" "$q" "$flag" "$errl" \
		"$load" >>"$WORK/runs.tsv"
	say "$(name_of "$sys") $MODE $caller $form round $round: $ok calls in" \
		"$(printf %.2f "$loop_s") s = $(printf %.0f "$rate") msg/s, p50 $(printf %.2f "$p50") ms," \
		"p99 $(printf %.2f "$p99") ms; all $(
			[ "$MODE" = mbox ] && echo delivered || echo queued
		) after $(printf %.2f "$e2e_s") s ($flag, load $load)"
}

# A few calls of every system, caller and form before the timed rounds:
# catches a set-up that cannot work with its reason, warms the caches.
smoke() { # sys
	local sys=$1 caller form uid p0 rc got picked out=$WORK/smoke.out err=$WORK/smoke.err
	if [ "$sys" = smalt ]; then start_smaltd "$MODE"; fi
	for caller in "${CALLER_LIST[@]}"; do
		uid=$(uid_of "$caller")
		for form in "${FORM_LIST[@]}"; do
			p0=$(picked_up "$sys" "$uid")
			rc=0
			run_loop "$out" "$err" 3 "$sys" "$caller" "$form" "sendmail_bench smoke" || rc=$?
			if [ "$rc" -ne 0 ] || grep -q '^call ' "$err"; then
				die "$sys's sendmail ($caller, $form) failed: $(head -5 "$err" | tr '\n' ' ')"
			fi
			picked=$(wait_log "$sys" "$uid" "$p0" 3)
			[ "$picked" -eq 3 ] ||
				die "$sys picked up $picked of 3 smoke messages from uid $uid ($caller, $form); see $(log_of "$sys")"
		done
	done
	read -r _ got < <(wait_arrival "$sys" $((${#CALLER_LIST[@]} * ${#FORM_LIST[@]} * 3)) "$(now)")
	[ "$got" -eq $((${#CALLER_LIST[@]} * ${#FORM_LIST[@]} * 3)) ] ||
		die "only $got smoke messages reached $sys's $([ "$MODE" = mbox ] && echo mailbox || echo queue)"
	clear_queue "$sys"
}

# fsync-family system calls of one call as root (strace: setgid is
# dropped under ptrace, so the user's path is not traced).
FSYNCS=()
count_syncs() { # sys
	local sys=$1 f
	command -v strace >/dev/null || return 0
	set_cmd "$sys" root
	if [ "$sys" = smalt ]; then start_smaltd "$MODE"; fi
	f=$WORK/strace.$sys
	printf 'To: %s\nSubject: sendmail_bench strace\n\nhi\n' "$RCPT" |
		strace -f -qq -e signal=none -e trace=fsync,fdatasync,syncfs,sync,sync_file_range \
			-o "$f" "${CMD[@]}" -i "$RCPT" >/dev/null 2>&1 || true
	FSYNCS+=("$(name_of "$sys"): $(awk 'match($0, /^[0-9]+ +[a-z_]+\(/) {
			c = substr($0, 1, RLENGTH - 1); sub(/^[0-9]+ +/, "", c); n[c]++ }
		END { for (k in n) { printf "%s%d %s", sep, n[k], k; sep = " + " }
		      if (length(n) == 0) printf "none" }' "$f")")
	wait_arrival "$sys" 1 "$(now)" >/dev/null
	clear_queue "$sys"
}

# ---------------------------------------------------------------- report
col_of() { # column of runs.tsv for mode sys caller form
	awk -F'\t' -v c="$1" -v m="$2" -v s="$3" -v a="$4" -v f="$5" \
		'$2 == m && $3 == s && $4 == a && $5 == f {print $c}' "$WORK/runs.tsv"
}
med_of() { # col mode sys caller form
	# shellcheck disable=SC2046
	median $(col_of "$@")
}
cell() { # col fmt mode sys caller form: the median, marked when a run was not ok
	local col=$1 fmt=$2 v flags
	shift 2
	v=$(med_of "$col" "$@")
	[ -n "$v" ] || {
		printf 'n/a'
		return
	}
	flags=$(col_of 20 "$@" | sort -u | tr '\n' ' ')
	# shellcheck disable=SC2059
	printf "$fmt" "$v"
	case $flags in *capped* | *stalled*) printf '†' ;; esac
	case $flags in *failed* | *mismatch*) printf '‡' ;; esac
}
caller_name() {
	case $1 in
	root) echo root ;;
	user) echo "user" ;;
	esac
}
form_name() {
	case $1 in
	args) echo "-i RCPT" ;;
	t) echo "-t -i" ;;
	esac
}
both() { has_sys smalt && has_sys postfix; }

# One table: a metric per case, the systems side by side, and the ratio.
metric_cols() { # col fmt mode caller form [noratio]
	local col=$1 fmt=$2 m=$3 c=$4 f=$5 s out=
	for s in "${SYS_LIST[@]}"; do out="$out | $(cell "$col" "$fmt" "$m" "$s" "$c" "$f")"; done
	if both && [ -z "${6:-}" ]; then
		out="$out | $(ratio "$(med_of "$col" "$m" smalt "$c" "$f")" "$(med_of "$col" "$m" postfix "$c" "$f")")"
	fi
	printf '%s' "$out"
}
metric_head() { # label [noratio]
	local s out=
	for s in "${SYS_LIST[@]}"; do out="$out | $(name_of "$s") $1"; done
	if both && [ -z "${2:-}" ]; then out="$out | smalt ÷ Postfix"; fi
	printf '%s' "$out"
}
metric_sep() { # [noratio]
	local s out=
	for s in "${SYS_LIST[@]}"; do out="$out | ---:"; done
	if both && [ -z "${1:-}" ]; then out="$out | ---:"; fi
	printf '%s' "$out"
}

report() {
	local m c f msgs_ratio
	{
		echo "| mode | caller | recipients$(metric_head msg/s)$(metric_head 'p50 ms')$(metric_head 'p99 ms') |"
		echo "| --- | --- | ---$(metric_sep)$(metric_sep)$(metric_sep) |"
		for m in "${MODE_LIST[@]}"; do
			for c in "${CALLER_LIST[@]}"; do
				for f in "${FORM_LIST[@]}"; do
					echo "| $m | $(caller_name "$c") | \`$(form_name "$f")\`$(metric_cols 10 %.0f "$m" "$c" "$f")$(metric_cols 11 %.2f "$m" "$c" "$f")$(metric_cols 12 %.2f "$m" "$c" "$f") |"
				done
			done
		done
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`$CMDLINE\`."
		echo "A shell loop of $NMSG sendmail calls per run, one ${MSG_LEN}-byte message each" \
			"(\`printf MESSAGE | SENDMAIL -C CONF -i $RCPT\`, or \`... -t -i\` with the" \
			"recipient in To:); msg/s over the whole loop, p50/p99 of the" \
			"calls' own times (the printf | sendmail pipeline, read with bash's" \
			"EPOCHREALTIME); median of $ROUNDS rounds, systems alternated. Ratio" \
			"columns: smalt ÷ Postfix (msg/s: higher is better for smalt; ms: lower" \
			"is better for smalt)."
		if grep -qE $'\t(capped|stalled)\t' "$WORK/runs.tsv"; then
			echo "† at least one run was cut off (loop over $CAP s), or not all its mail" \
				"reached the queue/mailbox within $DRAIN_MAX s after the loop."
		fi
		if grep -qE $'\t(failed|mismatch)\t' "$WORK/runs.tsv"; then
			echo "‡ at least one run had failed sendmail calls, or counts (pickup log" \
				"lines, queue files, mailbox) other than the calls that exited 0: see" \
				"the runs below and logs/sendmail.err."
		fi
		if both; then
			echo
			echo "Goal (the issue): smalt's sendmail injects at least 2× Postfix's msg/s:"
			for m in "${MODE_LIST[@]}"; do
				for c in "${CALLER_LIST[@]}"; do
					for f in "${FORM_LIST[@]}"; do
						msgs_ratio=$(ratio "$(med_of 10 "$m" smalt "$c" "$f")" "$(med_of 10 "$m" postfix "$c" "$f")")
						echo "- $m, $(caller_name "$c"), \`$(form_name "$f")\`: $msgs_ratio →" \
							"$(awk -v r="${msgs_ratio%×}" 'BEGIN { print (r + 0 >= 2) ? "met" : "NOT met" }')"
					done
				done
			done
			echo
			echo "smalt ÷ Postfix msg/s round by round (runs next to each other):"
			for m in "${MODE_LIST[@]}"; do
				for c in "${CALLER_LIST[@]}"; do
					for f in "${FORM_LIST[@]}"; do
						printf '%s\n' "- $m, $(caller_name "$c"), \`$(form_name "$f")\`: $(awk -F'\t' -v m="$m" -v c="$c" -v f="$f" '
							$2 == m && $4 == c && $5 == f && $3 == "smalt" { a[$1] = $10 }
							$2 == m && $4 == c && $5 == f && $3 == "postfix" { b[$1] = $10 }
							END {
								for (r = 1; r in a || r in b; r++)
									if ((r in a) && (r in b) && b[r] > 0) {
										v = a[r] / b[r]; out = out sep sprintf("%.3g", v); sep = ", "
										if (min == "" || v < min) min = v
										if (max == "" || v > max) max = v
									}
								if (out == "") print "n/a"
								else printf "%s (min %.3g, max %.3g)", out, min, max
							}' "$WORK/runs.tsv")"
					done
				done
			done
		fi
		echo
		echo "End to end: messages per second from the start of the loop until the" \
			"last message was in the queue (queue mode: smalt's incoming/, Postfix's" \
			"hold/) or in the mailbox (mbox mode), polled every 50 ms after the loop;" \
			"and the median seconds the daemon lagged behind the loop's end:"
		echo
		echo "| mode | caller | recipients$(metric_head msg/s)$(metric_head 'lag s' noratio) |"
		echo "| --- | --- | ---$(metric_sep)$(metric_sep noratio) |"
		for m in "${MODE_LIST[@]}"; do
			for c in "${CALLER_LIST[@]}"; do
				for f in "${FORM_LIST[@]}"; do
					echo "| $m | $(caller_name "$c") | \`$(form_name "$f")\`$(metric_cols 16 %.0f "$m" "$c" "$f")$(metric_cols 17 %.2f "$m" "$c" "$f" noratio) |"
				done
			done
		done
		echo
		printf 'Log lines with warning/error/fatal/panic:'
		for s in "${SYS_LIST[@]}"; do
			printf ' %s %s;' "$(name_of "$s")" "$(count_in '(warning|error|fatal|panic)' "$(log_of "$s")")"
		done
		printf ' sendmail stderr lines: %s' "$(wc -l <"$LOGS/sendmail.err")"
		echo "; see $LOGS/."
		echo
		echo "Set-up as measured:"
		if has_sys smalt; then
			echo "- smalt $SMALT_VERSION (commit $SMALT_REV, build $SMALT_BUILD): sendmail writes" \
				"each message into spool_dir/maildrop/ (fsync of the file, rename, then" \
				"fsync of maildrop/ when it may read the folder, as root; syncfs of the" \
				"file system when it may not, as the user through the setgid-smaltdrop" \
				"copy $SM_SETGID) and exits 0; smaltd, started as root from the same" \
				"config, picks it up into its queue with its own fsyncs (SPEC §4)." \
				"Queue mode: delivery_concurrency = 0 (pickup only). mbox mode: default" \
				"delivery_concurrency, mbox in $SM_DIR/mail. smaltd restarted with an" \
				"empty spool for every run."
		fi
		if has_sys postfix; then
			echo "- Postfix $PF_VERSION, a private instance ($PF_CONF, queue $PF_QUEUE):" \
				"$PF_SENDMAIL -C $PF_CONF runs postdrop (setgid postdrop), which writes" \
				"maildrop/ (rename, then fsync of the file; no folder fsync); pickup →" \
				"cleanup, which fsyncs its queue file. Queue mode: header_checks" \
				"\`/^/ HOLD\` (every message ends in hold/; qmgr never sees it), the queue" \
				"emptied with postsuper -d ALL after every run. mbox mode: local(8) to" \
				"$PF_DIR/mail, drained after every run. Started once per mode$(has_caller user &&
					echo "; the default /etc/postfix/main.cf lists $PF_CONF in alternate_config_directories for the run (postdrop takes -C from a user only then)")."
		fi
		if [ ${#FSYNCS[@]} -gt 0 ]; then
			echo "- sync calls in one sendmail call as root (strace -f; the setgid path" \
				"cannot be traced): $(printf '%s; ' "${FSYNCS[@]}" | sed 's/; $//')."
		fi
		echo "- Callers: $(has_caller root && echo "root$(has_caller user && echo ", and ")")$(has_caller user &&
			echo "$BENCH_USER (uid $(id -u "$BENCH_USER")), whose whole loop runs under runuser -u $BENCH_USER (runuser is not in the timings)")." \
			"Recipient" \
			"$RCPT; a call that fails is counted and the loop goes on (it stops after" \
			"$MAX_FAILS failures). Every run checks that the pickup log lines with the" \
			"caller's uid and the messages in the queue (or mailbox) equal the calls" \
			"that exited 0."
		echo "- Machine: $(machine_line). 1-minute load at the start:" \
			"$LOAD_START, at the end: $(cut -d' ' -f1 /proc/loadavg) (a load column per" \
			"run is in runs.tsv)."
		echo
		echo "Runs:"
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
rm -rf "$WORK/lat"
install -d -m 0755 "$WORK/lat"
printf 'round\tmode\tsystem\tcaller\tform\tn\tcalls\tok\tloop_s\tmsg_s\tp50_ms\tp99_ms\tmean_ms\tmax_ms\te2e_s\te2e_msg_s\tlag_s\tpicked_up\tin_queue_or_mbox\tflag\tstderr_lines\tload\n' \
	>"$WORK/runs.tsv"
for f in smaltd.log postfix.log postfix-ctl.log sendmail.err; do
	: >"$LOGS/$f"
done
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
install_postfix
has_sys smalt && build_smalt
for c in bc runuser timeout python3; do
	command -v "$c" >/dev/null || die "$c is needed"
done
setup_user
write_loop_script

if has_sys smalt; then
	port_free "$SMALT_PORT" || die "port 127.0.0.1:$SMALT_PORT is taken (use -p)"
	port_free "$DEAD_PORT" udp || die "udp port 127.0.0.1:$DEAD_PORT is taken (use -p)"
	has_caller user && install_setgid_copy
fi
if has_sys postfix; then
	port_free "$POSTFIX_PORT" || die "port 127.0.0.1:$POSTFIX_PORT is taken (use -p)"
	setup_postfix
	has_caller user && allow_postfix_config_dir
fi

PF_VERSION=$(dpkg-query -W -f='${Version}' postfix 2>/dev/null || echo '?')
# The commit of the tree the build was made from (SMALT_BUILD may be
# another tree's build; then SRC_DIR's HEAD would be the wrong answer).
if [ -z "${SMALT_REV:-}" ] && has_sys smalt; then
	BUILD_SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$SMALT_BUILD/CMakeCache.txt" 2>/dev/null) || BUILD_SRC=
	SMALT_REV=$(git -C "${BUILD_SRC:-$SRC_DIR}" rev-parse --short HEAD 2>/dev/null) ||
		SMALT_REV="unknown: built from ${BUILD_SRC:-?}, not a git tree (set SMALT_REV)"
fi
SMALT_REV=${SMALT_REV:-?}
SMALT_VERSION=$(sed -n 's/^project(smalt VERSION \([0-9.]*\).*/\1/p' "$SRC_DIR/CMakeLists.txt")
say "work dir $WORK; $NMSG calls per run, $MSG_LEN bytes, recipient $RCPT; load $LOAD_START"

for MODE in "${MODE_LIST[@]}"; do
	say "mode $MODE"
	if has_sys smalt; then write_smalt_conf "$MODE"; fi
	if has_sys postfix; then
		stop_postfix
		configure_postfix "$MODE"
		start_postfix "$POSTFIX_PORT"
	fi
	[ "$MODE" = mbox ] && reset_mailboxes
	for sys in "${SYS_LIST[@]}"; do
		smoke "$sys"
		[ ${#FSYNCS[@]} -ge ${#SYS_LIST[@]} ] || count_syncs "$sys"
	done
	for round in $(seq "$ROUNDS"); do
		if [ $((round % 2)) -eq 1 ]; then
			order=("${SYS_LIST[@]}")
		else
			order=()
			for ((i = ${#SYS_LIST[@]} - 1; i >= 0; i--)); do order+=("${SYS_LIST[$i]}"); done
		fi
		for caller in "${CALLER_LIST[@]}"; do
			for form in "${FORM_LIST[@]}"; do
				for sys in "${order[@]}"; do
					run_one "$sys" "$caller" "$form" "$round"
				done
			done
		done
	done
done
stop_postfix

report
