#!/usr/bin/env bash
# deliver_bench.sh: end to end, Postfix's smtp-source -> server -> local
# mailbox, smaltd against Postfix configured the same way, in one run:
#
#   - two modes: mbox (mail_spool_directory = a private 1777 folder per
#     system) and Maildir (home_mailbox = Maildir/ in one test user's home);
#   - messages per second from the moment smtp-source starts until the
#     user's mailbox holds all N messages (mbox: lines that start with
#     "From "; Maildir: files in new/ and cur/), polled every 50 ms;
#   - at 1 and 20 sessions (4 KiB, one message per connection), the systems
#     alternated round by round, the median of the rounds reported, and the
#     ratio smaltd / Postfix per mode and session count.
#
# Both servers run privately on 127.0.0.1 (Postfix with its own
# config_directory and queue_directory), both fsync their queue before 250
# and the mailbox before they call a delivery done, both deliver to the
# same system user (created here) in a child with that user's uid. They run
# one after the other, never at once; between runs each system's queue is
# drained (or emptied) and the mailboxes are emptied. Needs root: it
# installs Postfix with apt, creates the mailbox owner and runs both
# servers as root (they drop privileges themselves).
#
#   bench/deliver_bench.sh [-d WORK] [-r ROUNDS] [-p BASEPORT] [-s S1,S2]
#                          [-m M1,M2] [-T CAP] [-M MODES] [-S SYSTEMS]
#                          [-u USER]
#
# Results: a markdown table on stdout and in WORK/results.md, every run in
# WORK/runs.tsv, server logs in WORK/logs/. Compare ratios from one run,
# never absolute numbers across runs (client and servers share the CPUs).
set -Eeuo pipefail
trap 'echo "deliver_bench: error: line $LINENO: $BASH_COMMAND (status $?)" >&2' ERR

CMDLINE="$0 $*"
BENCH=deliver_bench
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$SRC_DIR/bench/lib.sh"
SMALT_BUILD=${SMALT_BUILD:-$SRC_DIR/build}
WORK=/var/tmp/deliver-bench
ROUNDS=3
BASEPORT=24035
SESS=1,20
MSGS=500,2000
CAP=300
STALL=30     # a run whose mailbox stops growing this long after smtp-source ended is cut off
DRAIN_MAX=60 # after a run: longest wait for the queue to empty
MODES=mbox,maildir
SYSTEMS=smaltd,postfix
BENCH_USER=smaltbench
BENCH_USER_COMMENT="smalt deliver_bench mailbox owner"
BENCH_HOME_WARNING="its Maildir/ is emptied before every run"
MSG_LEN=4096
SENDER=from@example.com
DOMAIN=bench.example

usage() {
	cat >&2 <<EOF
usage: $0 [-d WORK] [-r ROUNDS] [-p BASEPORT] [-s S1,S2] [-m M1,M2]
          [-T CAP] [-M MODES] [-S SYSTEMS] [-u USER]
  -d WORK      work directory: queues, mailboxes, configs, logs, the
               mailbox owner's home (default $WORK)
  -r ROUNDS    rounds per mode and session count, median reported
               (default $ROUNDS)
  -p BASEPORT  first of 3 ports on 127.0.0.1: smaltd, Postfix, and a dead
               port for smaltd's resolver (default $BASEPORT)
  -s S1,S2     parallel smtp-source sessions, a comma list (default $SESS)
  -m M1,M2     messages per run, one per session count (default $MSGS)
  -T CAP       longest run in seconds; a run cut off is rated by the
               messages that reached the mailbox in it (default $CAP)
  -M MODES     comma list out of mbox,maildir (default $MODES)
  -S SYSTEMS   comma list out of smaltd,postfix (default $SYSTEMS)
  -u USER      mailbox owner, created as a system user with its home under
               WORK when missing (default $BENCH_USER)
Environment: SMALT_BUILD (default $SMALT_BUILD), SMALT_REV (the commit
named in the report; default: git rev-parse in the source tree)
EOF
	exit 2
}

while getopts "d:r:p:s:m:T:M:S:u:h" opt; do
	case $opt in
	d) WORK=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	p) BASEPORT=$OPTARG ;;
	s) SESS=$OPTARG ;;
	m) MSGS=$OPTARG ;;
	T) CAP=$OPTARG ;;
	M) MODES=$OPTARG ;;
	S) SYSTEMS=$OPTARG ;;
	u) BENCH_USER=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage
IFS=, read -r -a SESSIONS <<<"$SESS"
IFS=, read -r -a MSG_COUNTS <<<"$MSGS"
[ ${#SESSIONS[@]} -ge 1 ] && [ ${#SESSIONS[@]} -eq ${#MSG_COUNTS[@]} ] || usage
for v in "${SESSIONS[@]}" "${MSG_COUNTS[@]}" "$ROUNDS" "$BASEPORT" "$CAP"; do
	[[ $v =~ ^[1-9][0-9]*$ ]] || usage
done
IFS=, read -r -a SYS_LIST <<<"$SYSTEMS"
for s in "${SYS_LIST[@]}"; do
	case $s in smaltd | postfix) ;; *) usage ;; esac
done
IFS=, read -r -a MODE_LIST <<<"$MODES"
for m in "${MODE_LIST[@]}"; do
	case $m in mbox | maildir) ;; *) usage ;; esac
done
[[ $BENCH_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || usage
[[ $WORK == /* ]] || WORK=$PWD/$WORK
require_root deliver_bench

SMALT_PORT=$BASEPORT
POSTFIX_PORT=$((BASEPORT + 1))
DEAD_PORT=$((BASEPORT + 2)) # smaltd's resolver: nothing answers there
LOGS=$WORK/logs
PF_DIR=$WORK/postfix
PF_CONF=$PF_DIR/etc
PF_QUEUE=$PF_DIR/queue
SM_DIR=$WORK/smaltd
SM_SPOOL=$SM_DIR/spool
RCPT=$BENCH_USER@$DOMAIN

# ---------------------------------------------------------------- cleanup
SMALTD_PID=
PF_STARTED=0

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_smaltd
	stop_postfix
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# The mailbox a system delivers to in a mode.
mailbox_of() { # sys mode
	case $2 in
	mbox) echo "$WORK/$1/mail/$BENCH_USER" ;;
	maildir) echo "$BENCH_HOME/Maildir" ;;
	esac
}

# Empties every mailbox of the test user: both systems' mbox files, their
# lock files, and the Maildir (recreated empty, owned by the user).
reset_mailboxes() {
	local s
	for s in smaltd postfix; do
		rm -f "$WORK/$s/mail/$BENCH_USER" "$WORK/$s/mail/$BENCH_USER.lock"
		install -d -m 1777 -o root -g root "$WORK/$s/mail"
	done
	rm -rf "$BENCH_HOME/Maildir"
	install -d -m 0700 -o "$BENCH_USER" -g "$(id -g "$BENCH_USER")" \
		"$BENCH_HOME/Maildir" "$BENCH_HOME/Maildir/tmp" \
		"$BENCH_HOME/Maildir/new" "$BENCH_HOME/Maildir/cur"
}

# The timed run: starts smtp-source, polls the mailbox every 50 ms, stops
# when it holds N messages, when CAP seconds have passed, or when the
# mailbox has not grown for STALL seconds after smtp-source ended.
write_run_script() {
	cat >"$WORK/deliver_run.py" <<'EOF'
# deliver_run.py MODE MAILBOX N CAP STALL OUTFILE SRC_OUT SRC_ERR -- CMD...
# Prints to OUTFILE: "elapsed count flag source_rc source_elapsed".
# elapsed: seconds from the start of CMD until the mailbox held N messages
# (ok), or until the last message arrived (stalled), or CAP (capped).
import os, subprocess, sys, time

mode, box, n, cap, stall, out, src_out, src_err = sys.argv[1:9]
n, cap, stall = int(n), float(cap), float(stall)
assert sys.argv[9] == "--"
cmd = sys.argv[10:]

class Mbox:
    """Counts lines that start with "From " (mboxrd quotes body lines
    that do as ">From "), reading only what was appended since the last
    poll, whole lines only."""
    def __init__(self, path):
        self.path, self.pos, self.n, self.size = path, 0, 0, -1
        self.stable = self.ends_blank = False
    def __call__(self):
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            size = os.fstat(fd).st_size
            self.stable = size == self.size
            self.size = size
            if size < self.pos:  # truncated back after a failed write
                self.pos, self.n = 0, 0
            if size > self.pos:
                data = os.pread(fd, size - self.pos, self.pos)
                last = data.rfind(b"\n")
                if last >= 0:
                    chunk = data[:last + 1]
                    self.n += chunk.startswith(b"From ") + chunk.count(b"\nFrom ")
                    self.pos += last + 1
            self.ends_blank = size >= 2 and os.pread(fd, 2, size - 2) == b"\n\n"
        finally:
            os.close(fd)
        return self.n
    def complete(self):
        # The last message's From_ line appears before its body: done when
        # the file ends with the blank line that ends a message, or has
        # stopped growing for one poll.
        return self.ends_blank or self.stable

class Maildir:
    def __init__(self, path):
        self.dirs = [os.path.join(path, "new"), os.path.join(path, "cur")]
    def __call__(self):
        c = 0
        for d in self.dirs:
            try:
                c += sum(1 for e in os.scandir(d) if not e.name.startswith("."))
            except FileNotFoundError:
                pass
        return c
    def complete(self):
        return True  # a file appears in new/ by rename, whole

count = Mbox(box) if mode == "mbox" else Maildir(box)
with open(src_out, "ab") as so, open(src_err, "wb") as se:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=so, stderr=se)
    src_el = None
    last_c, last_t = 0, t0
    while True:
        c = count()
        t = time.monotonic()
        if src_el is None and p.poll() is not None:
            src_el = t - t0
        if c != last_c:
            last_c, last_t = c, t
        if c >= n and count.complete():
            flag, el = "ok", t - t0
            break
        if t - t0 >= cap:
            flag, el = "capped", t - t0
            break
        if src_el is not None and t - max(last_t, t0 + src_el) >= stall:
            flag, el = "stalled", last_t - t0
            break
        time.sleep(0.05)
    if p.poll() is None:
        p.terminate()
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    if src_el is None:
        src_el = time.monotonic() - t0
with open(out, "w") as f:
    f.write("%.4f %d %s %d %.4f\n" % (el, c, flag, rc, src_el))
EOF
}

# ---------------------------------------------------------------- smaltd
write_smaltd_conf() { # mode
	local home_mailbox=
	[ "$1" = maildir ] && home_mailbox=Maildir/
	mkdir -p "$SM_DIR"
	cat >"$SM_DIR/smalt-$1.conf" <<EOF
# deliver_bench.sh, mode $1
hostname = smaltd-bench.localdomain
local_domains = $DOMAIN
listen = 127.0.0.1:$SMALT_PORT
spool_dir = $SM_SPOOL
mail_spool_directory = $WORK/smaltd/mail
home_mailbox = $home_mailbox
aliases = /dev/null
resolver = 127.0.0.1:$DEAD_PORT
log = stderr
max_connections = 2000
max_connections_per_ip = 2000
EOF
	check_smaltd_conf "$SM_DIR/smalt-$1.conf" "$LOGS/smaltd-n-$1.txt"
}

start_smaltd() { # mode
	rm -rf "$SM_SPOOL"
	sync
	launch_smaltd "$SM_DIR/smalt-$1.conf"
}

# ---------------------------------------------------------------- postfix
setup_postfix() {
	postfix_instance_setup "$POSTFIX_PORT" \
		"mydomain = localdomain" \
		"myorigin = \$myhostname" \
		"mydestination = $DOMAIN" \
		"local_recipient_maps = unix:passwd.byname" \
		"relayhost =" \
		"biff = no" \
		"mailbox_size_limit = 0"
}

configure_postfix() { # mode
	local pc="postconf -c $PF_CONF"
	case $1 in
	mbox) $pc -e "mail_spool_directory = $WORK/postfix/mail" "home_mailbox =" ;;
	maildir) $pc -e "mail_spool_directory = $WORK/postfix/mail" "home_mailbox = Maildir/" ;;
	esac
	postfix_check
}

# ---------------------------------------------------------------- per system
port_of() {
	case $1 in
	smaltd) echo "$SMALT_PORT" ;;
	postfix) echo "$POSTFIX_PORT" ;;
	esac
}
name_of() {
	case $1 in
	smaltd) echo smaltd ;;
	postfix) echo Postfix ;;
	esac
}
mode_name() {
	case $1 in
	mbox) echo mbox ;;
	maildir) echo Maildir ;;
	esac
}
log_of() {
	case $1 in
	smaltd) echo "$LOGS/smaltd.log" ;;
	postfix) echo "$LOGS/postfix.log" ;;
	esac
}
queued() {
	case $1 in
	smaltd) smaltd_queued ;;
	postfix) postfix_queued ;;
	esac
}

# Waits until the system's queue is empty, so that nothing of this run is
# delivered during the next one; what is left after DRAIN_MAX is thrown
# away (and said). Sets DRAIN_LEFT; stops smaltd.
DRAIN_LEFT=0
drain() { # sys [max seconds]
	local sys=$1 q end=$((SECONDS + ${2:-$DRAIN_MAX}))
	while :; do
		q=$(queued "$sys")
		if [ "$q" -eq 0 ] || [ $SECONDS -ge $end ]; then break; fi
		sleep 0.2
	done
	if [ "$q" -ne 0 ]; then
		say "warning: $sys still holds $q queue files after the run; removing them"
		if [ "$sys" = postfix ]; then
			postsuper -c "$PF_CONF" -d ALL >>"$LOGS/postfix-ctl.log" 2>&1 || true
			sleep 2 # deliveries in flight end
		fi
	fi
	if [ "$sys" = smaltd ]; then stop_smaltd; fi
	sleep 0.5 # let postlogd write its last lines
	DRAIN_LEFT=$q
}

# One timed run; appends a line to runs.tsv.
run_one() {
	local sys=$1 mode=$2 sess=$3 msgs=$4 round=$5 port box log d0 b0 d1 b1
	local el n flag src_rc src_el left final rate accept load
	port=$(port_of "$sys")
	box=$(mailbox_of "$sys" "$mode")
	log=$(log_of "$sys")
	reset_mailboxes
	if [ "$sys" = smaltd ]; then start_smaltd "$mode"; fi # an empty spool for every run
	[ "$(queued "$sys")" -eq 0 ] || die "$sys's queue is not empty before a run"
	sync # what the previous runs left dirty is not this run's cost
	load=$(cut -d' ' -f1 /proc/loadavg) # others' work on the machine shows here
	d0=$(count_in 'status=deferred' "$log")
	b0=$(count_in 'status=bounced' "$log")
	rm -f "$WORK/run.out"
	python3 "$WORK/deliver_run.py" "$mode" "$box" "$msgs" "$CAP" "$STALL" \
		"$WORK/run.out" "$LOGS/smtp-source.log" "$WORK/source.err" -- \
		smtp-source -s "$sess" -m "$msgs" -l "$MSG_LEN" -f "$SENDER" -t "$RCPT" \
		"127.0.0.1:$port"
	read -r el n flag src_rc src_el <"$WORK/run.out"
	# A run that stalled is not waited for long: its mail is not moving.
	if [ "$flag" = stalled ]; then drain "$sys" 5; else drain "$sys"; fi
	left=$DRAIN_LEFT
	final=$(mailbox_count "$mode" "$box")
	d1=$(count_in 'status=deferred' "$log")
	b1=$(count_in 'status=bounced' "$log")
	if [ -s "$WORK/source.err" ]; then
		sed "s/^/[$sys $mode s=$sess r=$round] /" "$WORK/source.err" >>"$LOGS/smtp-source.err"
	fi
	if [ "$flag" = ok ] && { [ "$src_rc" -ne 0 ] || [ "$final" -ne "$msgs" ]; }; then
		flag=mismatch
	fi
	if [ "$flag" != ok ]; then
		say "warning: $sys $mode s=$sess: $flag: $n of $msgs in the mailbox when timed," \
			"$final after draining; smtp-source rc $src_rc; $((d1 - d0)) deferred," \
			"$((b1 - b0)) bounced in the log; $left queue files left" \
			"$([ -s "$WORK/source.err" ] && echo "; smtp-source: $(head -2 "$WORK/source.err" | tr '\n' ' ')")"
	fi
	if [ "$n" -gt 0 ] && [ "$(echo "$el > 0" | bc -l)" = 1 ]; then
		rate=$(echo "$n / $el" | bc -l)
	else
		rate=0
	fi
	accept=$src_el
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.1f\t%s\t%.3f\t%s\t%s\t%s\t%s\t%s\n' \
		"$round" "$mode" "$sys" "$sess" "$msgs" "$n" "$el" "$rate" "$flag" \
		"$accept" "$final" "$((d1 - d0))" "$((b1 - b0))" "$(wc -l <"$WORK/source.err")" \
		"$load" >>"$WORK/runs.tsv"
	say "$(name_of "$sys") $mode s=$sess round $round: $n msgs in $(printf %.2f "$el") s" \
		"= $(printf %.0f "$rate") msg/s end to end ($flag; smtp-source done after" \
		"$(printf %.2f "$accept") s; $final in the mailbox after draining)"
}

# ---------------------------------------------------------------- report
col_of() { # column of runs.tsv for sys mode sess
	awk -F'\t' -v c="$1" -v s="$2" -v m="$3" -v n="$4" \
		'$3 == s && $2 == m && $4 == n {print $c}' "$WORK/runs.tsv"
}

rate_num() { # sys mode sess
	# shellcheck disable=SC2046
	median $(col_of 8 "$@")
}

rate_cell() { # sys mode sess: median rate, marked when a run was cut off/failed
	local flags v
	v=$(rate_num "$@")
	[ -n "$v" ] || {
		printf 'n/a'
		return
	}
	flags=$(col_of 9 "$@" | sort -u | tr '\n' ' ')
	printf '%.0f' "$v"
	case $flags in *capped* | *stalled*) printf '†' ;; esac
	case $flags in *mismatch*) printf '‡' ;; esac
}

accept_cell() { # sys mode sess: median seconds until smtp-source ended
	local v
	# shellcheck disable=SC2046
	v=$(median $(col_of 10 "$@"))
	[ -n "$v" ] && printf '%.2f s' "$v" || printf 'n/a'
}

has_sys() { [[ ",$SYSTEMS," == *",$1,"* ]]; }

report() {
	local s m n i head sep cells
	head="| system"
	sep="| ---"
	for m in "${MODE_LIST[@]}"; do
		for n in "${SESSIONS[@]}"; do
			head="$head | $(mode_name "$m"), $n session$([ "$n" = 1 ] || echo s) msg/s"
			sep="$sep | ---:"
		done
	done
	{
		echo "$head |"
		echo "$sep |"
		for s in "${SYS_LIST[@]}"; do
			cells="| $(name_of "$s")"
			for m in "${MODE_LIST[@]}"; do
				for n in "${SESSIONS[@]}"; do cells="$cells | $(rate_cell "$s" "$m" "$n")"; done
			done
			echo "$cells |"
		done
		if has_sys smaltd && has_sys postfix; then
			cells="| smaltd / Postfix"
			for m in "${MODE_LIST[@]}"; do
				for n in "${SESSIONS[@]}"; do
					cells="$cells | $(ratio "$(rate_num smaltd "$m" "$n")" "$(rate_num postfix "$m" "$n")")"
				done
			done
			echo "$cells |"
		fi
		echo
		echo "$(date -u '+%Y-%m-%d %H:%M UTC'), \`$CMDLINE\`."
		echo "Messages per second from the start of smtp-source until the user's mailbox" \
			"held them all (polled every 50 ms); median of $ROUNDS rounds, systems" \
			"alternated; messages per run at ${SESS//,/\/} sessions: ${MSGS//,/\/};" \
			"runs capped at $CAP s. Ratio row: smaltd ÷ Postfix (higher is better for smaltd)."
		if grep -qE 'capped|stalled' "$WORK/runs.tsv"; then
			echo "† at least one run was cut off (at $CAP s, or its mailbox stopped" \
				"growing for $STALL s): rated by the messages in the mailbox by then."
		fi
		if grep -q 'mismatch' "$WORK/runs.tsv"; then
			echo "‡ at least one run ended with smtp-source failing or a mailbox count" \
				"after draining other than the messages sent (see runs below and logs/)."
		fi
		if has_sys smaltd && has_sys postfix; then
			echo
			echo "smaltd ÷ Postfix round by round (runs next to each other):"
			for m in "${MODE_LIST[@]}"; do
				for n in "${SESSIONS[@]}"; do
					printf '%s\n' "- $(mode_name "$m"), $n session$([ "$n" = 1 ] || echo s): $(awk -F'\t' -v m="$m" -v n="$n" '
						$2 == m && $4 == n && $3 == "smaltd" { a[$1] = $8 }
						$2 == m && $4 == n && $3 == "postfix" { b[$1] = $8 }
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
		fi
		echo
		echo "Median time until smtp-source had handed over every message (the rest of" \
			"the end-to-end time is delivery catching up):"
		echo
		echo "$head |" | sed 's/ msg\/s//g'
		echo "$sep |"
		for s in "${SYS_LIST[@]}"; do
			cells="| $(name_of "$s")"
			for m in "${MODE_LIST[@]}"; do
				for n in "${SESSIONS[@]}"; do cells="$cells | $(accept_cell "$s" "$m" "$n")"; done
			done
			echo "$cells |"
		done
		echo
		printf 'Log lines with warning/error/fatal/panic:'
		for s in "${SYS_LIST[@]}"; do
			printf ' %s %s;' "$(name_of "$s")" "$(count_in '(warning|error|fatal|panic)' "$(log_of "$s")")"
		done
		echo " see $LOGS/."
		echo
		echo "Durability and setup as measured:"
		if has_sys smaltd; then
			echo "- smaltd $SMALT_VERSION (commit $SMALT_REV, build $SMALT_BUILD): fsyncs" \
				"the queue before 250 (SPEC §4) and the mailbox (mbox: the file;" \
				"Maildir: the file in tmp/ before the rename into new/) before a" \
				"delivery counts; delivery_concurrency at its default; restarted with" \
				"an empty spool $SM_SPOOL for every run; resolver a dead port" \
				"(127.0.0.1:$DEAD_PORT), aliases /dev/null."
		fi
		if has_sys postfix; then
			echo "- Postfix $PF_VERSION: default durability (cleanup fsyncs the queue file" \
				"before 250; local(8) fsyncs mbox and Maildir files); default" \
				"local_destination_concurrency_limit ($PF_LOCAL_CONC: deliveries at once" \
				"to one recipient) and default_process_limit ($PF_PROC_LIMIT); no aliases," \
				"local_recipient_maps = unix:passwd.byname, biff = no; queue $PF_QUEUE;" \
				"restarted per mode."
		fi
		echo "- Both: recipient $RCPT, system user $BENCH_USER (home $BENCH_HOME);" \
			"mbox in WORK/SYSTEM/mail (mode 1777, fcntl + dotlock), Maildir in" \
			"$BENCH_HOME/Maildir; mailboxes emptied and queues drained before every run."
		echo "- Client: smtp-source -s N -m M -l $MSG_LEN -f $SENDER -t $RCPT (HELO, one" \
			"message per connection, no pipelining)."
		echo "- Machine: $(machine_line)."
		echo
		echo "Runs (round, mode, system, sessions, messages sent, in the mailbox when timed," \
			"seconds, msg/s, flag, seconds until smtp-source ended, in the mailbox after" \
			"draining, deferred and bounced log lines, smtp-source stderr lines, 1-minute" \
			"load average at the start):"
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
for f in smaltd.log postfix.log smtp-source.log smtp-source.err postfix-ctl.log; do
	: >"$LOGS/$f"
done
install_postfix
has_sys smaltd && build_smalt
command -v bc >/dev/null || die "bc is needed"
setup_user
write_run_script

for p in "$SMALT_PORT" "$POSTFIX_PORT"; do
	port_free "$p" || die "port 127.0.0.1:$p is taken (use -p)"
done
port_free "$DEAD_PORT" udp || die "udp port 127.0.0.1:$DEAD_PORT is taken (use -p)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

FS_WORK=$(df -T "$WORK" | awk 'NR == 2 {print $2 " " $1 " (" $7 ")"}')
PF_VERSION=$(dpkg-query -W -f='${Version}' postfix 2>/dev/null || echo '?')
SMALT_REV=${SMALT_REV:-$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null || echo '?')}
SMALT_VERSION=$(sed -n 's/^project(smalt VERSION \([0-9.]*\).*/\1/p' "$SRC_DIR/CMakeLists.txt")
has_sys postfix && setup_postfix
PF_LOCAL_CONC=$(postconf -c "$PF_CONF" -h local_destination_concurrency_limit 2>/dev/null || echo '?')
PF_PROC_LIMIT=$(postconf -c "$PF_CONF" -h default_process_limit 2>/dev/null || echo '?')
say "work dir $WORK ($FS_WORK); recipient $RCPT, home $BENCH_HOME"

for mode in "${MODE_LIST[@]}"; do
	say "mode $mode"
	has_sys smaltd && write_smaltd_conf "$mode"
	if has_sys postfix; then
		stop_postfix
		configure_postfix "$mode"
		start_postfix "$POSTFIX_PORT"
	fi
	for round in $(seq "$ROUNDS"); do
		if [ $((round % 2)) -eq 1 ]; then
			order=("${SYS_LIST[@]}")
		else
			order=()
			for ((i = ${#SYS_LIST[@]} - 1; i >= 0; i--)); do order+=("${SYS_LIST[$i]}"); done
		fi
		for k in "${!SESSIONS[@]}"; do
			for sys in "${order[@]}"; do
				run_one "$sys" "$mode" "${SESSIONS[$k]}" "${MSG_COUNTS[$k]}" "$round"
			done
		done
	done
done
stop_postfix # the last run's mailboxes stay for a look

report
