# bench/lib.sh: shell functions the benchmark scripts share; sourced, not
# run. The caller sets `set -Eeuo pipefail` and its own traps, then these
# globals before it calls anything here:
#
#   BENCH        the script's name in messages ("sendmail_bench")
#   SRC_DIR      the source tree; SMALT_BUILD the build tree in it
#   WORK, LOGS   the work directory and its logs/ folder
#   PF_DIR, PF_CONF, PF_QUEUE
#                the private Postfix instance: its folder, config_directory
#                and queue_directory
#   BENCH_USER   (setup_user only) the test user's name; optional:
#                BENCH_USER_COMMENT, its GECOS when it is created, and
#                BENCH_HOME_WARNING, which makes a home outside WORK a
#                warning ending in that text rather than a note
#
# and these state variables, which the functions here keep: SMALTD_PID
# (the foreground smaltd the script started, or empty) and PF_STARTED
# (1 while the private Postfix instance runs).
# shellcheck shell=bash

say() { printf '%s %s: %s\n' "$(date +%T)" "$BENCH" "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

# ---------------------------------------------------------------- processes
stop_pid() { # pid: TERM, wait up to 10 s, then KILL
	local pid=$1 i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# All processes under (and including) a pid.
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END {
			want[root] = 1; n = 1
			while (n) {
				n = 0
				for (p in parent)
					if (!(p in want) && (parent[p] in want)) { want[p] = 1; n = 1 }
			}
			for (p in want) if (p in parent) print p
		}'
}

require_root() { # the script's name
	[ "$(id -u)" -eq 0 ] || {
		echo "$1: run me as root" >&2
		exit 1
	}
}

check_smaltd_conf() { # conf output: smaltd -n into output, or die
	"$SMALT_BUILD/cli/smaltd" -n -f "$1" >"$2" 2>&1 ||
		die "smaltd -n rejects $1: $(tail -3 "$2")"
}

# Starts smaltd -d -f conf in the background (SMALTD_PID), logging to
# LOGS/smaltd.log, and waits for its greeting on SMALT_PORT.
launch_smaltd() { # conf
	echo "=== $(date '+%F %T') smaltd -d -f $1" >>"$LOGS/smaltd.log"
	"$SMALT_BUILD/cli/smaltd" -d -f "$1" >>"$LOGS/smaltd.log" 2>&1 &
	SMALTD_PID=$!
	wait_greeting "$SMALT_PORT" smaltd
}

smaltd_queued() { # files in SM_SPOOL's folders where mail waits
	files_in "$SM_SPOOL"/{incoming,deferred,hold,msg,tmp}
}

# Stops the smaltd started in the foreground (SMALTD_PID) and waits up to
# 5 s for the delivery children it may have left behind.
stop_smaltd() {
	local pid=$SMALTD_PID kids k left i
	[ -n "$pid" ] || return 0
	kids=$(tree_pids "$pid")
	stop_pid "$pid"
	SMALTD_PID=
	for i in $(seq 50); do
		left=
		for k in $kids; do
			[ "$k" = "$pid" ] || ! kill -0 "$k" 2>/dev/null || left="$left $k"
		done
		[ -n "$left" ] || return 0
		sleep 0.1
	done
	say "warning: smaltd's children outlived it by 5 s:$left"
}

# ---------------------------------------------------------------- install
pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Postfix from apt (debconf "No configuration": no system instance is set
# up); it brings smtp-source and smtp-sink.
install_postfix() {
	if pkg_installed postfix && [ -x /usr/sbin/smtp-source ] &&
		[ -x /usr/sbin/smtp-sink ]; then
		return
	fi
	say "installing postfix (for smtp-source, smtp-sink and the peer)"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" |
		debconf-set-selections
	apt-get update -qq >/dev/null
	apt-get install -y -qq postfix >"$LOGS/apt-postfix.log" 2>&1 ||
		die "apt-get install postfix failed: see $LOGS/apt-postfix.log"
	[ -x /usr/sbin/smtp-source ] || die "no /usr/sbin/smtp-source"
}

# Builds SMALT_BUILD when smaltd is missing from it, and runs setup.sh when
# the smalt user or the smaltdrop group is missing.
build_smalt() {
	if [ ! -x "$SMALT_BUILD/cli/smaltd" ] || [ ! -x "$SMALT_BUILD/cli/sendmail" ]; then
		say "building smalt in $SMALT_BUILD"
		cmake -S "$SRC_DIR" -B "$SMALT_BUILD" >"$LOGS/cmake.log" 2>&1 &&
			cmake --build "$SMALT_BUILD" -j2 >>"$LOGS/cmake.log" 2>&1 ||
			die "build failed: see $LOGS/cmake.log"
	fi
	# smaltd started as root drops to the `user` key's account (smalt).
	if ! id smalt >/dev/null 2>&1 || ! getent group smaltdrop >/dev/null; then
		"$SRC_DIR/setup.sh" >"$LOGS/setup.log" 2>&1 ||
			die "setup.sh failed: see $LOGS/setup.log"
	fi
}

# The test user (BENCH_USER): a system user with its home under WORK.
# An existing user keeps its home; it must not be root. Sets BENCH_HOME.
# BENCH_USER_COMMENT and BENCH_HOME_WARNING: see the top.
BENCH_HOME=
setup_user() {
	if ! getent passwd "$BENCH_USER" >/dev/null; then
		say "creating system user $BENCH_USER (home $WORK/home/$BENCH_USER)"
		mkdir -p "$WORK/home"
		useradd --system --user-group --home-dir "$WORK/home/$BENCH_USER" \
			--no-create-home --shell /usr/sbin/nologin \
			--comment "${BENCH_USER_COMMENT:-smalt benchmark user}" "$BENCH_USER"
	fi
	BENCH_HOME=$(getent passwd "$BENCH_USER" | cut -d: -f6)
	[ "$(id -u "$BENCH_USER")" -ne 0 ] || die "$BENCH_USER is root"
	case $BENCH_HOME in
	"$WORK"/*) ;;
	*)
		if [ -n "${BENCH_HOME_WARNING:-}" ]; then
			say "warning: $BENCH_USER's home is $BENCH_HOME, not under $WORK; $BENCH_HOME_WARNING"
		else
			say "note: $BENCH_USER's home is $BENCH_HOME, not under $WORK"
		fi
		;;
	esac
	install -d -m 0755 "$(dirname "$BENCH_HOME")"
	install -d -m 0700 -o "$BENCH_USER" -g "$(id -g "$BENCH_USER")" "$BENCH_HOME"
}

# ---------------------------------------------------------------- helpers
# Waits (up to 30 s) until PORT on 127.0.0.1 answers with a 220 greeting.
wait_greeting() { # port name
	python3 - "$1" <<'EOF' || die "$2 does not greet on 127.0.0.1:$1"
import socket, sys, time
end = time.time() + 30
while time.time() < end:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
            if s.recv(512).startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(1)
EOF
}

port_free() { # port [udp]
	python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if len(sys.argv) > 2 else socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$@"
}

count_in() { # extended regex, file: matching lines, 0 when none
	grep -c -E -- "$1" "$2" 2>/dev/null || true
}

files_in() { # dirs...: regular files under them (a file removed meanwhile is no error)
	{ find "$@" -type f 2>/dev/null || true; } | wc -l
}

now() { date +%s.%N; }

# ---------------------------------------------------------------- postfix
# A private Postfix instance: config_directory PF_CONF, queue_directory
# PF_QUEUE, data_directory PF_DIR/data, log in LOGS/postfix.log (postlogd),
# the Debian master.cf with smtpd on 127.0.0.1:PORT and no chroot, relay
# for 127.0.0.0/8 only and no client rate limits. Further main.cf
# settings ("name = value") come as arguments.
postfix_instance_setup() { # port [setting...]
	local port=$1
	shift
	local pc="postconf -c $PF_CONF"
	mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DIR/data"
	chown postfix "$PF_DIR/data"
	: >"$PF_CONF/main.cf"
	sed -E "s/^smtp( +)inet /127.0.0.1:$port inet /" \
		/etc/postfix/master.cf >"$PF_CONF/master.cf"
	grep -q "^127.0.0.1:$port inet" "$PF_CONF/master.cf" ||
		die "no smtp inet service in /etc/postfix/master.cf"
	$pc -F -e '*/*/chroot = n'
	$pc -e \
		"compatibility_level = 3.6" \
		"queue_directory = $PF_QUEUE" \
		"data_directory = $PF_DIR/data" \
		"maillog_file = $LOGS/postfix.log" \
		"myhostname = postfix-bench.localdomain" \
		"inet_interfaces = 127.0.0.1" \
		"inet_protocols = ipv4" \
		"mynetworks = 127.0.0.0/8" \
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination" \
		"alias_maps =" "alias_database =" \
		"smtpd_client_connection_count_limit = 0" \
		"smtpd_client_connection_rate_limit = 0" \
		"smtpd_client_message_rate_limit = 0" \
		"smtpd_client_recipient_rate_limit = 0" \
		"$@"
}

postfix_check() {
	postfix -c "$PF_CONF" check >>"$LOGS/postfix-ctl.log" 2>&1 ||
		die "postfix check failed: see $LOGS/postfix-ctl.log"
}

start_postfix() { # [port]: waits for smtpd's greeting there (default POSTFIX_PORT)
	postfix -c "$PF_CONF" start >>"$LOGS/postfix-ctl.log" 2>&1 ||
		die "postfix start failed: see $LOGS/postfix-ctl.log"
	PF_STARTED=1
	wait_greeting "${1:-$POSTFIX_PORT}" postfix
}

postfix_master_pid() {
	local p
	p=$(tr -d ' \n' <"$PF_QUEUE/pid/master.pid" 2>/dev/null) || true
	echo "$p"
}

stop_postfix() {
	local pid i
	[ "${PF_STARTED:-0}" = 1 ] || return 0
	pid=$(postfix_master_pid)
	postfix -c "$PF_CONF" stop >>"$LOGS/postfix-ctl.log" 2>&1 || true
	if [ -n "$pid" ]; then
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	PF_STARTED=0
}

postfix_queued() { # files in the queues mail waits in (hold included)
	files_in "$PF_QUEUE"/{maildrop,incoming,active,deferred,hold}
}

# ---------------------------------------------------------------- report
median() { # numbers as arguments; empty when none
	printf '%s\n' "$@" | sort -g | awk 'NF {v[++n] = $1}
		END { if (n == 0) print ""; else if (n % 2) printf "%.3f", v[(n + 1) / 2];
		      else printf "%.3f", (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

ratio() { # a b: "a/b×", n/a when either is missing or b is 0
	if [ -n "$1" ] && [ -n "$2" ] && [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then
		printf '%.3g×' "$(echo "$1 / $2" | bc -l)"
	else
		printf 'n/a'
	fi
}

machine_line() { # one line: CPUs, kernel, RAM, where WORK lives
	echo "nproc $(nproc), $(uname -sr)," \
		"$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)," \
		"WORK $WORK on $(df -T "$WORK" | awk 'NR == 2 {print $2 " " $1 " (" $7 ")"}')"
}

# Messages in a mailbox, parsed by Python's mailbox module.
mailbox_count() { # mode (mbox or maildir) path
	python3 - "$1" "$2" <<'PY'
import mailbox, os, sys
mode, path = sys.argv[1], sys.argv[2]
if mode == "mbox":
    print(len(mailbox.mbox(path, create=False)) if os.path.exists(path) else 0)
else:
    print(len(mailbox.Maildir(path, factory=None, create=False)) if os.path.isdir(path) else 0)
PY
}

# ---------------------------------------------------------------- smtp-sink
# Postfix's test programs smtp-sink and smtp-source: next to
# $SMALT_SMTP_SINK when it is set (the CI unpacks the postfix package
# without installing it, see .ci/run), else on PATH, else in /usr/sbin.
# Prints the path, or nothing (status 1) when there is none.
smtp_tool() { # smtp-sink | smtp-source
	local p
	if [ -n "${SMALT_SMTP_SINK:-}" ] && [ -x "$(dirname "$SMALT_SMTP_SINK")/$1" ]; then
		p=$(dirname "$SMALT_SMTP_SINK")/$1
	elif p=$(command -v "$1" 2>/dev/null); then
		:
	elif [ -x "/usr/sbin/$1" ]; then
		p=/usr/sbin/$1
	else
		return 1
	fi
	echo "$p"
}

# Messages an smtp-sink started with -c has taken so far ("." answered),
# from its counter output: records "sess=N quit=N mesg=N" ended by CR.
# With a second argument "sess" or "quit": that counter instead (sess:
# sessions ended).
sink_messages() { # counter file [mesg|sess|quit]
	local t f=${2:-mesg}
	t=$(tail -c 200 "$1" 2>/dev/null) || t=
	case $t in
	*$'\r') t=${t%$'\r'} ;;
	*) t=${t%$'\r'*} ;; # a record still being written
	esac
	t=${t##*$'\r'}
	if [[ $t =~ (^|[^a-z])$f=([0-9]+)( |$) ]]; then echo "${BASH_REMATCH[2]}"; else echo 0; fi
}

# ---------------------------------------------------------------- opensmtpd
# OpenSMTPD cannot be installed with apt beside Postfix (both provide
# mail-transport-agent): unpacks the opensmtpd package and the runtime
# libraries it needs that are not installed into PREFIX (debs kept in
# DEBDIR), then creates its opensmtpd/opensmtpq users.
opensmtpd_unpack() { # prefix debdir
	local prefix=$1 debs=$2 deb dep
	mkdir -p "$prefix" "$debs"
	chown _apt "$debs" 2>/dev/null || true
	opensmtpd_fetch_deb opensmtpd "$prefix" "$debs"
	deb=$(ls -t "$debs"/opensmtpd_*.deb | head -1)
	for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' |
		sed 's/|.*//; s/(.*)//; s/:any//; s/ //g'); do
		case $dep in lib* | zlib*) ;; *) continue ;; esac
		pkg_installed "$dep" || opensmtpd_fetch_deb "$dep" "$prefix" "$debs"
	done
	opensmtpd_users
}

opensmtpd_fetch_deb() { # package prefix debdir: apt-get download + dpkg-deb -x
	(cd "$3" && apt-get download -qq "$1" >/dev/null 2>&1) || {
		apt-get update -qq >/dev/null
		(cd "$3" && apt-get download -qq "$1" >/dev/null 2>&1)
	} || die "apt-get download $1 failed"
	dpkg-deb -x "$(ls -t "$3/${1}"_*.deb | head -1)" "$2"
}

# OpenSMTPD's users, which its privilege separation needs; their home is
# its compiled-in chroot.
opensmtpd_users() {
	local name chroot=/var/lib/opensmtpd/empty
	for name in opensmtpd opensmtpq; do
		getent group "$name" >/dev/null || addgroup --system --quiet "$name"
		id "$name" >/dev/null 2>&1 ||
			adduser --system --quiet --home "$chroot" --no-create-home \
				--disabled-password --gecos "OpenSMTPD ($name)" \
				--ingroup "$name" "$name" 2>/dev/null
	done
	install -d -m 0755 -o root -g root "$chroot"
}

# The library path an OpenSMTPD unpacked into PREFIX runs with (empty for
# the system's own, PREFIX /).
opensmtpd_libpath() { # prefix
	local d out=
	[ "$1" != / ] || return 0
	for d in "$1"/lib/*-linux-gnu "$1"/usr/lib/*-linux-gnu; do
		[ -d "$d" ] && out=${out:+$out:}$d
	done
	echo "$out"
}
