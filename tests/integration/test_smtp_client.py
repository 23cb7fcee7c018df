#!/usr/bin/env python3
"""The SMTP client engine (deliver/smtp_client.c) through its driver
(tests/smtp_client_driver) against real servers on loopback: Postfix's
smtp-sink, aiosmtpd (STARTTLS and AUTH), and a scripted Python server for
the failure cases (refused, hanging, 421 greeting, per-recipient 4xx/5xx,
5xx after DATA, SIZE, TLS policies, AUTH), and connection reuse (several
messages through one client: kept sessions, RSET, idle sessions the server
closed). Each check prints one line; the
last line is "N passed, N failed". smtp-sink or aiosmtpd missing: their
checks are skipped (the scripted server covers the engine anyway)."""

import base64
import glob
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402

C = H.Checker()
BASE = H.make_tmp_base("smalt-smtpc.")
BUILD = os.environ.get("SMALT_BUILD", "build")
DRIVER = os.path.join(BUILD, "tests", "smtp_client_driver")
T = "2"  # seconds, every timeout of the engine
BAD_EXITS = []  # driver runs that failed or had a sanitizer report


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def write_msg(name, data):
    path = os.path.join(BASE, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


MSG = write_msg("m.txt", b"Subject: test\r\n\r\nhello\r\n.leading dot\r\n"
                b"..two dots\r\n.\r\nlast line\r\n")


def drive(targets, rcpts, policy, sender, msg, extra, timeout):
    """Runs the driver: (stdout, raw output, start, end)."""
    args = [DRIVER, "-T", T, "-t", policy, "-f", sender, "-m", msg]
    for t in targets:
        args += ["-a", "%s,%s,%d" % t]
    args += list(extra)
    args += list(rcpts)
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or "Sanitizer" in p.stderr:
        BAD_EXITS.append((args, p.returncode, p.stderr[-3000:]))
    return p.stdout, p.stdout + p.stderr, t0, time.time()


def run(targets, rcpts, policy="none", sender="s@example.test", msg=MSG,
        extra=(), timeout=30):
    stdout, raw, t0, t1 = drive(targets, rcpts, policy, sender, msg, extra,
                                timeout)
    out = parse(stdout.splitlines())
    out.update(elapsed=t1 - t0, raw=raw, t0=t0, t1=t1)
    return out


def run_many(targets, rcpts, n, policy="none", sender="s@example.test",
             msg=MSG, extra=(), timeout=60):
    """The message n times through one driver (-n): a list of outcomes,
    one per "message=" block, and the whole run (raw, elapsed, t0, t1,
    cancelled)."""
    stdout, raw, t0, t1 = drive(targets, rcpts, policy, sender, msg,
                                ["-n", str(n)] + list(extra), timeout)
    blocks = []
    for line in stdout.splitlines():
        if line.startswith("message="):
            blocks.append([])
        elif blocks and line != "cancelled":
            blocks[-1].append(line)
    outs = [parse(b) for b in blocks]
    whole = {"raw": raw, "elapsed": t1 - t0, "t0": t0, "t1": t1,
             "cancelled": "cancelled" in stdout.splitlines()}
    return outs, whole


def parse(lines):
    out = {"rcpt": {}, "tried_ip": []}
    for line in lines:
        if line.startswith("rcpt="):
            parts = {}
            head, rest = line.split(" reason=", 1)
            for kv in head.split(" "):
                k, v = kv.split("=", 1)
                parts[k] = v
            parts["reason"] = rest
            out["rcpt"][parts["rcpt"]] = parts
        elif line.startswith("tried_ip="):
            out["tried_ip"].append(line)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
        else:
            out[line] = True
    return out


def ready_ok(o, r):
    """ready_us set, and within the driver's run."""
    us = int(o.get("ready_us", "0"))
    return r["t0"] * 1e6 - 1e5 <= us <= r["t1"] * 1e6 + 1e5


def status(o, r):
    return o["rcpt"].get(r, {}).get("status")


# ---- a scripted server ---------------------------------------------------

class Fake:
    """One listening socket; each connection follows the options. What
    clients sent is kept in self.sessions: dicts with "cmds", "msgs",
    "tls", "auth", "idx" (its number, from 0) and "mails" (MAIL commands
    so far). mail, data, dot and close_after may be functions of that
    dict; after_dot too:
    what the server does once it answered a dot (None, "close", "421":
    says 421 and closes, "421 open": says 421 and hangs, "hang": says
    nothing more)."""

    def __init__(self, greeting="220 fake.test ESMTP", ext=("PIPELINING",
                 "8BITMIME"), ehlo=None, helo="250 fake.test",
                 mail="250 2.1.0 Ok", rcpt=None, data="354 go",
                 dot="250 2.0.0 Ok: queued as ABC", hang=False,
                 hang_after=None, close_after=None, starttls_ctx=None,
                 tls_garbage=False, implicit_ctx=None, auth=None,
                 auth_reply="235 2.7.0 Authentication successful",
                 family=socket.AF_INET, after_dot=None, rset="250 2.0.0 Ok"):
        self.o = dict(locals())
        del self.o["self"]
        self.sessions = []
        self.sock = socket.socket(family)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1",
                        0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def close(self):
        self.stop = True
        try:
            self.sock.close()
        except OSError:
            pass

    def loop(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        s = {"cmds": [], "msgs": [], "tls": False, "auth": None,
             "idx": len(self.sessions), "mails": 0}
        self.sessions.append(s)
        try:
            self.session(c, s)
        except (OSError, ssl.SSLError, ValueError) as e:
            s["error"] = repr(e)
        finally:
            try:
                c.close()
            except OSError:
                pass

    def session(self, c, s):
        o = self.o
        c.settimeout(20)
        if o["implicit_ctx"] is not None:
            c = o["implicit_ctx"].wrap_socket(c, server_side=True)
            s["tls"] = True
        if o["hang"]:
            time.sleep(8)
            return
        f = c.makefile("rb")

        def say(line):
            c.sendall(line.encode() + b"\r\n")

        def opt(name):
            v = o[name]
            return v(s) if callable(v) else v

        say(o["greeting"])
        if not o["greeting"].startswith("2"):
            f.readline()
            return
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            s["cmds"].append(cmd)
            verb = cmd.split(" ")[0].upper()
            if o["hang_after"] == verb:
                time.sleep(8)
                return
            if opt("close_after") == verb:
                return
            if verb == "EHLO":
                if o["ehlo"]:
                    say(o["ehlo"])
                    continue
                ext = list(o["ext"])
                if o["starttls_ctx"] is not None and not s["tls"]:
                    ext.append("STARTTLS")
                if o["auth"] is not None:
                    ext.append("AUTH " + o["auth"][0])
                lines = ["fake.test"] + ext
                for i, e in enumerate(lines):
                    say("250%s%s" % ("-" if i < len(lines) - 1 else " ", e))
            elif verb == "HELO":
                say(o["helo"])
            elif verb == "STARTTLS":
                if o["tls_garbage"] == "inject":
                    c.sendall(b"220 2.0.0 Ready\r\n250 2.1.0 injected\r\n")
                    time.sleep(1)
                    return
                say("220 2.0.0 Ready to start TLS")
                if o["tls_garbage"]:
                    time.sleep(0.3)
                    c.sendall(b"this is no TLS\r\n" * 20)
                    return
                c = o["starttls_ctx"].wrap_socket(c, server_side=True)
                c.settimeout(20)
                f = c.makefile("rb")
                s["tls"] = True
            elif verb == "AUTH":
                mech = cmd.split(" ")[1].upper()
                if mech == "PLAIN":
                    raw = base64.b64decode(cmd.split(" ")[2])
                    s["auth"] = tuple(x.decode() for x in raw.split(b"\0")[1:])
                else:
                    say("334 VXNlcm5hbWU6")
                    u = base64.b64decode(f.readline().strip()).decode()
                    say("334 UGFzc3dvcmQ6")
                    pw = base64.b64decode(f.readline().strip()).decode()
                    s["auth"] = (u, pw)
                ok = s["auth"] == tuple(o["auth"][1:])
                say(o["auth_reply"] if ok else
                    "535 5.7.8 Error: authentication failed")
            elif verb == "MAIL":
                s["ok_rcpts"] = 0
                s["mails"] += 1
                r = opt("mail")
                s["in_mail"] = r.startswith("2")
                say(r)
            elif verb == "RCPT" and not s.get("in_mail"):
                say("503 5.5.1 Error: need MAIL command")
            elif verb == "RCPT":
                addr = cmd[cmd.index("<") + 1:cmd.index(">")]
                r = o["rcpt"](addr) if o["rcpt"] else "250 2.1.5 Ok"
                if r.startswith("2"):
                    s["ok_rcpts"] = s.get("ok_rcpts", 0) + 1
                say(r)
            elif verb == "DATA":
                if not s.get("ok_rcpts"):
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                r = opt("data")
                say(r)
                if not r.startswith("354"):
                    continue
                if o["hang_after"] == "BODY":  # stops reading
                    time.sleep(8)
                    return
                buf = H.read_smtp_data(f)
                if buf is None:
                    return
                s["msgs"].append(buf)
                if o["hang_after"] == "DOT":
                    time.sleep(8)
                    return
                say(opt("dot"))
                s["ok_rcpts"] = 0
                s["in_mail"] = False
                after = opt("after_dot")
                if after == "close":
                    return
                if after in ("421", "421 open"):
                    say("421 4.4.2 fake.test Error: timeout exceeded")
                    if after == "421 open":  # and reads no more
                        time.sleep(8)
                    return
                if after == "hang":
                    time.sleep(8)
                    return
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            elif verb == "RSET":
                s["ok_rcpts"] = 0
                s["in_mail"] = False
                say(o["rset"])
            else:
                say("502 5.5.2 Error: command not recognized")


def unstuff(data):
    out = []
    for ln in data.split(b"\r\n"):
        out.append(ln[1:] if ln.startswith(b".") else ln)
    return b"\r\n".join(out)


def section(title):
    print("# %s" % title, flush=True)


def guarded(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        C.error(fn.__name__, e)


# ---- certificates --------------------------------------------------------

def make_certs():
    H.make_test_ca_and_cert(BASE, "smalt test CA",
                            "DNS:localhost,DNS:mx.smalt.test,IP:127.0.0.1")
    H.make_self_signed(BASE, "self", "localhost",
                       "subjectAltName=DNS:localhost")


def server_ctx(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(BASE, cert), os.path.join(BASE, key))
    return ctx


# ---- the checks ----------------------------------------------------------

def t_sink():
    section("smtp-sink: pipelining, dot-stuffing, 8BITMIME, 1 MB, errors")
    if not os.path.exists(H.SMTP_SINK):
        print("skip - smtp-sink not installed")
        return
    dumpdir = os.path.join(BASE, "sink")
    os.mkdir(dumpdir)
    os.chmod(dumpdir, 0o777)
    procs = []

    def sink(*opts, out=None):
        port = free_port()
        p = H.start_smtp_sink(list(opts) + ["127.0.0.1:%d" % port, "10"],
                              stdout=out or subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        procs.append(p)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        return port

    try:
        port = sink("-d", os.path.join(dumpdir, "%M."))
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test", "b@x.test"],
                extra=["-8"])
        C.check("sink: delivered to both", status(o, "a@x.test") == "sent"
                and status(o, "b@x.test") == "sent", o["raw"])
        C.check("sink: relay names host[ip]:port",
                o.get("relay") == "mx.test[127.0.0.1]:%d" % port, o["raw"])
        time.sleep(0.3)
        dumps = glob.glob(os.path.join(dumpdir, "*"))
        got = open(dumps[0], "rb").read() if dumps else b""
        body = got.split(b"\n\n", 1)[1] if b"\n\n" in got else b""
        body = body[:-1]  # smtp-sink's dump ends with an empty line
        C.check("sink: BODY=8BITMIME with an 8-bit message",
                b"BODY=8BITMIME" in got, got[:400])
        want = open(MSG, "rb").read().replace(b"\r\n", b"\n")
        want = want.split(b"\n\n", 1)[1]
        C.check("sink: leading dots arrive intact (dot-stuffed)",
                body == want, repr(body))
        for d in dumps:
            os.unlink(d)

        big = b"Subject: big\r\n\r\n" + b"".join(
            (b".%07d " % i) + b"x" * 60 + b"\r\n" for i in range(15000))
        bigf = write_msg("big.txt", big)
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test"], msg=bigf)
        C.check("sink: 1 MB message delivered", status(o, "a@x.test") ==
                "sent", o["raw"])
        time.sleep(0.3)
        dumps = glob.glob(os.path.join(dumpdir, "*"))
        got = open(dumps[0], "rb").read() if dumps else b""
        body = got.split(b"\n\n", 1)[1] if b"\n\n" in got else b""
        body = body[:-1]  # smtp-sink's dump ends with an empty line
        C.check("sink: 1 MB message arrives whole, dots intact",
                body == big.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1],
                "%d vs %d octets" % (len(body), len(big)))

        port = sink("-p", "-r", "RCPT")
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test"])
        C.check("sink: 4xx to RCPT defers (no pipelining)",
                status(o, "a@x.test") == "deferred" and
                "(in reply to RCPT TO command)" in o["rcpt"]["a@x.test"]
                ["reason"], o["raw"])
        port = sink("-f", ".")
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test", "b@x.test"])
        C.check("sink: 5xx after DATA bounces all",
                status(o, "a@x.test") == "bounced" and
                status(o, "b@x.test") == "bounced" and
                "(in reply to end of DATA command)" in
                o["rcpt"]["a@x.test"]["reason"], o["raw"])
        port = sink("-Q", "CONNECT")
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test"])
        C.check("sink: 421 greeting: host failure, deferred",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and
                "refused to talk to me: 421" in o.get("host_reason", ""),
                o["raw"])
        port = sink("-e")
        o = run([("mx.test", "127.0.0.1", port)], ["a@x.test"])
        C.check("sink: no ESMTP: HELO fallback delivers",
                status(o, "a@x.test") == "sent", o["raw"])

        # -c: "sess=N quit=N mesg=N" as sessions end and dots arrive
        def counters(path, want):
            last = [""]
            for _ in range(40):  # the last session ends after our exit
                text = open(path, "rb").read().decode()
                last = [x for x in text.replace("\n", "\r").split("\r")
                        if x.startswith("sess=")] or [""]
                if last[-1] == want:
                    break
                time.sleep(0.05)
            return last[-1]

        # (sink()'s readiness probe is a session too)
        for keep, nosess in ((True, "sess=2 quit=1 mesg=3"),
                             (False, "sess=4 quit=3 mesg=3")):
            cpath = os.path.join(BASE, "sink-c-%d" % keep)
            with open(cpath, "wb") as cf:
                port = sink("-c", out=cf)
            outs, r = run_many([("mx.test", "127.0.0.1", port)],
                               ["a@x.test", "b@x.test"], 3,
                               extra=["-k"] if keep else [])
            got = counters(cpath, nosess)
            tag = "keep_open" if keep else "no keep_open"
            C.check("sink, %s: 3 messages, all delivered" % tag,
                    len(outs) == 3 and all(
                        status(o, "a@x.test") == "sent" and
                        status(o, "b@x.test") == "sent" for o in outs),
                    r["raw"])
            C.check("sink, %s: %s sessions, QUITs" % (
                tag, "one" if keep else "3"), got == nosess,
                    (got, r["raw"]))
            C.check("sink, %s: kept=%d, ready_us in the run" % (tag, keep),
                    all(o.get("kept") == str(int(keep)) and ready_ok(o, r)
                        for o in outs), r["raw"])
    finally:
        for p in procs:
            p.terminate()
            p.wait()


def t_next_address():
    section("next address: refused, hanging, 421")
    closed = free_port()
    f = Fake()
    try:
        o = run([("mx1.test", "127.0.0.1", closed),
                 ("mx2.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("refused port: next address delivers",
                status(o, "a@x.test") == "sent" and o.get("tried") == "2"
                and o.get("host_failed") == "0" and
                o.get("relay") == "mx2.test[127.0.0.1]:%d" % f.port,
                o["raw"])
        C.check("refused port: listed as failed",
                o["tried_ip"][:1] == ["tried_ip=127.0.0.1 failed=1"],
                o["raw"])
        o = run([("mx1.test", "127.0.0.1", closed)], ["a@x.test"])
        C.check("refused, last address: deferred, Postfix's words",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and o.get("relay") == "none" and
                o.get("host_reason") == "connect to mx1.test[127.0.0.1]:%d:"
                " Connection refused" % closed and
                o["rcpt"]["a@x.test"]["dsn"] == "4.4.1", o["raw"])
        C.check("no session got to MAIL: ready_us=0, not kept",
                o.get("ready_us") == "0" and o.get("kept") == "0", o["raw"])
        o = run([("mx1.test", "127.0.0.1", closed)], ["a@x.test"],
                extra=["-k"])
        C.check("keep_open, refused: deferred, not kept",
                status(o, "a@x.test") == "deferred" and
                o.get("kept") == "0" and o.get("host_failed") == "1",
                o["raw"])
    finally:
        f.close()
    h = Fake(hang=True)
    f = Fake()
    try:
        o = run([("hang.test", "127.0.0.1", h.port),
                 ("mx2.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("silent server: one timeout, then next address",
                status(o, "a@x.test") == "sent" and
                1.5 < o["elapsed"] < 6, "%.1fs %s" % (o["elapsed"],
                                                       o["raw"]))
        o = run([("hang.test", "127.0.0.1", h.port)], ["a@x.test"])
        C.check("silent server alone: deferred, timed out greeting",
                status(o, "a@x.test") == "deferred" and
                "conversation with hang.test[127.0.0.1] timed out while "
                "receiving the initial server greeting" in
                o.get("host_reason", ""), o["raw"])
        o = run([("hang.test", "127.0.0.1", h.port)], ["a@x.test"],
                extra=["-c", "300"])
        C.check("cancel: no outcome, prompt",
                "cancelled" in o and "relay" not in o and o["elapsed"] < 1.5,
                o["raw"])
    finally:
        h.close()
        f.close()
    try:
        f = Fake(family=socket.AF_INET6)
    except OSError:
        f = None
        print("skip - no IPv6 loopback")
    if f is not None:
        try:
            o = run([("mx6.test", "::1", f.port)], ["a@x.test"])
            C.check("IPv6: delivered, relay host[::1]:port",
                    status(o, "a@x.test") == "sent" and
                    o.get("relay") == "mx6.test[::1]:%d" % f.port, o["raw"])
        finally:
            f.close()
    g = Fake(greeting="421 4.3.2 busy")
    f = Fake()
    try:
        o = run([("busy.test", "127.0.0.1", g.port),
                 ("mx2.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("421 greeting: next address", status(o, "a@x.test") ==
                "sent" and o["tried_ip"][0].endswith("failed=1"), o["raw"])
        o = run([("busy.test", "127.0.0.1", g.port)], ["a@x.test"])
        C.check("421 greeting alone: deferred with its DSN",
                status(o, "a@x.test") == "deferred" and
                o["rcpt"]["a@x.test"]["dsn"] == "4.3.2" and
                o.get("host_reason") == "host busy.test[127.0.0.1] refused "
                "to talk to me: 421 4.3.2 busy", o["raw"])
    finally:
        g.close()
        f.close()


def t_replies():
    section("replies: per recipient, MAIL, DATA, SIZE, lost connection")

    def rc(addr):
        if addr.startswith("bad"):
            return "550 5.1.1 <%s>: Recipient address rejected: unknown" % addr
        if addr.startswith("later"):
            return "450 try later"
        return "250 2.1.5 Ok"

    for pipe in (True, False):
        tag = "pipelined" if pipe else "one by one"
        f = Fake(rcpt=rc, ext=("PIPELINING",) if pipe else ())
        try:
            o = run([("mx.test", "127.0.0.1", f.port)],
                    ["good@x.test", "bad@x.test", "later@x.test"])
            C.check("%s: sent / bounced / deferred" % tag,
                    status(o, "good@x.test") == "sent" and
                    status(o, "bad@x.test") == "bounced" and
                    status(o, "later@x.test") == "deferred", o["raw"])
            C.check("%s: Postfix-shaped reason, enhanced DSN" % tag,
                    o["rcpt"].get("bad@x.test", {}).get("reason") ==
                    "host mx.test[127.0.0.1] said: 550 5.1.1 <bad@x.test>: "
                    "Recipient address rejected: unknown (in reply to RCPT "
                    "TO command)" and
                    o["rcpt"]["bad@x.test"]["dsn"] == "5.1.1" and
                    o["rcpt"]["later@x.test"]["dsn"] == "4.0.0", o["raw"])
            C.check("%s: one message went" % tag,
                    len(f.sessions) == 1 and len(f.sessions[0]["msgs"]) == 1,
                    f.sessions)
        finally:
            f.close()
        f = Fake(rcpt=rc, ext=("PIPELINING",) if pipe else ())
        try:
            o = run([("mx.test", "127.0.0.1", f.port)],
                    ["bad@x.test", "later@x.test"])
            C.check("%s: nobody accepted: no message" % tag,
                    status(o, "bad@x.test") == "bounced" and
                    status(o, "later@x.test") == "deferred" and
                    not f.sessions[0]["msgs"] and
                    (pipe or "DATA" not in f.sessions[0]["cmds"]),
                    (o["raw"], f.sessions))
        finally:
            f.close()
    f = Fake(mail="553 5.7.1 sender refused")
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test", "b@x.test"],
                sender="")
        C.check("5xx to MAIL: all bounced, null sender as <>",
                status(o, "a@x.test") == "bounced" and
                status(o, "b@x.test") == "bounced" and
                "(in reply to MAIL FROM command)" in
                o["rcpt"]["a@x.test"]["reason"] and
                f.sessions[0]["cmds"][1].startswith("MAIL FROM:<>"),
                (o["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(dot="451 4.3.0 queue trouble")
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test", "b@x.test"])
        C.check("4xx after DATA: all deferred",
                status(o, "a@x.test") == "deferred" and
                o["rcpt"]["a@x.test"]["reason"] ==
                "host mx.test[127.0.0.1] said: 451 4.3.0 queue trouble (in "
                "reply to end of DATA command)" and
                o.get("host_failed") == "0", o["raw"])
    finally:
        f.close()
    f = Fake(data="554 5.5.1 no valid recipients")
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("5xx to DATA: bounced", status(o, "a@x.test") == "bounced"
                and "(in reply to DATA command)" in
                o["rcpt"]["a@x.test"]["reason"], o["raw"])
    finally:
        f.close()
    f = Fake(ext=("PIPELINING", "SIZE 50"))
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("SIZE exceeded: bounced 5.3.4 without MAIL",
                status(o, "a@x.test") == "bounced" and
                o["rcpt"]["a@x.test"]["dsn"] == "5.3.4" and
                "exceeds size limit 50 of server mx.test[127.0.0.1]" in
                o["rcpt"]["a@x.test"]["reason"] and
                not any(c.startswith("MAIL") for c in f.sessions[0]["cmds"]),
                (o["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(ext=("SIZE 100000",))
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("SIZE within limit: SIZE= in MAIL FROM, delivered",
                status(o, "a@x.test") == "sent" and
                "SIZE=%d" % os.path.getsize(MSG) in f.sessions[0]["cmds"][1],
                (o["raw"], f.sessions))
        C.check("dot-stuffing on the wire",
                f.sessions[0]["msgs"] and unstuff(f.sessions[0]["msgs"][0])
                == open(MSG, "rb").read() and b"\r\n..leading" in
                f.sessions[0]["msgs"][0], f.sessions)
    finally:
        f.close()
    f = Fake(ext=(), hang_after="DOT")
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("no reply to the final dot: deferred, may be sent twice",
                status(o, "a@x.test") == "deferred" and "timed out while "
                "sending end of data -- message may be sent more than once"
                in o["rcpt"]["a@x.test"]["reason"] and o["elapsed"] < 6,
                o["raw"])
    finally:
        f.close()
    f = Fake(hang_after="BODY")
    huge = write_msg("huge.txt", b"Subject: huge\r\n\r\n" +
                     (b"y" * 998 + b"\r\n") * 16000)
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"], msg=huge)
        C.check("server stops reading the message: one data timeout",
                status(o, "a@x.test") == "deferred" and "timed out while "
                "sending message body" in o["rcpt"]["a@x.test"]["reason"]
                and o["elapsed"] < 6, "%.1fs %s" % (o["elapsed"], o["raw"]))
    finally:
        f.close()
    f = Fake(ext=(), close_after="RCPT")
    g = Fake()
    try:
        o = run([("mx.test", "127.0.0.1", f.port),
                 ("mx2.test", "127.0.0.1", g.port)], ["a@x.test"])
        C.check("connection lost in the transaction: deferred, no next",
                status(o, "a@x.test") == "deferred" and
                "lost connection with mx.test[127.0.0.1] while sending "
                "RCPT TO" in o["rcpt"]["a@x.test"]["reason"] and
                not g.sessions, o["raw"])
    finally:
        f.close()
        g.close()
    f = Fake(ehlo="502 5.5.2 no EHLO here", ext=("PIPELINING",))
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("5xx to EHLO: HELO, delivered",
                status(o, "a@x.test") == "sent" and
                f.sessions[0]["cmds"][1].startswith("HELO "), f.sessions)
    finally:
        f.close()
    for name, greet in (("malformed greeting", "hello there"),
                        ("greeting line too long", "220 " + "x" * 70000),
                        ("mixed codes in a multi-line reply",
                         "220-fine\r\n421 not fine")):
        f = Fake(greeting=greet)
        g = Fake()
        try:
            o = run([("bad.test", "127.0.0.1", f.port),
                     ("mx2.test", "127.0.0.1", g.port)], ["a@x.test"])
            C.check("%s: host failure, next address" % name,
                    status(o, "a@x.test") == "sent" and
                    o["tried_ip"][0].endswith("failed=1") and
                    o["elapsed"] < 1.5, o["raw"])
        finally:
            f.close()
            g.close()
    f = Fake(ehlo="421 4.7.0 go away")
    try:
        o = run([("mx.test", "127.0.0.1", f.port)], ["a@x.test"])
        C.check("4xx to EHLO: host failure",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and "(in reply to EHLO command)"
                in o.get("host_reason", ""), o["raw"])
    finally:
        f.close()


def verbs(sess):
    return [c.split(" ")[0].upper() for c in sess["cmds"]]


def t_reuse():
    section("connection reuse: keep_open, reuse, RSET, idle sessions lost")
    AB = ["a@x.test", "b@x.test"]

    def mx(f):
        return [("mx.test", "127.0.0.1", f.port)]

    def all_sent(outs, n, rcpts=AB):
        return len(outs) == n and all(status(o, r) == "sent"
                                      for o in outs for r in rcpts)

    for pipe in (True, False):
        tag = "pipelined" if pipe else "one by one"
        txn = ["MAIL", "RCPT", "RCPT", "DATA"]
        for wait in ([], ["-w", "150"]):
            wtag = tag + (", reuse after a pause" if wait else
                          ", reuse from the callback")
            f = Fake(ext=("PIPELINING",) if pipe else ())
            try:
                outs, r = run_many(mx(f), AB, 3, extra=["-k"] + wait)
                C.check("%s: 3 messages over one connection" % wtag,
                        all_sent(outs, 3) and len(f.sessions) == 1 and
                        len(f.sessions[0]["msgs"]) == 3,
                        (r["raw"], f.sessions))
                C.check("%s: one EHLO, no RSET, QUIT only at the end" %
                        wtag, f.sessions and verbs(f.sessions[0]) ==
                        ["EHLO"] + txn * 3 + ["QUIT"], f.sessions)
                us = [int(o.get("ready_us", "0")) for o in outs]
                C.check("%s: kept, the session named, ready_us rising" %
                        wtag, all(o.get("kept") == "1" and
                                  o.get("relay") == "mx.test[127.0.0.1]:%d"
                                  % f.port and o.get("tried") == "1" and
                                  o["tried_ip"] ==
                                  ["tried_ip=127.0.0.1 failed=0"] and
                                  o.get("host_failed") == "0" and
                                  ready_ok(o, r) for o in outs) and
                        us == sorted(us), r["raw"])
            finally:
                f.close()
    f = Fake()
    try:
        outs, r = run_many(mx(f), AB, 3)
        C.check("no keep_open: a connection and a QUIT per message",
                all_sent(outs, 3) and len(f.sessions) == 3 and
                all(verbs(x) == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA",
                                 "QUIT"] for x in f.sessions) and
                all(o.get("kept") == "0" and ready_ok(o, r) for o in outs),
                (r["raw"], f.sessions))
    finally:
        f.close()

    for after in ("close", "421"):
        for wait in (["-w", "300"], []):
            name = "server %s after each message%s" % (
                "closes" if after == "close" else "says 421 and closes",
                ", noticed while idle" if wait else ", racing the reuse")
            f = Fake(after_dot=after)
            try:
                outs, r = run_many(mx(f), AB, 3, extra=["-k"] + wait)
                C.check("%s: all delivered, a new connection each" % name,
                        all_sent(outs, 3) and len(f.sessions) == 3 and
                        all(len(x["msgs"]) == 1 for x in f.sessions),
                        (r["raw"], f.sessions))
                C.check("%s: no host failure, one address tried" % name,
                        all(o.get("host_failed") == "0" and
                            o.get("tried") == "1" and
                            o["tried_ip"] == ["tried_ip=127.0.0.1 failed=0"]
                            for o in outs), r["raw"])
            finally:
                f.close()
    f = Fake(close_after=lambda s: "MAIL" if s["idx"] == 0 and s["mails"]
             else None)
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k", "-w", "100"])
        C.check("idle session lost as MAIL goes: a new connection "
                "delivers", all_sent(outs, 2) and len(f.sessions) == 2 and
                outs[1].get("host_failed") == "0" and
                outs[1]["tried_ip"] == ["tried_ip=127.0.0.1 failed=0"] and
                len(f.sessions[1]["msgs"]) == 1, (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(after_dot=lambda s: "421 open" if s["idx"] == 0 else None)
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k", "-w", "300"])
        C.check("421 while idle, the socket left open: dropped at once, "
                "a new connection delivers", all_sent(outs, 2) and
                len(f.sessions) == 2 and outs[1].get("host_failed") == "0"
                and r["elapsed"] < 1.5 and
                verbs(f.sessions[0]) == ["EHLO", "MAIL", "RCPT", "RCPT",
                                         "DATA"],
                "%.1fs %s %s" % (r["elapsed"], r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(after_dot=lambda s: "hang" if s["idx"] == 0 else None)
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k"])
        C.check("idle session stops answering: MAIL times out, a new "
                "connection delivers",
                all_sent(outs, 2) and len(f.sessions) == 2 and
                outs[1].get("host_failed") == "0" and
                outs[1].get("tried") == "1" and
                1.5 < r["elapsed"] < 6, "%.1fs %s" % (r["elapsed"], r["raw"]))
    finally:
        f.close()
    f = Fake(mail=lambda s: "421 4.7.0 fake.test too many messages"
             if s["mails"] > 1 else "250 2.1.0 Ok")
    try:
        outs, r = run_many(mx(f), AB, 3, extra=["-k"])
        C.check("421 to MAIL on a reused session: a new connection",
                all_sent(outs, 3) and len(f.sessions) == 3 and
                all(o.get("host_failed") == "0" for o in outs),
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(close_after=lambda s: "RCPT" if s["mails"] == 2 else None)
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k"])
        C.check("reused session lost after MAIL's reply: deferred, as any",
                len(outs) == 2 and all_sent(outs[:1], 1) and
                status(outs[1], "a@x.test") == "deferred" and
                "lost connection with mx.test[127.0.0.1] while sending "
                "RCPT TO" in outs[1]["rcpt"]["a@x.test"]["reason"] and
                outs[1].get("kept") == "0" and len(f.sessions) == 1,
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(mail="421 4.7.0 fake.test go away")
    try:
        outs, r = run_many(mx(f), ["a@x.test"], 2, extra=["-k"])
        C.check("421 to MAIL on a new session: deferred, no loop",
                len(outs) == 2 and all(status(o, "a@x.test") == "deferred"
                                       for o in outs) and
                len(f.sessions) == 2 and r["elapsed"] < 3,
                (r["raw"], f.sessions))
    finally:
        f.close()

    for code, st in (("554 5.7.1 rejected as spam", "bounced"),
                     ("451 4.3.0 queue trouble", "deferred")):
        f = Fake(dot=lambda s, code=code: code if len(s["msgs"]) == 1
                 else "250 2.0.0 Ok: queued")
        try:
            outs, r = run_many(mx(f), AB, 2, extra=["-k"])
            C.check("%sxx to the dot: %s, the session kept for the next" %
                    (code[0], st),
                    len(outs) == 2 and status(outs[0], "a@x.test") == st and
                    status(outs[0], "b@x.test") == st and
                    "(in reply to end of DATA command)" in
                    outs[0]["rcpt"]["a@x.test"]["reason"] and
                    outs[0].get("kept") == "1" and
                    status(outs[1], "a@x.test") == "sent" and
                    len(f.sessions) == 1 and "RSET" not in
                    verbs(f.sessions[0]), (r["raw"], f.sessions))
        finally:
            f.close()

    for pipe in (True, False):
        tag = "pipelined" if pipe else "one by one"
        calls = []

        def rc(addr, calls=calls):
            calls.append(addr)
            return ("550 5.1.1 <%s>: unknown" % addr if len(calls) <= 2
                    else "250 2.1.5 Ok")

        f = Fake(rcpt=rc, ext=("PIPELINING",) if pipe else ())
        try:
            outs, r = run_many(mx(f), AB, 2, extra=["-k"])
            first = ["MAIL", "RCPT", "RCPT"] + (["DATA"] if pipe else [])
            C.check("%s: every RCPT refused: RSET, the session reused" % tag,
                    len(outs) == 2 and status(outs[0], "a@x.test") ==
                    "bounced" and status(outs[0], "b@x.test") == "bounced"
                    and outs[0].get("kept") == "1" and
                    status(outs[1], "a@x.test") == "sent" and
                    len(f.sessions) == 1 and verbs(f.sessions[0]) ==
                    ["EHLO"] + first + ["RSET", "MAIL", "RCPT", "RCPT",
                                        "DATA", "QUIT"] and
                    len(f.sessions[0]["msgs"]) == 1, (r["raw"], f.sessions))
        finally:
            f.close()
    calls = []

    def rc2(addr):  # the first message accepted, the second refused
        calls.append(addr)
        return ("250 2.1.5 Ok" if len(calls) <= 2 else
                "550 5.1.1 <%s>: unknown" % addr)

    f = Fake(rcpt=rc2)
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k"])
        C.check("pipelined: refused after accepted: each message its own "
                "results", len(outs) == 2 and all_sent(outs[:1], 1) and
                all(status(outs[1], a) == "bounced" and
                    "(in reply to RCPT TO command)" in
                    outs[1]["rcpt"][a]["reason"] for a in AB) and
                outs[1].get("kept") == "1" and len(f.sessions) == 1 and
                len(f.sessions[0]["msgs"]) == 1, (r["raw"], f.sessions))
    finally:
        f.close()
    for pipe in (True, False):
        tag = "pipelined" if pipe else "one by one"
        f = Fake(mail=lambda s: "553 5.7.1 sender refused" if s["mails"] == 1
                 else "250 2.1.0 Ok", ext=("PIPELINING",) if pipe else ())
        try:
            outs, r = run_many(mx(f), AB, 2, extra=["-k"])
            C.check("%s: MAIL refused: bounced, RSET, the session reused" %
                    tag, len(outs) == 2 and
                    status(outs[0], "a@x.test") == "bounced" and
                    "(in reply to MAIL FROM command)" in
                    outs[0]["rcpt"]["a@x.test"]["reason"] and
                    all_sent(outs[1:], 1) and len(f.sessions) == 1 and
                    verbs(f.sessions[0]).count("RSET") == 1 and
                    verbs(f.sessions[0])[-2:] == ["DATA", "QUIT"],
                    (r["raw"], f.sessions))
        finally:
            f.close()
    f = Fake(data=lambda s: "554 5.5.1 no data today" if s["mails"] == 1
             else "354 go")
    try:
        outs, r = run_many(mx(f), AB, 2, extra=["-k"])
        C.check("DATA refused: bounced, RSET, the session reused",
                len(outs) == 2 and status(outs[0], "a@x.test") == "bounced"
                and all_sent(outs[1:], 1) and len(f.sessions) == 1 and
                verbs(f.sessions[0]) == ["EHLO", "MAIL", "RCPT", "RCPT",
                                         "DATA", "RSET", "MAIL", "RCPT",
                                         "RCPT", "DATA", "QUIT"],
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(rset="502 5.5.2 no RSET here", ext=(),
             rcpt=lambda a: "550 5.1.1 unknown")
    try:
        outs, r = run_many(mx(f), ["a@x.test"], 2, extra=["-k"])
        C.check("RSET refused: QUIT, not kept; the next on a new "
                "connection", len(outs) == 2 and
                all(status(o, "a@x.test") == "bounced" and
                    o.get("kept") == "0" for o in outs) and
                len(f.sessions) == 2 and verbs(f.sessions[0]) ==
                ["EHLO", "MAIL", "RCPT", "RSET", "QUIT"],
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(ext=("PIPELINING", "SIZE 50"))
    try:
        outs, r = run_many(mx(f), ["a@x.test"], 2, extra=["-k"])
        C.check("SIZE bounce: kept without RSET, no MAIL",
                len(outs) == 2 and all(
                    status(o, "a@x.test") == "bounced" and
                    o["rcpt"]["a@x.test"]["dsn"] == "5.3.4" and
                    o.get("kept") == "1" and ready_ok(o, r) for o in outs)
                and len(f.sessions) == 1 and
                verbs(f.sessions[0]) == ["EHLO", "QUIT"],
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake()
    try:
        outs, r = run_many(mx(f), AB, 1, extra=["-k", "-c", "400"])
        time.sleep(0.2)
        C.check("cancel on a parked session: closed at once, no QUIT",
                all_sent(outs, 1) and outs[0].get("kept") == "1" and
                r["cancelled"] and r["elapsed"] < 2 and
                len(f.sessions) == 1 and "QUIT" not in
                verbs(f.sessions[0]) and "error" not in f.sessions[0],
                (r["raw"], f.sessions))
    finally:
        f.close()


def t_tls():
    section("TLS: may, encrypt, smtps")
    make_certs()
    ca = os.path.join(BASE, "ca.pem")
    good = server_ctx("srv.pem", "srv.key")
    selfs = server_ctx("self.pem", "self.key")
    f = Fake()
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        C.check("encrypt, not offered: deferred, host failure",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and
                o.get("host_reason") == "TLS is required, but was not "
                "offered by host localhost[127.0.0.1]" and
                not f.sessions[0]["msgs"], o["raw"])
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-C", ca])
        C.check("may, not offered: plain delivery",
                status(o, "a@x.test") == "sent", o["raw"])
    finally:
        f.close()
    f = Fake(starttls_ctx=good)
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        s = f.sessions[0]
        C.check("encrypt, trusted cert: delivered over TLS, EHLO again",
                status(o, "a@x.test") == "sent" and s["tls"] and
                [c.split(" ")[0] for c in s["cmds"]][:3] ==
                ["EHLO", "STARTTLS", "EHLO"], (o["raw"], s))
        o = run([("other.test", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        C.check("encrypt, name mismatch: host failure",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and "Server certificate not "
                "verified" in o.get("host_reason", ""), o["raw"])
        o = run([("127.0.0.1", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        C.check("encrypt, address literal checked as IP: delivered",
                status(o, "a@x.test") == "sent", o["raw"])
    finally:
        f.close()
    f = Fake(starttls_ctx=good, auth=("PLAIN", "joe", "s3cret"))
    try:
        outs, r = run_many([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                           3, policy="encrypt",
                           extra=["-C", ca, "-u", "joe", "-p", "s3cret",
                                  "-k"])
        C.check("encrypt + AUTH, kept: 3 messages, one TLS session, one "
                "AUTH", len(outs) == 3 and
                all(status(o, "a@x.test") == "sent" and o.get("kept") == "1"
                    for o in outs) and len(f.sessions) == 1 and
                f.sessions[0]["tls"] and verbs(f.sessions[0]) ==
                ["EHLO", "STARTTLS", "EHLO", "AUTH"] +
                ["MAIL", "RCPT", "DATA"] * 3 + ["QUIT"],
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(starttls_ctx=good, after_dot="close")
    try:
        outs, r = run_many([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                           2, policy="encrypt",
                           extra=["-C", ca, "-k", "-w", "300"])
        C.check("encrypt, server closes the idle TLS session: a new one "
                "delivers", len(outs) == 2 and
                all(status(o, "a@x.test") == "sent" and
                    o.get("host_failed") == "0" for o in outs) and
                len(f.sessions) == 2 and f.sessions[1]["tls"],
                (r["raw"], f.sessions))
    finally:
        f.close()
    f = Fake(starttls_ctx=selfs)
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        C.check("encrypt, untrusted cert: host failure, nothing sent",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and
                o["rcpt"]["a@x.test"]["dsn"] == "4.7.5" and
                "self-signed" in o.get("host_reason", "") and
                not f.sessions[0]["msgs"], o["raw"])
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-C", ca])
        C.check("may, self-signed: delivered over TLS",
                status(o, "a@x.test") == "sent" and f.sessions[-1]["tls"],
                o["raw"])
    finally:
        f.close()
    f = Fake(starttls_ctx=good, tls_garbage=True)
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-C", ca])
        C.check("may, handshake fails: once more in plain, delivered",
                status(o, "a@x.test") == "sent" and len(f.sessions) == 2 and
                "STARTTLS" not in f.sessions[1]["cmds"], (o["raw"],
                                                          f.sessions))
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca])
        C.check("encrypt, handshake fails: host failure",
                status(o, "a@x.test") == "deferred" and
                "Cannot start TLS" in o.get("host_reason", ""), o["raw"])
    finally:
        f.close()
    f = Fake(starttls_ctx=good, tls_garbage="inject")
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-C", ca])
        C.check("STARTTLS response injection: host failure",
                status(o, "a@x.test") == "deferred" and
                "after the STARTTLS reply" in o.get("host_reason", ""),
                o["raw"])
    finally:
        f.close()
    f = Fake(implicit_ctx=good)
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="smtps", extra=["-C", ca])
        C.check("smtps, trusted: delivered", status(o, "a@x.test") == "sent"
                and f.sessions[0]["tls"], o["raw"])
    finally:
        f.close()
    f = Fake(implicit_ctx=selfs)
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="smtps", extra=["-C", ca])
        C.check("smtps, untrusted: host failure",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1", o["raw"])
    finally:
        f.close()

    section("AUTH")
    for mech in ("PLAIN LOGIN", "LOGIN"):
        f = Fake(starttls_ctx=selfs, auth=(mech, "joe", "s3cret"))
        try:
            o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                    policy="may", extra=["-u", "joe", "-p", "s3cret"])
            C.check("AUTH %s over TLS: delivered" % mech.split()[0],
                    status(o, "a@x.test") == "sent" and
                    f.sessions[0]["auth"] == ("joe", "s3cret") and
                    f.sessions[0]["tls"], (o["raw"], f.sessions))
            o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                    policy="may", extra=["-u", "joe", "-p", "wrong"])
            C.check("AUTH %s refused: deferred, host failure" %
                    mech.split()[0],
                    status(o, "a@x.test") == "deferred" and
                    o.get("host_failed") == "1" and
                    o.get("host_reason", "").startswith(
                        "SASL authentication failed; server "
                        "localhost[127.0.0.1] said: 535 5.7.8"), o["raw"])
        finally:
            f.close()
    f = Fake(starttls_ctx=selfs, auth=("CRAM-MD5", "joe", "s3cret"))
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-u", "joe", "-p", "s3cret"])
        C.check("AUTH without PLAIN or LOGIN: deferred, no mechanism",
                status(o, "a@x.test") == "deferred" and
                "no mechanism available" in o.get("host_reason", ""),
                o["raw"])
    finally:
        f.close()
    f = Fake(auth=("PLAIN", "joe", "s3cret"))
    try:
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="may", extra=["-u", "joe", "-p", "s3cret"])
        C.check("AUTH under may without TLS: no password in clear",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and
                f.sessions[0]["auth"] is None, (o["raw"], f.sessions))
        o = run([("localhost", "127.0.0.1", f.port)], ["a@x.test"],
                policy="none", extra=["-u", "joe", "-p", "s3cret"])
        C.check("AUTH under none: plain text allowed",
                status(o, "a@x.test") == "sent" and
                f.sessions[-1]["auth"] == ("joe", "s3cret"), o["raw"])
    finally:
        f.close()


def t_aiosmtpd():
    section("aiosmtpd: STARTTLS and AUTH against a real implementation")
    py = H.aiosmtpd_python()
    if py is None:
        print("skip - aiosmtpd not installed")
        return
    port = free_port()
    spool = os.path.join(BASE, "aio")
    os.mkdir(spool)
    server = r'''
import asyncio, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
class H:
    async def handle_DATA(self, server, session, envelope):
        n = len(os.listdir(sys.argv[4]))
        with open(os.path.join(sys.argv[4], "%d" % n), "wb") as f:
            f.write(envelope.original_content)
        return "250 2.0.0 stored"
def auth(server, session, envelope, mechanism, data):
    return AuthResult(handled=False, success=(data.login == b"joe" and
                                             data.password == b"s3cret"))
c = Controller(H(), hostname="127.0.0.1", port=int(sys.argv[1]),
               tls_context=ctx, require_starttls=True,
               authenticator=auth, auth_require_tls=True)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
'''
    p = subprocess.Popen([py, "-c", server, str(port),
                          os.path.join(BASE, "srv.pem"),
                          os.path.join(BASE, "srv.key"), spool],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        p.stdout.readline()
        ca = os.path.join(BASE, "ca.pem")
        o = run([("localhost", "127.0.0.1", port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca, "-u", "joe", "-p",
                                         "s3cret"])
        got = open(os.path.join(spool, "0"), "rb").read() \
            if os.path.exists(os.path.join(spool, "0")) else b""
        C.check("aiosmtpd: STARTTLS verified + AUTH, delivered intact",
                status(o, "a@x.test") == "sent" and
                got == open(MSG, "rb").read(), (o["raw"], got))
        o = run([("localhost", "127.0.0.1", port)], ["a@x.test"],
                policy="encrypt", extra=["-C", ca, "-u", "joe", "-p", "no"])
        C.check("aiosmtpd: AUTH refused: deferred, host failure",
                status(o, "a@x.test") == "deferred" and
                o.get("host_failed") == "1" and "SASL authentication failed"
                in o.get("host_reason", ""), o["raw"])
    finally:
        p.stdin.close()
        p.wait(10)


def main():
    if not os.path.exists(DRIVER):
        print("no driver at %s" % DRIVER)
        return 1
    for fn in (t_sink, t_next_address, t_replies, t_reuse, t_tls,
               t_aiosmtpd):
        guarded(fn)
    C.check("driver: every run exited 0, no sanitizer report",
            not BAD_EXITS, BAD_EXITS)
    return H.finish_run(C)


if __name__ == "__main__":
    sys.exit(main())
