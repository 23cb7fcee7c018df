#!/usr/bin/env python3
"""smaltctl against the real daemon (SPEC §2, §9): status, show queue in
text and JSON (the shape of §9, RFC 3339 times), show message, hold,
release, remove, flush, reload and stop; requests from a user who is
neither root nor the daemon's user are ignored. Messages are held in
deferred/ by a pipe route that exits 75."""

import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402
from smalt_harness import Daemon  # noqa: E402

C = H.Checker()
BASE = H.make_tmp_base("smalt-ctl.")
BUILD = os.environ.get("SMALT_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
SMALTCTL = os.path.join(BUILD, "cli", "smaltctl")
SENDMAIL = os.path.join(BUILD, "cli", "sendmail")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def ctl(d, *args):
    p = subprocess.run([SMALTCTL, "-f", d.conf_path] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def send(d, rcpt, subject):
    p = subprocess.run([SENDMAIL, "-C", d.conf_path, "-i", rcpt],
                       input="Subject: %s\n\nbody\n" % subject,
                       capture_output=True, text=True, timeout=30)
    return p.returncode


def queue(d):
    rc, out, err = ctl(d, "show", "queue", "--json")
    return json.loads(out) if rc == 0 else None


def main():
    routes = os.path.join(BASE, "routes")
    with open(routes, "w") as f:
        f.write('defer.test pipe:/bin/sh -c "exit 75"\n')
    os.chmod(BASE, 0o755)
    os.chmod(routes, 0o644)
    d = Daemon(BASE, "ctl", routes=routes, retry_min="1h", retry_max="2h")
    d.start()
    try:
        rc, out, _ = ctl(d, "status")
        C.check("status while running: exit 0", rc == 0 and "running" in out,
                out)
        rc, out, _ = ctl(d, "show", "queue")
        C.check("show queue, empty", rc == 0 and "empty" in out, out)
        C.check("show queue --json, empty: []", queue(d) == [])

        C.check("two messages queued by sendmail",
                send(d, "a@defer.test", "one") == 0 and
                send(d, "b@defer.test", "two") == 0)
        C.check("both deferred", H.wait_for(
            lambda: len(d.list_dir("deferred")) == 2, 15))
        q = queue(d)
        C.check("show queue --json lists both", q is not None and
                len(q) == 2, q)
        if q:
            m = q[0]
            C.check("json keys of a message", set(m) == {
                "id", "sender", "size", "arrival", "held", "recipients"}, m)
            C.check("json arrival is RFC 3339", RFC3339.match(m["arrival"]),
                    m["arrival"])
            r = m["recipients"][0]
            C.check("json keys of a recipient", set(r) == {
                "address", "state", "reason", "next_attempt"}, r)
            C.check("recipient deferred with the reason",
                    r["state"] == "deferred" and "75" in r["reason"], r)
            C.check("next_attempt is RFC 3339 about an hour ahead",
                    r["next_attempt"] and RFC3339.match(r["next_attempt"]),
                    r)
            C.check("held is false", m["held"] is False)
        ids = sorted(d.list_dir("deferred"))
        rc, out, _ = ctl(d, "show", "queue")
        C.check("text form shows the same words",
                rc == 0 and "state=deferred" in out and ids[0] in out, out)
        rc, out, _ = ctl(d, "show", "message", ids[0])
        C.check("show message prints envelope and message",
                rc == 0 and "Subject: one" in out or "Subject: two" in out,
                out[:300])
        rc, _, err = ctl(d, "show", "message", "0000000000000000")
        C.check("show message of no such id: non-zero with reason",
                rc != 0 and "no such message" in err, err)
        rc, _, err = ctl(d, "hold", "not-an-id")
        C.check("hold with a bad id: usage error", rc == 64, (rc, err))

        # hold, then the JSON says held; remove the other
        C.check("hold", ctl(d, "hold", ids[0])[0] == 0)
        C.check("held message moves to hold/", H.wait_for(
            lambda: d.list_dir("hold") == [ids[0]], 10), d.list_dir("hold"))
        q = queue(d) or []
        C.check("json: held true", any(m["id"] == ids[0] and m["held"]
                                       for m in q), q)
        C.check("remove", ctl(d, "remove", ids[1])[0] == 0)
        C.check("removed message is gone", H.wait_for(
            lambda: ids[1] not in d.list_dir("deferred") and
            ids[1] not in d.list_dir("msg"), 10))
        C.check("log: removed by the administrator", d.wait_log(
            r"%s: removed by the administrator" % ids[1], 5))

        # a user who is not root/smalt cannot hold or remove
        if os.geteuid() == 0:
            send(d, "c@defer.test", "three")
            H.wait_for(lambda: len(d.list_dir("deferred")) == 1, 15)
            third = d.list_dir("deferred")[0]
            p = subprocess.run(
                ["runuser", "-u", "nobody", "--", SMALTCTL, "-f",
                 d.conf_path, "remove", third],
                capture_output=True, text=True, timeout=30)
            C.check("nobody cannot write a request (no maildrop access)",
                    p.returncode != 0, (p.returncode, p.stderr))
            time.sleep(0.5)
            C.check("... and the message stays", third in
                    d.list_dir("deferred"))
            # the same request dropped by hand, owned by nobody
            md = d.spool_path("maildrop")
            tmp = os.path.join(md, "t.forged")
            with open(tmp, "w") as f:
                f.write("smalt-maildrop\t1\nrequest\tremove\t%s\n" % third)
            os.chown(tmp, 65534, 65534)
            os.rename(tmp, os.path.join(md, "00000000000000FF"))
            C.check("a request owned by nobody is ignored and logged",
                    d.wait_log("from an untrusted user ignored", 10))
            C.check("... and the message stays (2)", third in
                    d.list_dir("deferred"))

        # fix the route, reload, release: delivered
        with open(routes, "w") as f:
            f.write('defer.test pipe:/bin/sh -c "cat >/dev/null"\n')
        rc, out, _ = ctl(d, "reload")
        C.check("reload: exit 0", rc == 0, out)
        C.check("reload logged", d.wait_log("reloaded configuration", 10))
        C.check("release", ctl(d, "release", ids[0])[0] == 0)
        C.check("released message delivered and removed", d.wait_log(
            r"%s: removed" % ids[0], 15))
        if os.geteuid() == 0:
            C.check("flush: the waiting one goes now",
                    ctl(d, "flush")[0] == 0 and
                    d.wait_log(r"%s: removed" % third, 15))
        # no remote delivery yet: an empty cache, in both forms
        rc, out, err = ctl(d, "show", "hosts")
        C.check("show hosts: empty cache", rc == 0 and
                out.strip() == "no hosts", out + err)
        rc, out, err = ctl(d, "show", "hosts", "--json")
        C.check("show hosts --json: empty list", rc == 0 and
                json.loads(out) == [], out + err)
        # counters reach the file within a few seconds
        def stats():
            rc, out, _ = ctl(d, "show", "stats", "--json")
            return json.loads(out) if rc == 0 else None
        want = {"received", "delivered", "deferred", "bounced", "rejected",
                "connections", "queue_size"}
        st = stats()
        C.check("show stats --json: the keys of SPEC 9", st is not None and
                set(st) == want, st)
        C.check("show stats: received and delivered counted", H.wait_for(
            lambda: (stats() or {}).get("received", 0) >= 3 and
            (stats() or {}).get("delivered", 0) >= 2, 15), stats())
        C.check("show stats: deferrals counted", (stats() or {}).get(
            "deferred", 0) >= 2, stats())
        rc, out, _ = ctl(d, "show", "stats")
        C.check("show stats: text form, same words",
                rc == 0 and "queue_size=" in out and "delivered=" in out,
                out)
        rc, out, _ = ctl(d, "stop")
        C.check("stop: exit 0 once the daemon is gone",
                rc == 0 and not d.alive() or H.wait_for(
                    lambda: not d.alive(), 5), out)
        rc, out, _ = ctl(d, "status")
        C.check("status when stopped: exit 1", rc == 1, out)
    finally:
        d.stop()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001
        C.error("ran to its end", e)
    H.keep_or_remove_tmp(C.failed)
    sys.exit(C.finish())
