#!/usr/bin/env bash
# smaltd as a user meets it: -n, config errors and exit codes, start-up
# on a fresh spool, the pid lock, reload with a bad file, stop.
. "$(dirname "$0")/lib.sh"

# -- smaltd -n prints every key of SPEC §3, one line each
"$SMALTD" -n -f /dev/null >"$T/n.out" 2>"$T/n.err"
check "-n exits 0" [ $? -eq 0 ]
for key in hostname local_domains listen submission_listen smtps_listen \
	relay_networks spool_dir user mail_spool_directory home_mailbox \
	aliases virtual_mailboxes routes relayhost relayhost_auth_file \
	relayhost_tls smtp_port smtp_tls tls_cert tls_key tls_ca_file \
	auth_users resolver spf max_message_size max_recipients \
	max_connections max_connections_per_ip smtpd_timeout bare_newline \
	retry_min retry_max host_retry_min host_retry_max queue_lifetime \
	delay_warning delivery_concurrency destination_concurrency log; do
	check "-n prints $key once" [ "$(grep -c "^$key =" "$T/n.out")" -eq 1 ]
done
check "-n default listen" grep -qx 'listen = 127.0.0.1:25, \[::1\]:25' "$T/n.out"
check "-n default max_message_size" grep -Eqx 'max_message_size = 35m' "$T/n.out"
check "-n default relayhost empty" grep -qx 'relayhost =' "$T/n.out"

# -- -o overrides, and the file's own values
printf 'max_recipients = 50\n# comment\n  # indented comment\nlocal_domains = a.example,\n  b.example\n' >"$T/good.conf"
"$SMALTD" -n -f "$T/good.conf" -o smtp_port=2526 >"$T/n2.out"
check "-n file value" grep -qx 'max_recipients = 50' "$T/n2.out"
check "-n continuation" grep -qx 'local_domains = a.example, b.example' "$T/n2.out"
check "-n -o override" grep -qx 'smtp_port = 2526' "$T/n2.out"

# -- errors: exit 78 with file:line: reason
printf 'max_recipients = 50\nmax_recipent = 5\n' >"$T/bad.conf"
"$SMALTD" -n -f "$T/bad.conf" >/dev/null 2>"$T/bad.err"
check "bad key exits 78" [ $? -eq 78 ]
check "bad key says file:line" grep -q "$T/bad.conf:2: " "$T/bad.err"
"$SMALTD" -f "$T/bad.conf" -d >/dev/null 2>&1
check "bad config without -n exits 78" [ $? -eq 78 ]
"$SMALTD" -n -f "$T/missing.conf" >/dev/null 2>"$T/missing.err"
check "missing named file exits 78" [ $? -eq 78 ]
check "missing named file names it" grep -q "$T/missing.conf" "$T/missing.err"
"$SMALTD" -n -f /dev/null -o smtpd_timeout=5x >/dev/null 2>"$T/o.err"
check "bad -o exits 78" [ $? -eq 78 ]
check "bad -o names the key" grep -q smtpd_timeout "$T/o.err"
"$SMALTD" -x >/dev/null 2>&1
check "unknown flag exits 64" [ $? -eq 64 ]
if [ ! -e /etc/smalt/smalt.conf ]; then
	"$SMALTD" -n >/dev/null 2>&1
	check "missing default file means defaults" [ $? -eq 0 ]
fi

# -- start on a fresh spool (created with safe modes), recovery at start
PORT=$(free_port)
SPOOL="$T/spool"
mkdir -p "$SPOOL/tmp" "$SPOOL/incoming"
echo leftover >"$SPOOL/tmp/0000000000000001"
echo garbage >"$SPOOL/incoming/0000000000000002"
cat >"$T/run.conf" <<CONF
listen = 127.0.0.1:$PORT
spool_dir = $SPOOL
log = stderr
CONF
"$SMALTD" -d -f "$T/run.conf" 2>"$T/daemon.log" &
DPID=$!
PIDS="$PIDS $DPID"
check "daemon listens" wait_for grep -q "daemon started" "$T/daemon.log"
check "log line shape" grep -Eq '^[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [^ ]+ smalt/master\[[0-9]+\]: daemon started' "$T/daemon.log"
# As root, envelopes are readable by the smaltdrop group (mailq).
if [ "$(id -u)" -eq 0 ] && getent group smaltdrop >/dev/null; then
	for d in msg corrupt; do
		check "spool/$d mode 700" [ "$(stat -c %a "$SPOOL/$d")" = 700 ]
	done
	check "spool/tmp mode 2700" [ "$(stat -c %a "$SPOOL/tmp")" = 2700 ]
	for d in incoming deferred hold; do
		check "spool/$d mode 2750 group smaltdrop" [ "$(stat -c '%a %G' "$SPOOL/$d")" = "2750 smaltdrop" ]
	done
else
	for d in tmp msg incoming deferred hold corrupt; do
		check "spool/$d mode 700" [ "$(stat -c %a "$SPOOL/$d")" = 700 ]
	done
fi
check "maildrop mode 1730" [ "$(stat -c %a "$SPOOL/maildrop")" = 1730 ]
check "tmp leftover removed" [ ! -e "$SPOOL/tmp/0000000000000001" ]
check "bad envelope quarantined" [ -e "$SPOOL/corrupt/0000000000000002" ]
check "quarantine logged" grep -q "0000000000000002: moved incoming/0000000000000002 to corrupt/" "$T/daemon.log"
check "port is bound" python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 2)"
if [ "$(id -u)" -eq 0 ]; then
	# The master and the delivery agent keep root; smtpd and the qmgr
	# (everything that parses what arrives) run as smalt.
	check "smtpd runs as the unprivileged user" [ "$(ps -o user=,comm= --ppid "$DPID" | awk '$2 == "smalt-smtpd" {print $1}')" = smalt ]
	check "qmgr runs as the unprivileged user" [ "$(ps -o user=,comm= --ppid "$DPID" | awk '$2 == "smalt-qmgr" {print $1}')" = smalt ]
	check "delivery agent runs as root" [ "$(ps -o user=,comm= --ppid "$DPID" | awk '$2 == "smalt-deliver" {print $1}')" = root ]
	check "spool owned by smalt" [ "$(stat -c %U "$SPOOL/incoming")" = smalt ]
fi
"$SMALTCTL" -f "$T/run.conf" status >/dev/null
check "smaltctl status while running = 0" [ $? -eq 0 ]

# -- a second daemon on the same spool refuses
"$SMALTD" -d -f "$T/run.conf" -o listen=127.0.0.1:$(free_port) 2>"$T/second.log"
check "second daemon exits non-zero" [ $? -ne 0 ]
check "second daemon says why" grep -q "another smaltd is running" "$T/second.log"

# -- a port in use is fatal with the reason
"$SMALTD" -d -f "$T/run.conf" -o spool_dir="$T/spool2" 2>"$T/inuse.log"
check "port in use exits non-zero" [ $? -ne 0 ]
check "port in use reason" grep -q "Address already in use" "$T/inuse.log"

# -- reload with a bad file keeps running and logs file:line
cp "$T/run.conf" "$T/run.conf.good"
echo "bogus_key = 1" >>"$T/run.conf"
kill -HUP "$DPID"
check "bad reload logged" wait_for grep -q "reload failed.*run.conf:4: " "$T/daemon.log"
check "still running after bad reload" kill -0 "$DPID"
cp "$T/run.conf.good" "$T/run.conf"
kill -HUP "$DPID"
check "good reload logged" wait_for grep -q "reloaded configuration" "$T/daemon.log"

# -- stop
kill -TERM "$DPID"
wait "$DPID"
check "SIGTERM exits 0" [ $? -eq 0 ]
"$SMALTCTL" -f "$T/run.conf" status >/dev/null
check "smaltctl status when stopped = 1" [ $? -eq 1 ]

# -- as root, a missing user is a clear start-up error
if [ "$(id -u)" -eq 0 ]; then
	"$SMALTD" -d -f "$T/run.conf" -o user=no_such_user_smalt 2>"$T/user.log"
	check "missing user exits 78" [ $? -eq 78 ]
	check "missing user says so" grep -q 'user "no_such_user_smalt"' "$T/user.log"

	# A spool under a folder only root may enter (a checkout in /root,
	# as the README's command makes it): the unprivileged children work
	# through the folders root opened for them.
	mkdir -m 0700 "$T/private"
	mkdir -m 1777 "$T/mail"
	PPORT=$(free_port)
	"$SMALTD" -d -f /dev/null -o listen=127.0.0.1:$PPORT \
		-o spool_dir="$T/private/spool" -o aliases=/dev/null \
		-o mail_spool_directory="$T/mail" -o log=stderr \
		2>"$T/private.log" &
	PPID2=$!
	PIDS="$PIDS $PPID2"
	check "private spool: daemon up" wait_for grep -q "daemon started" "$T/private.log"
	swaks --server 127.0.0.1:$PPORT --to root@localhost >/dev/null 2>&1
	check "private spool: mail delivered" wait_for grep -q "status=sent" "$T/private.log"
	check "private spool: no child died" bash -c "! grep -q 'exited with status' '$T/private.log'"
	kill -TERM "$PPID2"
	wait "$PPID2"
fi
finish
