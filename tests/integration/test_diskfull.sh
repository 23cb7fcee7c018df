#!/usr/bin/env bash
# Out of disk (SPEC §4): the spool on a small tmpfs fills up; the client
# gets 452 4.3.1, what was queued stays intact, and once space is back
# mail is accepted again without a restart.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "needs root to mount a small tmpfs; run the suite as root (CI does)"
	exit 77
fi
SPOOL="$T/spool"
mkdir -p "$SPOOL"
if ! mount -t tmpfs -o size=1536k,mode=0755 tmpfs "$SPOOL"; then
	echo "cannot mount tmpfs here"
	exit 77
fi
cleanup_mount() { umount -l "$SPOOL" 2>/dev/null; cleanup; }
trap cleanup_mount EXIT

PORT=$(free_port)
"$SMALTD" -d -f /dev/null -o listen=127.0.0.1:$PORT -o spool_dir="$SPOOL" \
	-o aliases=/dev/null -o log=stderr -o delivery_concurrency=0 \
	2>"$T/daemon.log" &
PIDS="$PIDS $!"
check "daemon up" wait_for grep -q "daemon started" "$T/daemon.log"

head -c 150000 /dev/zero | tr '\0' 'x' | fold -w 70 >"$T/body"
accepted=0
full=0
for i in $(seq 1 30); do
	out=$(swaks --server 127.0.0.1:$PORT --to root@localhost \
		--from a@example.com --header "Subject: fill $i" \
		--body @"$T/body" 2>&1)
	if echo "$out" | grep -q "250 2.0.0 Ok: queued"; then
		accepted=$((accepted + 1))
	elif echo "$out" | grep -q "452 4.3.1"; then
		full=1
		break
	else
		echo "$out" | tail -5
		fail "message $i: neither queued nor 452 4.3.1"
		break
	fi
done
check "some messages were queued before the disk filled" [ "$accepted" -ge 3 ]
check "a full disk answers 452 4.3.1" [ "$full" -eq 1 ]
check "daemon still running" kill -0 "${PIDS##* }"
check "queued count matches 250 replies" [ "$(ls "$SPOOL/incoming" | wc -l)" -eq "$accepted" ]
intact=1
for env in "$SPOOL"/incoming/*; do
	id=$(basename "$env")
	want=$(awk -F'\t' '$1=="size"{print $2}' "$env")
	got=$(stat -c %s "$SPOOL/msg/$id")
	[ "$want" = "$got" ] || intact=0
done
check "every queued message is intact" [ "$intact" -eq 1 ]
check "no partial message files left" [ "$(ls "$SPOOL/msg" | wc -l)" -eq "$accepted" ]

# (Delivery is held: this test is about what smtpd queues.)
# Space comes back (as when delivery empties the queue): accepted again.
for env in $(ls "$SPOOL/incoming" | head -n 3); do
	rm -f "$SPOOL/incoming/$env" "$SPOOL/msg/$env"
done
swaks --server 127.0.0.1:$PORT --to root@localhost --from a@example.com \
	--body "small" >"$T/after.out" 2>&1
check "accepted again once space is back" grep -q "250 2.0.0 Ok: queued" "$T/after.out"
finish
