#!/usr/bin/env python3
"""The smtp and relay delivery channels and the per-host unavailability
cache (SPEC §2 show hosts, §3, §5, §7) end to end: the real smaltd takes
mail over SMTP and delivers it through MX lookups answered by dnsmasq on
loopback, to Postfix's smtp-sink, scripted Python servers (421 greetings,
per-recipient 4xx/5xx, silent servers, connection counters) and an
aiosmtpd smarthost that requires STARTTLS and AUTH.

Everything runs on loopback: dnsmasq on 127.0.0.1:high port
(`resolver`), every "remote" MX on its own 127.0.0.x address and on one
shared high port (`smtp_port`), smaltd on 127.0.0.1. Checks: delivery
via MX, one transaction for several recipients of a domain, MX fallback
and the implicit MX (A record), null MX and NXDOMAIN bounces, a host
down (421) shown by `smaltctl show hosts [--json]`, further mail
deferred without a connection, flush; the host retried by itself after
host_retry_min with every waiting message woken; per-recipient 5xx/4xx;
smtp_tls = encrypt without STARTTLS; the smarthost with STARTTLS +
verified certificate + AUTH, a wrong password and its fix, an
unverifiable certificate (no AUTH sent); the cache across a restart; the
RFC 1123 wake-up by an inbound connection from a down host's address;
config and routes fixes applied to queued mail; a silent server that
does not hold up other mail; destination_concurrency.

Three daemons: "a" (smtp_tls may, host_retry_min 10m), "b"
(host_retry_min 2s, destination_concurrency 2) and "c" (smtp_tls
encrypt, relayhost with STARTTLS and AUTH); retry_min is 1h everywhere,
so only the host cache, flush and wake-ups make mail move again.
SMALT_KEEP_TMP=1 keeps the temporary folder (logs) after a passing run.

Each check prints one line; the last line is "N passed, N failed".
Exit 77 (skipped) only when dnsmasq is not installed. Run as root (as
CI does): smaltd drops to its user, the auth file is made readable by it.
"""

import json
import os
import random
import re
import shutil
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402
from smalt_harness import Daemon  # noqa: E402

C = H.Checker()
BASE = H.make_tmp_base("smalt-relay.")
BUILD = os.environ.get("SMALT_BUILD", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build"))
SMALTCTL = os.path.join(BUILD, "cli", "smaltctl")
SENDMAIL = os.path.join(BUILD, "cli", "sendmail")
ROOT = os.geteuid() == 0
HOST = H.HOSTNAME
LOCAL_DOMAINS = "%s, localhost" % HOST
BOUNCEBOX = "bouncebox@%s" % HOST  # the sender of every test message
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?"
                     r"(?:Z|[+-]\d\d:\d\d)$")
DNSMASQ = next((p for p in ("/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq",
                            "/sbin/dnsmasq", "/usr/bin/dnsmasq",
                            shutil.which("dnsmasq") or "")
                if p and os.access(p, os.X_OK)), None)

# Where each "remote" host listens (all on SMTP_PORT).
IP = {
    "sink": "127.0.0.2",     # smtp-sink: mx.test, aonly.test, fix.test...
    "dead": "127.0.0.3",     # nothing listens: fb.test's first MX
    "sink2": "127.0.0.4",    # smtp-sink: fb.test's second MX
    "down": "127.0.0.5",     # 421, then accepts: down.test
    "wake": "127.0.0.6",     # refused, then accepts: wakeup.test
    "hang": "127.0.0.7",     # accepts and never greets: hang.test
    "multi": "127.0.0.8",    # records transactions: multi.test
    "retry": "127.0.0.9",    # 421, then accepts: retry.test (daemon B)
    "persist": "127.0.0.10",  # 421 throughout: persist.test
    "perrcpt": "127.0.0.11",  # 250/550/450 per recipient: perrcpt.test
    "conc": "127.0.0.12",    # slow greeting, counts sessions at once
    "lost": "127.0.0.13",    # hangs up after RCPT: lost.test
}

PROCS = []   # helper processes (dnsmasq, smtp-sink, aiosmtpd) to stop
SERVERS = []  # Srv instances to close


# ---------------------------------------------------------------- helpers
section = C.section
write = H.write_file
mkdir = H.make_dir
mbox_messages = H.mbox_messages


def pick_port(ips):
    """A high port free on every address of ips."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        if port in H._used_ports:
            continue
        socks = []
        try:
            for ip in ips:
                s = socket.socket()
                socks.append(s)
                s.bind((ip, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        H._used_ports.add(port)
        return port
    raise RuntimeError("no port free on %s" % (ips,))


def wait_port(ip, port, timeout=10.0):
    def up():
        try:
            socket.create_connection((ip, port), 0.5).close()
            return True
        except OSError:
            return False
    return H.wait_for(up, timeout, 0.05)


def stop_procs():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    del PROCS[:]
    for s in SERVERS:
        s.close()


# ---- DNS: dnsmasq ---------------------------------------------------------

def dns_query(port, name, qtype):
    """(rcode, answer count) of one UDP query to 127.0.0.1:port, or None."""
    tid = random.randint(0, 65535)
    q = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    try:
        s.sendto(q, ("127.0.0.1", port))
        r = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(r) < 12 or struct.unpack(">H", r[:2])[0] != tid:
        return None
    flags, _, an = struct.unpack(">HHH", r[2:8])
    return flags & 0xF, an


def start_dnsmasq(port, records):
    log = open(os.path.join(BASE, "dnsmasq.log"), "ab")
    args = [DNSMASQ, "-k", "--conf-file=/dev/null", "--pid-file=",
            "--log-facility=-", "--port=%d" % port,
            "--listen-address=127.0.0.1", "--bind-interfaces",
            "--no-resolv", "--no-hosts",
            "--local=/test/"]  # names under .test not defined: NXDOMAIN
    if ROOT:
        args.append("--user=root")
    p = subprocess.Popen(args + records, stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    log.close()
    PROCS.append(p)
    ok = H.wait_for(lambda: p.poll() is not None or
                    dns_query(port, "mx.test", 15) is not None, 10, 0.1)
    if p.poll() is not None or not ok:
        raise RuntimeError("dnsmasq did not answer: %s" %
                           open(os.path.join(BASE, "dnsmasq.log")).read())


def dns_records():
    def mx(domain, host, pref, ip=None):
        r = ["--mx-host=%s,%s,%d" % (domain, host, pref)]
        if ip:
            r.append("--host-record=%s,%s" % (host, ip))
        return r
    recs = []
    recs += mx("mx.test", "sink.mx.test", 10, IP["sink"])
    recs += mx("fb.test", "dead.fb.test", 10, IP["dead"])
    recs += mx("fb.test", "live.fb.test", 20, IP["sink2"])
    recs += ["--host-record=aonly.test,%s" % IP["sink"]]
    recs += ["--dns-rr=nullmx.test,15,000000"]  # MX 0 . (RFC 7505)
    recs += mx("down.test", "h.down.test", 10, IP["down"])
    recs += mx("wakeup.test", "h.wakeup.test", 10, IP["wake"])
    recs += mx("hang.test", "h.hang.test", 10, IP["hang"])
    recs += mx("other.test", "sink.mx.test", 10)
    recs += mx("multi.test", "h.multi.test", 10, IP["multi"])
    recs += mx("retry.test", "h.retry.test", 10, IP["retry"])
    recs += mx("persist.test", "h.persist.test", 10, IP["persist"])
    recs += mx("perrcpt.test", "h.perrcpt.test", 10, IP["perrcpt"])
    recs += mx("fix.test", "sink.mx.test", 10)
    recs += mx("tlsreq.test", "sink.mx.test", 10)
    recs += mx("conc.test", "h.conc.test", 10, IP["conc"])
    recs += mx("lost.test", "h.lost.test", 10, IP["lost"])
    # silent.test is forwarded to a UDP socket that never answers.
    recs += ["--server=/silent.test/127.0.0.1#%d" % E.silent_port]
    return recs


# ---- smtp-sink ------------------------------------------------------------

class Sink:
    """Postfix's smtp-sink on ip:port dumping each message to a file; a
    Python server in its stead when smtp-sink is not installed."""

    def __init__(self, name, ip, port):
        self.dir = mkdir(os.path.join(BASE, "sink-" + name), 0o777)
        self.srv = None
        if not os.path.exists(H.SMTP_SINK):
            print("# smtp-sink not found (%s): a Python server stands in "
                  "at %s" % (H.SMTP_SINK, ip), flush=True)
            self.srv = Srv(ip, port)
            return
        p = H.start_smtp_sink(["-d", os.path.join(self.dir, "%M."),
                               "%s:%d" % (ip, port), "64"],
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        PROCS.append(p)
        if not wait_port(ip, port):
            raise RuntimeError("smtp-sink does not listen on %s:%d" %
                               (ip, port))

    def messages(self):
        """The message texts received so far (bytes)."""
        if self.srv is not None:
            return [t["data"] for t in self.srv.transactions()
                    if t["data"] is not None]
        out = []
        for n in sorted(os.listdir(self.dir)):
            try:
                with open(os.path.join(self.dir, n), "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
        return out

    def has_subject(self, subject):
        rx = re.compile(rb"^Subject: " + re.escape(subject.encode()) +
                        rb"\r?$", re.M)
        return any(rx.search(m) for m in self.messages())


# ---- scripted server ----------

class Srv:
    """A threaded SMTP server on ip:port whose behaviour can change while
    it runs (self.mode, read at each connection):
      "ok"   220, EHLO (PIPELINING, 8BITMIME, SIZE), the transaction;
             RCPT replies from self.rcpt(addr) when set
      "421"  a "421 4.3.2" greeting, then closes
      "hang" accepts and never says anything (until close())
    self.rcpt(addr) may return "DROP": the server hangs up instead of
    replying.
    Counts accepted connections; records each session's commands and
    transactions."""

    def __init__(self, ip, port, mode="ok", rcpt=None, name=None,
                 greet_delay=0.0):
        self.ip, self.port, self.mode, self.rcpt = ip, port, mode, rcpt
        self.name = name or "h.%s" % ip
        self.greet_delay = greet_delay
        self.lock = threading.Lock()
        self.connections = 0
        self.active = self.max_active = 0  # sessions open at once
        self.sessions = []
        self.open_socks = []
        self.closed = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(64)
        threading.Thread(target=self._loop, daemon=True).start()
        SERVERS.append(self)

    def close(self):
        """Stops listening and closes every open connection."""
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.open_socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return self.connections

    def transactions(self):
        with self.lock:
            return [t for s in self.sessions for t in s["txns"]]

    def delivered(self):
        """Transactions that ended with a message accepted."""
        return [t for t in self.transactions() if t.get("accepted")]

    def _loop(self):
        while not self.closed:
            try:
                c, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                s = {"mode": self.mode, "peer": peer, "cmds": [],
                     "txns": []}
                self.sessions.append(s)
                self.open_socks.append(c)
            threading.Thread(target=self._serve, args=(c, s),
                             daemon=True).start()

    def _serve(self, c, s):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self._session(c, s)
        except (OSError, ValueError) as e:
            s["error"] = repr(e)
        finally:
            with self.lock:
                self.active -= 1
                if c in self.open_socks:
                    self.open_socks.remove(c)
            try:
                c.close()
            except OSError:
                pass

    def _session(self, c, s):
        mode = s["mode"]
        if mode == "hang":
            c.settimeout(600)
            while not self.closed:
                try:
                    if not c.recv(4096):
                        return
                except socket.timeout:
                    continue
            return
        c.settimeout(60)
        f = c.makefile("rb")

        def say(line):
            c.sendall(line.encode() + b"\r\n")

        if mode == "421":
            say("421 4.3.2 %s Service not available, try later" % self.name)
            c.settimeout(5)
            try:
                f.readline()  # QUIT, or the client closes
            except OSError:
                pass
            return
        if self.greet_delay:
            time.sleep(self.greet_delay)
        say("220 %s ESMTP scripted" % self.name)
        txn = None
        while True:
            line = f.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("latin-1")
            with self.lock:
                s["cmds"].append(cmd)
            verb = cmd.split(" ")[0].upper()
            if verb == "EHLO":
                ext = [self.name, "PIPELINING", "8BITMIME", "SIZE 10240000"]
                for i, e in enumerate(ext):
                    say("250%s%s" % ("-" if i < len(ext) - 1 else " ", e))
            elif verb == "HELO":
                say("250 %s" % self.name)
            elif verb == "MAIL":
                txn = {"mail": cmd, "rcpts": [], "ok_rcpts": [],
                       "data": None, "accepted": False}
                with self.lock:
                    s["txns"].append(txn)
                say("250 2.1.0 Ok")
            elif verb == "RCPT":
                addr = cmd[cmd.find("<") + 1:cmd.find(">")]
                r = self.rcpt(addr) if self.rcpt else "250 2.1.5 Ok"
                if r == "DROP":
                    return
                if txn is not None:
                    txn["rcpts"].append(addr)
                    if r.startswith("2"):
                        txn["ok_rcpts"].append(addr)
                say(r)
            elif verb == "DATA":
                if txn is None or not txn["ok_rcpts"]:
                    say("554 5.5.1 Error: no valid recipients")
                    continue
                say("354 End data with <CR><LF>.<CR><LF>")
                buf = H.read_smtp_data(f, unstuff=True)
                if buf is None:
                    return
                txn["data"] = buf
                txn["accepted"] = True
                say("250 2.0.0 Ok: queued as S%d" % len(self.transactions()))
                txn = None
            elif verb == "RSET":
                txn = None
                say("250 2.0.0 Ok")
            elif verb == "NOOP":
                say("250 2.0.0 Ok")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                say("502 5.5.2 Error: command not recognized")


# ---- certificates and aiosmtpd ----------

def make_certs():
    H.make_test_ca_and_cert(BASE, "smalt relay test CA",
                            "DNS:localhost,IP:127.0.0.1")
    # A CA that signed nothing here: with it the smarthost cannot verify.
    H.make_self_signed(BASE, "other-ca", "smalt unrelated CA",
                       "basicConstraints=critical,CA:TRUE")


AIOSMTPD_SERVER = r'''
import json, os, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, cert, key, out, user, password = sys.argv[1:7]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
seq = [0]
def record(kind, rec):
    seq[0] += 1
    tmp = os.path.join(out, ".%s.%d" % (kind, seq[0]))
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.rename(tmp, os.path.join(out, "%s.%04d.json" % (kind, seq[0])))
class Handler:
    async def handle_DATA(self, server, session, envelope):
        data = session.auth_data
        record("msg", {
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "auth": data.login.decode() if isinstance(data, LoginPassword)
                    else None,
            "tls": session.ssl is not None,
            "data": envelope.original_content.decode("latin-1")})
        return "250 2.0.0 Ok: stored"
def auth(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword) and data.login == user.encode()
          and data.password == password.encode())
    record("auth", {"mechanism": mechanism, "ok": ok,
                    "tls": session.ssl is not None,
                    "login": data.login.decode()
                    if isinstance(data, LoginPassword) else None})
    return AuthResult(success=ok, handled=False, auth_data=data)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port),
               tls_context=ctx, require_starttls=True, authenticator=auth,
               auth_required=True, auth_require_tls=True)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
'''


class Smarthost:
    """aiosmtpd on 127.0.0.1:port: STARTTLS required (certificate of the
    test CA with IP SAN 127.0.0.1), then AUTH (user/password) required.
    Records messages and AUTH attempts as JSON files."""

    def __init__(self, port, user, password):
        self.port = port
        self.dir = mkdir(os.path.join(BASE, "smarthost"), 0o755)
        py = H.aiosmtpd_python()
        self.ok = py is not None
        if not self.ok:
            return
        self.p = subprocess.Popen(
            [py, "-c", AIOSMTPD_SERVER, str(port),
             os.path.join(BASE, "srv.pem"), os.path.join(BASE, "srv.key"),
             self.dir, user, password],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(BASE, "aiosmtpd.log"), "ab"), text=True)
        PROCS.append(self.p)
        line = self.p.stdout.readline()
        if "ready" not in line or not wait_port("127.0.0.1", port):
            raise RuntimeError("aiosmtpd did not start: %s" % open(
                os.path.join(BASE, "aiosmtpd.log")).read())

    def _records(self, kind):
        out = []
        for n in sorted(os.listdir(self.dir)):
            if n.startswith(kind + ".") and n.endswith(".json"):
                with open(os.path.join(self.dir, n)) as f:
                    out.append(json.load(f))
        return out

    def messages(self):
        return self._records("msg")

    def auths(self):
        return self._records("auth")

    def with_subject(self, subject):
        rx = re.compile(r"^Subject: %s\r?$" % re.escape(subject), re.M)
        return [m for m in self.messages() if rx.search(m["data"])]


# ---- talking to smaltd ----------

def make_msg(subject, to="someone@example.test"):
    return ("From: Bounce Box <%s>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s.%d@relay.test>\r\n\r\n"
            "a line of text\r\n.a line that starts with a dot\r\n"
            "last line\r\n" % (BOUNCEBOX, to, subject,
                               re.sub(r"\W", "", subject), os.getpid())
            ).encode()


SINCE = {}  # queue id -> the log's length before it was sent


def send(d, rcpts, subject, sender=BOUNCEBOX):
    """One SMTP transaction with smtplib; returns the queue id."""
    pos = len(d.log())
    with smtplib.SMTP("127.0.0.1", d.port, "client.relay.test", 30) as s:
        s.ehlo()
        code, resp = s.mail(sender)
        if code != 250:
            raise RuntimeError("MAIL FROM:<%s>: %d %r" % (sender, code, resp))
        for r in rcpts:
            code, resp = s.rcpt(r)
            if code != 250:
                raise RuntimeError("RCPT TO:<%s>: %d %r" % (r, code, resp))
        code, resp = s.data(make_msg(subject, rcpts[0]))
        m = re.search(rb"queued as ([0-9A-Za-z]+)", resp)
        if code != 250 or not m:
            raise RuntimeError("DATA: %d %r" % (code, resp))
        SINCE[m.group(1).decode()] = pos
        return m.group(1).decode()


def ctl(d, *args):
    p = subprocess.run([SMALTCTL, "-f", d.conf_path] + list(args),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def mailq(d):
    p = subprocess.run([SENDMAIL, "-C", d.conf_path, "-bp"],
                       capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


def hosts_json(d):
    rc, out, err = ctl(d, "show", "hosts", "--json")
    if rc != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def hosts_text(d):
    rc, out, err = ctl(d, "show", "hosts")
    return out + err


def host_entry(d, channel, host):
    for e in hosts_json(d) or []:
        if e.get("channel") == channel and e.get("host") == host:
            return e
    return None


def host_down(d, channel, host):
    e = host_entry(d, channel, host)
    return e is not None and e.get("state") == "down"


def host_up(d, channel, host):
    """show hosts works and does not list the host as down."""
    hj = hosts_json(d)
    return isinstance(hj, list) and not any(
        e.get("channel") == channel and e.get("host") == host and
        e.get("state") == "down" for e in hj)


def queue_json(d):
    rc, out, _ = ctl(d, "show", "queue", "--json")
    try:
        return json.loads(out) if rc == 0 else None
    except ValueError:
        return None


def queue_rcpt(d, qid, addr):
    for m in queue_json(d) or []:
        if m.get("id") == qid:
            for r in m.get("recipients", []):
                if r.get("address", "").lower() == addr.lower():
                    return r
    return None


def in_queue(d, qid):
    return any(qid in d.list_dir(sub) for sub in
               ("incoming", "deferred", "active", "hold"))


def spool_empty(d):
    return not (d.list_dir("incoming") or d.list_dir("deferred") or
                d.list_dir("msg"))


def reload(d):
    """smaltctl reload, then waits for the log to say so."""
    n = d.log().count("reloaded configuration")
    rc, out, err = ctl(d, "reload")
    ok = rc == 0 and H.wait_for(
        lambda: d.log().count("reloaded configuration") > n, 15)
    # The master signals every child at once; the one that logs is not
    # the qmgr: give it a moment to read the files (not a check).
    time.sleep(0.5)
    return ok, (rc, out, err)


def delivery_rx(qid, rcpt, status, tag=r"[a-z]+", relay=r"\S+", dsn=r"\S+"):
    return (r"smalt/%s\[\d+\]: %s: to=<%s>, relay=%s, delay=[\d.]+, "
            r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=%s, status=%s "
            r"\((.*)\)$" % (tag, qid, "(?i:%s)" % re.escape(rcpt), relay,
                             dsn, status))


def log_search(d, rx):
    return re.search(rx, d.log(), re.M)


def wait_status(d, qid, rcpt, status, timeout=30.0, since=None, abort=True,
                **kw):
    """Waits for a delivery log line of qid/rcpt with that status in the
    log from offset since on (default: from just before qid was sent);
    returns the match or None. With abort, a line of another status for
    qid/rcpt there ends the wait at once (None): the outcome is known."""
    if since is None:
        since = SINCE.get(qid, 0)
    rx = re.compile(delivery_rx(qid, rcpt, status, **kw), re.M)
    other = re.compile(delivery_rx(qid, rcpt, r"(?!%s\b)[a-z]+" % status),
                       re.M)
    found = []

    def look():
        log = d.log()[since:]
        m = rx.search(log)
        if m:
            found.append(m)
            return True
        return abort and other.search(log) is not None
    H.wait_for(look, timeout, 0.1)
    return found[0] if found else None


def removed(d, qid, timeout=30.0):
    return d.wait_log(r"smalt/qmgr\[\d+\]: %s: removed$" % qid, timeout)


def tail(d, n=2500):
    return d.log()[-n:]


def check_sent_to_sink(d, qid, rcpt, relay, sink, subject, sent_name,
                       got_name, since=None):
    """Waits for the smtp channel's status=sent line of qid/rcpt with
    that relay (a regex) and checks it (sent_name), then checks that the
    smtp-sink got the message with that Subject (got_name)."""
    m = wait_status(d, qid, rcpt, "sent", tag="smtp", since=since,
                    relay=relay)
    C.check(sent_name, m, tail(d))
    C.check(got_name, H.wait_for(lambda: sink.has_subject(subject), 10))
    return m


def send_to_421(d, host, rcpt, subject, name):
    """A scripted server answering 421 on IP[host] (as h.HOST.test), and
    a message to rcpt there that must be deferred (check name). Returns
    the server and the message's queue id."""
    srv = Srv(IP[host], E.smtp_port, mode="421", name="h.%s.test" % host)
    qid = send(d, [rcpt], subject)
    m = wait_status(d, qid, rcpt, "deferred")
    C.check(name, m, tail(d))
    return srv, qid


def check_caught_up(d, srv, n, domain, got_name, up_name):
    """The host is back: the scripted server got n messages (check
    got_name) and smtp/domain is no longer down (check up_name)."""
    C.check(got_name, H.wait_for(lambda: len(srv.delivered()) == n, 10),
            srv.transactions())
    C.check(up_name, host_up(d, "smtp", domain), hosts_text(d))


# ---- bounces ----------

def dsn_recipients(m):
    if not m.is_multipart():
        return []
    for p in m.get_payload():
        if p.get_content_type() == "message/delivery-status":
            blocks = p.get_payload()
            if isinstance(blocks, list):
                return [dict(b.items()) for b in blocks[1:]]
    return []


def find_bounce(path, rcpt, timeout=30.0, action="failed"):
    """The first DSN in the mbox whose delivery-status names rcpt with the
    Action, else None."""
    found = []

    def look():
        for m in mbox_messages(path):
            for r in dsn_recipients(m):
                fr = r.get("Final-Recipient", "").split(";")[-1].strip()
                if fr.lower() == rcpt.lower() and \
                        r.get("Action", "").strip() == action:
                    found.append((m, r))
                    return True
        return False
    H.wait_for(look, timeout, 0.1)
    return found[0] if found else (None, None)


def bounce_count(path):
    return len(mbox_messages(path))


# ---- daemons ----------

class Env:
    dns_port = None
    silent_port = None  # a DNS server that never answers
    silent_sock = None
    smtp_port = None
    sink = sink2 = None
    smarthost = None
    daemons = []


E = Env()


def daemon(name, **kw):
    vmail = mkdir(os.path.join(BASE, "vmail-" + name), 0o755, "smalt")
    box = os.path.join(vmail, "bounces.mbox")
    virt = write(os.path.join(BASE, "virtual." + name),
                 "%s  %s\n" % (BOUNCEBOX, box))
    conf = dict(resolver="127.0.0.1:%d" % E.dns_port,
                smtp_port=E.smtp_port, local_domains=LOCAL_DOMAINS,
                virtual_mailboxes=virt, retry_min="1h", retry_max="2h",
                host_retry_min="10m", host_retry_max="20m")
    conf.update(kw)
    d = Daemon(BASE, name, **conf)
    d.bounces = box
    E.daemons.append(d)
    return d.start()


# =================================================================== checks

def t_fixtures():
    section("fixtures: dnsmasq answers as planned")
    C.check("dns: mx.test has an MX",
            (dns_query(E.dns_port, "mx.test", 15) or (9, 0))[1] >= 1,
            dns_query(E.dns_port, "mx.test", 15))
    C.check("dns: nullmx.test has one MX (the null MX)",
            dns_query(E.dns_port, "nullmx.test", 15) == (0, 1),
            dns_query(E.dns_port, "nullmx.test", 15))
    C.check("dns: nx.test is NXDOMAIN",
            (dns_query(E.dns_port, "nx.test", 15) or (0, 0))[0] == 3,
            dns_query(E.dns_port, "nx.test", 15))
    C.check("dns: aonly.test has an A record and no MX",
            dns_query(E.dns_port, "aonly.test", 1) == (0, 1) and
            dns_query(E.dns_port, "aonly.test", 15) == (0, 0),
            (dns_query(E.dns_port, "aonly.test", 1),
             dns_query(E.dns_port, "aonly.test", 15)))


def t_mx_delivery(d):
    section("1. delivery via MX to smtp-sink; log line; queue empty")
    port = E.smtp_port
    qid = send(d, ["r@mx.test"], "via mx")
    m = wait_status(d, qid, "r@mx.test", "sent", tag="smtp",
                    relay=r"sink\.mx\.test\[127\.0\.0\.2\]:%d" % port,
                    dsn=r"2\.0\.0")
    C.check("mx: smalt/smtp line: to=<r@mx.test>, relay=sink.mx.test"
            "[127.0.0.2]:%d, delays=a/b/c/d, dsn=2.0.0, status=sent" % port,
            m, tail(d))
    C.check("mx: the reason is the server's 250 reply",
            m and m.group(1).startswith("250"), m and m.group(0))
    C.check("mx: smtp-sink got the message",
            H.wait_for(lambda: E.sink.has_subject("via mx"), 10),
            [x[:300] for x in E.sink.messages()])
    C.check("mx: removed from the queue", m and removed(d, qid), tail(d))
    C.check("mx: the queue is empty afterwards",
            H.wait_for(lambda: spool_empty(d), 10),
            (d.list_dir("incoming"), d.list_dir("deferred"),
             d.list_dir("msg")))
    rc, out, err = ctl(d, "show", "queue", "--json")
    C.check("mx: show queue --json is []", rc == 0 and
            json.loads(out or "null") == [], (rc, out, err))


def t_one_transaction(d):
    section("2. several recipients of one domain: one SMTP transaction")
    srv = Srv(IP["multi"], E.smtp_port, name="h.multi.test")
    rcpts = ["a@multi.test", "b@multi.test", "c@multi.test"]
    qid = send(d, rcpts, "three in one")
    ok = all(wait_status(d, qid, r, "sent", tag="smtp") for r in rcpts)
    C.check("multi: three status=sent lines", ok, tail(d))
    C.check("multi: removed", ok and removed(d, qid), tail(d))
    tx = srv.transactions()
    C.check("multi: one connection", srv.count() == 1, srv.sessions)
    C.check("multi: one transaction (one MAIL FROM) with the three RCPTs",
            len(tx) == 1 and sorted(r.lower() for r in tx[0]["rcpts"]) ==
            rcpts and tx[0]["accepted"], tx)
    mails = [c for s in srv.sessions for c in s["cmds"]
             if c.upper().startswith("MAIL FROM:")]
    C.check("multi: MAIL FROM:<%s>" % BOUNCEBOX,
            len(mails) == 1 and ("<%s>" % BOUNCEBOX).lower() in
            mails[0].lower(), mails)
    # The session stays open a few seconds (mta.h MTA_IDLE_SECS): the
    # next message to the same next hop goes over it, no new connection.
    qid2 = send(d, ["d@multi.test"], "second, same session")
    ok = wait_status(d, qid2, "d@multi.test", "sent", tag="smtp")
    C.check("reuse: the next message is sent", ok, tail(d))
    C.check("reuse: over the same connection (no new one, no second "
            "greeting)", ok and srv.count() == 1 and
            len(srv.transactions()) == 2, srv.sessions)
    srv.close()


def t_fallback(d):
    section("3. MX fallback (pref 10 dead, 20 live); A record without MX")
    port = E.smtp_port
    qid = send(d, ["f@fb.test"], "fallback")
    check_sent_to_sink(d, qid, "f@fb.test",
                       r"live\.fb\.test\[127\.0\.0\.4\]:%d" % port,
                       E.sink2, "fallback",
                       "fallback: delivered via the pref 20 MX live.fb.test"
                       "[127.0.0.4]", "fallback: the second smtp-sink got it")
    C.check("fallback: fb.test is not down (one MX answered)",
            host_up(d, "smtp", "fb.test"), hosts_text(d))
    qid = send(d, ["a@aonly.test"], "a record")
    check_sent_to_sink(d, qid, "a@aonly.test",
                       r"aonly\.test\[127\.0\.0\.2\]:%d" % port, E.sink,
                       "a record",
                       "a record: no MX, delivered to aonly.test[127.0.0.2]",
                       "a record: smtp-sink got it")


def t_nullmx_nxdomain(d):
    section("4. null MX and NXDOMAIN: bounced, the sender gets a DSN")
    for dom, subj in (("nullmx.test", "null mx"), ("nx.test", "nxdomain")):
        rcpt = "u@" + dom
        qid = send(d, [rcpt], subj)
        m = wait_status(d, qid, rcpt, "bounced", dsn=r"5\.\d+\.\d+")
        C.check("%s: status=bounced with a 5.x.x dsn" % dom, m, tail(d))
        C.check("%s: removed" % dom, m and removed(d, qid), tail(d))
        bm, r = find_bounce(d.bounces, rcpt, 30 if m else 1)
        C.check("%s: the sender's mailbox got a DSN, Action: failed" % dom,
                bm is not None, [x.get("Subject") for x in
                                 mbox_messages(d.bounces)])
        if r is not None:
            C.check("%s: DSN Status 5.x.x" % dom,
                    re.match(r"5\.\d+\.\d+", r.get("Status", "").strip()), r)
        C.check("%s: the domain is not marked down" % dom,
                host_up(d, "smtp", dom), hosts_text(d))


def t_perrcpt(d):
    section("7. per recipient: 250, 550 and 450 in one transaction")

    def rc(addr):
        if addr.lower().startswith("bad@"):
            return "550 5.1.1 <%s>: Recipient address rejected: unknown" % \
                addr
        if addr.lower().startswith("later@"):
            return "450 4.2.0 <%s>: Recipient address rejected: greylisted" \
                % addr
        return "250 2.1.5 Ok"
    srv = Srv(IP["perrcpt"], E.smtp_port, rcpt=rc, name="h.perrcpt.test")
    rcpts = ["good@perrcpt.test", "bad@perrcpt.test", "later@perrcpt.test"]
    qid = send(d, rcpts, "per recipient")
    m_good = wait_status(d, qid, rcpts[0], "sent", tag="smtp")
    m_bad = wait_status(d, qid, rcpts[1], "bounced", dsn=r"5\.1\.1")
    m_later = wait_status(d, qid, rcpts[2], "deferred", dsn=r"4\.\d+\.\d+")
    C.check("perrcpt: good: status=sent", m_good, tail(d))
    C.check("perrcpt: bad: status=bounced dsn=5.1.1, the 550 in the reason",
            m_bad and "550" in m_bad.group(1), tail(d))
    C.check("perrcpt: later: status=deferred dsn=4.x.x, the 450 in the "
            "reason", m_later and "450" in m_later.group(1), tail(d))
    acc = srv.delivered()
    C.check("perrcpt: one message went, to the good recipient only",
            len(acc) == 1 and [a.lower() for a in acc[0]["ok_rcpts"]] ==
            [rcpts[0]], srv.transactions())
    bm, r = find_bounce(d.bounces, rcpts[1], 30 if m_bad else 1)
    C.check("perrcpt: a DSN for bad@ reached the sender", bm is not None,
            [x.get("Subject") for x in mbox_messages(d.bounces)])
    if r is not None:
        C.check("perrcpt: the DSN's Diagnostic-Code carries the 550",
                "550" in r.get("Diagnostic-Code", ""), r)
        C.check("perrcpt: the DSN names no other recipient",
                len(dsn_recipients(bm)) == 1, dsn_recipients(bm))
    C.check("perrcpt: the message stays queued for later@",
            H.wait_for(lambda: qid in d.list_dir("deferred"), 10) and
            not log_search(d, r"%s: removed" % qid),
            (d.list_dir("deferred"), d.list_dir("incoming")))
    r = queue_rcpt(d, qid, rcpts[2])
    C.check("perrcpt: show queue: later@ deferred with the 450 reason",
            r is not None and r.get("state") == "deferred" and
            "450" in (r.get("reason") or ""), queue_json(d))
    others = [queue_rcpt(d, qid, a) for a in rcpts[:2]]
    C.check("perrcpt: show queue: good@ and bad@ no longer pending",
            all(o is None or o.get("state") not in ("pending", "deferred")
                for o in others), others)
    C.check("perrcpt: a recipient's 4xx does not mark the host down",
            host_up(d, "smtp", "perrcpt.test"), hosts_text(d))
    srv.close()
    return qid


def t_hang(d):
    section("a silent server holds one delivery, not the others")
    srv = Srv(IP["hang"], E.smtp_port, mode="hang", name="h.hang.test")
    qid = send(d, ["h@hang.test"], "to a silent server")
    C.check("hang: smaltd connected to the silent server",
            H.wait_for(lambda: srv.count() >= 1, 20), srv.count())
    q2 = send(d, ["o@other.test"], "meanwhile")
    m = wait_status(d, q2, "o@other.test", "sent", tag="smtp", timeout=30)
    C.check("hang: mail for another domain delivered meanwhile", m, tail(d))
    C.check("hang: the message for the silent server is still waiting",
            in_queue(d, qid) and not log_search(
                d, r"%s: to=<h@hang\.test>.*status=" % qid), tail(d))
    # The server goes away: the delivery ends with a deferral.
    srv.close()
    m = wait_status(d, qid, "h@hang.test", "deferred", timeout=30)
    C.check("hang: when the server closes, deferred (not bounced)",
            m and not log_search(d, r"%s: to=<h@hang\.test>.*status=bounced"
                                 % qid), tail(d))
    C.check("hang: a connection lost before the greeting marks the host "
            "down", H.wait_for(lambda: host_down(d, "smtp", "hang.test"), 10),
            hosts_text(d))


def t_silent_dns(d):
    section("a DNS server that never answers: one timeout, a deferral")
    t0 = time.time()
    qid = send(d, ["s@silent.test"], "nobody answers for this domain")
    q2 = send(d, ["o2@other.test"], "meanwhile, again")
    m2 = wait_status(d, q2, "o2@other.test", "sent", tag="smtp", timeout=30)
    C.check("silent dns: mail for another domain delivered meanwhile", m2,
            tail(d))
    m = wait_status(d, qid, "s@silent.test", "deferred", timeout=60)
    took = time.time() - t0
    C.check("silent dns: deferred with dsn 4.4.3 (never bounced)",
            m is not None and re.search(r"dsn=4\.4\.3", m.group(0)),
            tail(d))
    C.check("silent dns: within one resolver timeout (%.1f s)" % took,
            m is not None and took < 30, took)
    C.check("silent dns: the domain is not marked down (DNS says nothing "
            "about a host)", host_up(d, "smtp", "silent.test"),
            hosts_text(d))


def t_host_down(d):
    section("5. host down (421): show hosts, no new connection, flush")
    srv = Srv(IP["down"], E.smtp_port, mode="421", name="h.down.test")
    q1 = send(d, ["d1@down.test"], "down one")
    m1 = wait_status(d, q1, "d1@down.test", "deferred")
    C.check("down: first message deferred, the 421 in the reason",
            m1 and "421" in m1.group(1), tail(d))
    C.check("down: the server saw a connection", srv.count() >= 1,
            srv.count())
    n = srv.count()
    C.check("down: show hosts --json lists smtp/down.test down",
            H.wait_for(lambda: host_down(d, "smtp", "down.test"), 10),
            (hosts_json(d), hosts_text(d)))
    hj = hosts_json(d)
    C.check("down: show hosts --json is a JSON list", isinstance(hj, list),
            ctl(d, "show", "hosts", "--json"))
    e = host_entry(d, "smtp", "down.test") or {}
    C.check("down: JSON keys channel, host, state, reason, failures, "
            "next_attempt", set(e) == {"channel", "host", "state", "reason",
                                       "failures", "next_attempt"}, e)
    C.check("down: JSON reason names the 421", "421" in str(e.get("reason")),
            e)
    C.check("down: JSON failures >= 1", isinstance(e.get("failures"), int)
            and e["failures"] >= 1, e)
    C.check("down: JSON next_attempt is an RFC 3339 time",
            isinstance(e.get("next_attempt"), str) and
            RFC3339.match(e["next_attempt"]), e)
    txt = hosts_text(d)
    line = next((ln for ln in txt.splitlines()
                 if re.search(r"\bhost=down\.test\b", ln)), "")
    C.check("down: show hosts text: channel=smtp host=down.test state=down "
            "with the reason", re.search(r"channel=smtp host=down\.test "
                                         r"state=down\b", line) and
            "421" in line, txt)
    # The domain in another case: the same host (keys are lower case).
    q2 = send(d, ["d2@Down.TEST"], "down two")
    m2 = wait_status(d, q2, "d2@down.test", "deferred")
    C.check("down: second message (to d2@Down.TEST) deferred: \"delivery "
            "temporarily suspended: ...\"", m2 and m2.group(1).startswith(
                "delivery temporarily suspended:"), tail(d))
    C.check("down: ... with the host's reason", m2 and "421" in m2.group(1),
            m2 and m2.group(0))
    C.check("down: ... relay=none", m2 and "relay=none," in m2.group(0),
            m2 and m2.group(0))
    C.check("down: no new connection for the second message",
            srv.count() == n, (n, srv.count()))
    # One message for a down host and a working one: split per domain.
    q3 = send(d, ["d3@down.test", "x3@mx.test"], "down three")
    m3 = wait_status(d, q3, "d3@down.test", "deferred")
    ok3 = wait_status(d, q3, "x3@mx.test", "sent", tag="smtp")
    C.check("down: a message for down.test and mx.test: mx.test sent, "
            "down.test suspended", ok3 and m3 and m3.group(1).startswith(
                "delivery temporarily suspended:"), tail(d))
    C.check("down: ... still no new connection to down.test",
            srv.count() == n, (n, srv.count()))
    q = mailq(d)
    C.check("down: mailq lists both with the reason in parentheses",
            q1 in q and q2 in q and re.search(r"^\s*\(.*421.*\)\s*$", q,
                                              re.M), q)
    r = queue_rcpt(d, q2, "d2@Down.TEST")
    C.check("down: show queue --json: reason of the second message",
            r is not None and r.get("state") == "deferred" and
            "421" in (r.get("reason") or ""), queue_json(d))
    rc, out, _ = ctl(d, "show", "queue")
    C.check("down: show queue text shows the reason",
            rc == 0 and q2 in out and "421" in out, out)
    # The host comes back; flush it.
    srv.mode = "ok"
    pos = len(d.log())
    rc, out, err = ctl(d, "flush", "down.test")
    C.check("down: smaltctl flush down.test: exit 0", rc == 0,
            (rc, out, err))
    ok1 = wait_status(d, q1, "d1@down.test", "sent", tag="smtp", since=pos)
    ok2 = wait_status(d, q2, "d2@down.test", "sent", tag="smtp", since=pos)
    ok3 = wait_status(d, q3, "d3@down.test", "sent", tag="smtp", since=pos)
    C.check("down: after flush the three messages delivered",
            ok1 and ok2 and ok3, tail(d))
    C.check("down: the server got the three",
            H.wait_for(lambda: len(srv.delivered()) == 3, 10),
            srv.transactions())
    C.check("down: the three removed", ok1 and ok2 and ok3 and
            removed(d, q1) and removed(d, q2) and removed(d, q3))
    C.check("down: show hosts no longer shows down.test down",
            H.wait_for(lambda: host_up(d, "smtp", "down.test"), 10),
            hosts_text(d))
    ups = [e for e in hosts_json(d) or [] if e.get("state") == "up"]
    C.check("down: JSON of up hosts: failures 0, next_attempt null",
            all(e.get("failures") == 0 and e.get("next_attempt") is None
                for e in ups), ups)
    srv.close()


def t_wakeup(d):
    section("11. RFC 1123 wake-up: inbound connection from the down host")
    q1 = send(d, ["w1@wakeup.test"], "wake one")
    m = wait_status(d, q1, "w1@wakeup.test", "deferred")
    C.check("wakeup: nothing listens at 127.0.0.6: deferred, "
            "connection refused", m and "refused" in m.group(1).lower(),
            tail(d))
    C.check("wakeup: smtp/wakeup.test is down",
            H.wait_for(lambda: host_down(d, "smtp", "wakeup.test"), 10),
            hosts_text(d))
    q2 = send(d, ["w2@wakeup.test"], "wake two")
    m = wait_status(d, q2, "w2@wakeup.test", "deferred")
    C.check("wakeup: second message suspended",
            m and m.group(1).startswith("delivery temporarily suspended"),
            tail(d))
    srv = Srv(IP["wake"], E.smtp_port, name="h.wakeup.test")
    since = len(d.log())
    t0 = time.monotonic()
    with H.Client(d.port, source=(IP["wake"], 0), timeout=15) as c:
        greet = c.greeting
        ehlo = c.cmd("EHLO h.wakeup.test")
        c.cmd("QUIT")
    C.check("wakeup: an SMTP session from 127.0.0.6 to smaltd",
            greet.code == 220 and ehlo.code == 250, (greet, ehlo))
    ok1 = wait_status(d, q1, "w1@wakeup.test", "sent", tag="smtp",
                      since=since, timeout=30)
    ok2 = wait_status(d, q2, "w2@wakeup.test", "sent", tag="smtp",
                      since=since, timeout=30)
    took = time.monotonic() - t0
    C.check("wakeup: both waiting messages delivered at once, no flush "
            "(%.1f s; retry_min 1h, host_retry_min 10m)" % took,
            ok1 and ok2 and took < 30, tail(d))
    check_caught_up(d, srv, 2, "wakeup.test", "wakeup: the server got both",
                    "wakeup: show hosts no longer shows wakeup.test down")
    srv.close()


def t_routes_fix(d, routes):
    section("12b. a routes fix applies to queued mail")
    closed = H.free_port()
    write(routes, "fix.test relay:[127.0.0.1]:%d\n" % closed)
    ok, info = reload(d)
    C.check("routes: reload with fix.test -> relay:[127.0.0.1]:%d" % closed,
            ok, info)
    qid = send(d, ["x@fix.test"], "routes fix")
    m = wait_status(d, qid, "x@fix.test", "deferred")
    C.check("routes: deferred through the relay channel (refused)",
            m and "refused" in m.group(1).lower(), tail(d))
    key = "[127.0.0.1]:%d" % closed
    C.check("routes: show hosts: channel=relay host=%s down" % key,
            H.wait_for(lambda: host_down(d, "relay", key), 10),
            hosts_text(d))
    write(routes, "fix.test smtp\n")
    ok, info = reload(d)
    C.check("routes: reload with fix.test -> smtp", ok, info)
    pos = len(d.log())
    rc, out, err = ctl(d, "flush", qid)
    C.check("routes: smaltctl flush ID: exit 0", rc == 0, (rc, out, err))
    check_sent_to_sink(d, qid, "x@fix.test",
                       r"sink\.mx\.test\[127\.0\.0\.2\]:%d" % E.smtp_port,
                       E.sink, "routes fix",
                       "routes: the queued message now goes by MX to "
                       "smtp-sink", "routes: smtp-sink got it", since=pos)


def t_restart(d):
    section("10. the host cache survives a restart")
    srv, q1 = send_to_421(d, "persist", "p1@persist.test", "persist one",
                          "restart: first message deferred (421)")
    C.check("restart: persist.test down before the restart",
            H.wait_for(lambda: host_down(d, "smtp", "persist.test"), 10),
            hosts_text(d))
    before = host_entry(d, "smtp", "persist.test")
    n = srv.count()
    rc = d.stop()
    C.check("restart: smaltd stopped by SIGTERM", rc == 0, rc)
    d.start()
    after = host_entry(d, "smtp", "persist.test")
    C.check("restart: show hosts still shows persist.test down, same "
            "next_attempt", after is not None and after.get("state") ==
            "down" and after.get("next_attempt") ==
            (before or {}).get("next_attempt"), (before, after))
    since = len(d.log())
    q2 = send(d, ["p2@persist.test"], "persist two")
    m = wait_status(d, q2, "p2@persist.test", "deferred", since=since)
    C.check("restart: a new message is suspended",
            m and m.group(1).startswith("delivery temporarily suspended"),
            d.log()[since:][-2000:])
    C.check("restart: no connection to persist.test since the restart",
            srv.count() == n, (n, srv.count()))
    # The host's addresses survived too: an inbound connection from
    # 127.0.0.10 wakes both messages.
    srv.mode = "ok"
    since = len(d.log())
    with H.Client(d.port, source=(IP["persist"], 0), timeout=15) as c:
        c.cmd("EHLO h.persist.test")
        c.cmd("QUIT")
    ok1 = wait_status(d, q1, "p1@persist.test", "sent", tag="smtp",
                      since=since)
    ok2 = wait_status(d, q2, "p2@persist.test", "sent", tag="smtp",
                      since=since)
    C.check("restart: an inbound connection from 127.0.0.10 after the "
            "restart wakes both messages (addresses kept)", ok1 and ok2,
            d.log()[since:][-2000:])
    srv.close()


def t_retry_by_itself(d):
    section("6. host_retry_min 2s: the host is tried again by itself")
    srv, q1 = send_to_421(d, "retry", "r1@retry.test", "retry one",
                          "retry: first message deferred (421)")
    q2 = send(d, ["r2@retry.test"], "retry two")
    m = wait_status(d, q2, "r2@retry.test", "deferred")
    C.check("retry: second message deferred too", m, tail(d))
    srv.mode = "ok"
    t0 = time.monotonic()
    # An attempt under way at the switch may still end deferred: no abort.
    ok1 = wait_status(d, q1, "r1@retry.test", "sent", tag="smtp",
                      timeout=45, abort=False)
    ok2 = wait_status(d, q2, "r2@retry.test", "sent", tag="smtp",
                      timeout=45, abort=False)
    took = time.monotonic() - t0
    C.check("retry: both delivered without a flush within %.1f s "
            "(retry_min 1h)" % took, ok1 and ok2, tail(d))
    C.check("retry: ... within host_retry_max + a few seconds (< 20 s)",
            ok1 and ok2 and took < 20, took)
    check_caught_up(d, srv, 2, "retry.test", "retry: the server got both",
                    "retry: retry.test no longer down")
    srv.close()


def t_dest_concurrency(d):
    section("destination_concurrency 2: at most 2 sessions to one host")
    srv = Srv(IP["conc"], E.smtp_port, name="h.conc.test", greet_delay=0.5)
    qids = [send(d, ["c%d@conc.test" % i], "conc %d" % i) for i in range(6)]
    ok = all(wait_status(d, q, "c%d@conc.test" % i, "sent", tag="smtp")
             for i, q in enumerate(qids))
    C.check("conc: six messages delivered", ok, tail(d))
    C.check("conc: the server got six", len(srv.delivered()) == 6,
            srv.transactions())
    print("# conc: %d connection(s), at most %d at once" %
          (srv.count(), srv.max_active), flush=True)
    C.check("conc: never more than 2 sessions at once",
            1 <= srv.max_active <= 2, srv.max_active)
    srv.close()


def t_tls_required(d):
    section("8. smtp_tls = encrypt, no STARTTLS offered: deferred")
    qid = send(d, ["t@tlsreq.test"], "tls required")
    m = wait_status(d, qid, "t@tlsreq.test", "deferred")
    C.check("tls: deferred, the reason mentions TLS",
            m and "TLS" in m.group(1), tail(d))
    C.check("tls: never bounced",
            not log_search(d, r"%s: to=<t@tlsreq\.test>.*status=bounced"
                           % qid) and not log_search(
                d, r"smalt/bounce\[\d+\]: %s:" % qid), tail(d))
    q = mailq(d)
    C.check("tls: mailq shows the message with a reason naming TLS",
            qid in q and re.search(r"^\s*\(.*TLS.*\)\s*$", q, re.M), q)
    C.check("tls: smtp-sink got no message",
            not E.sink.has_subject("tls required"))


def t_relay(d, auth_file, closed):
    section("12a. relayhost on a closed port, fixed by reload + flush")
    sh = E.smarthost
    key_bad = "[127.0.0.1]:%d" % closed
    key = "[127.0.0.1]:%d" % sh.port
    q0 = send(d, ["a@relayed.test"], "relay fix")
    m = wait_status(d, q0, "a@relayed.test", "deferred")
    C.check("relay: relayhost on a closed port: deferred (refused)",
            m and "refused" in m.group(1).lower(), tail(d))
    C.check("relay: show hosts: channel=relay host=%s down" % key_bad,
            H.wait_for(lambda: host_down(d, "relay", key_bad), 10),
            hosts_text(d))
    H.daemon_set_conf(d, relayhost="[127.0.0.1]:%d" % sh.port)
    ok, info = reload(d)
    C.check("relay: reload with the right port", ok, info)
    pos = len(d.log())
    rc, out, err = ctl(d, "flush")
    C.check("relay: smaltctl flush: exit 0", rc == 0, (rc, out, err))
    m = wait_status(d, q0, "a@relayed.test", "sent", tag="relay", since=pos,
                    relay=r"\S*\[127\.0\.0\.1\]:%d" % sh.port)
    C.check("relay: the queued message delivered through the smarthost "
            "(smalt/relay, relay=...[127.0.0.1]:%d)" % sh.port, m, tail(d))
    C.check("relay: the smarthost got it",
            H.wait_for(lambda: sh.with_subject("relay fix"), 10),
            sh.messages())

    section("9. relay: STARTTLS (verified) + AUTH to aiosmtpd")
    q1 = send(d, ["b@relayed.test", "c@elsewhere.test"], "relay auth")
    ok = all(wait_status(d, q1, r, "sent", tag="relay")
             for r in ("b@relayed.test", "c@elsewhere.test"))
    C.check("relay: both recipients (two domains) sent via the smarthost",
            ok, tail(d))
    got = sh.with_subject("relay auth")
    print("# relay: the smarthost saw %d transaction(s) for two recipients"
          % len(got), flush=True)
    C.check("relay: the smarthost got each recipient once",
            sorted(x.lower() for g in got for x in g["rcpt_tos"]) ==
            ["b@relayed.test", "c@elsewhere.test"], got)
    C.check("relay: over TLS, authenticated as joe",
            got and all(g["tls"] and g["auth"] == "joe" for g in got), got)
    C.check("relay: MAIL FROM the original sender",
            got and all(g["mail_from"].lower() == BOUNCEBOX.lower()
                        for g in got), got)
    C.check("relay: the body arrives intact (dot line)",
            got and "\r\n.a line that starts with a dot\r\n" in
            got[0]["data"], got and got[0]["data"][-200:])
    C.check("relay: show hosts: the relay host is not down",
            host_up(d, "relay", key), hosts_text(d))

    # A wrong password.
    write(auth_file, "joe wrong-password\n", 0o600, "smalt")
    ok, info = reload(d)
    C.check("relay: reload with a wrong password", ok, info)
    nb = bounce_count(d.bounces)
    q2 = send(d, ["d@relayed.test"], "relay wrong password")
    m = wait_status(d, q2, "d@relayed.test", "deferred")
    C.check("relay: wrong password: deferred, the reason mentions "
            "authentication", m and re.search(r"auth", m.group(1), re.I),
            tail(d))
    C.check("relay: the smarthost refused a login",
            any(not a["ok"] for a in sh.auths()), sh.auths())
    C.check("relay: wrong password: never bounced",
            not log_search(d, r"%s: to=<d@relayed\.test>.*status=bounced"
                           % q2) and bounce_count(d.bounces) == nb, tail(d))
    C.check("relay: wrong password: nothing reached the smarthost",
            not sh.with_subject("relay wrong password"))
    q = mailq(d)
    C.check("relay: mailq shows the authentication reason",
            q2 in q and re.search(r"^\s*\(.*[Aa]uth.*\)\s*$", q, re.M), q)
    # Fixed.
    write(auth_file, "joe s3cret pass\n", 0o600, "smalt")
    ok, info = reload(d)
    C.check("relay: reload with the right password", ok, info)
    pos = len(d.log())
    rc, out, err = ctl(d, "flush")
    C.check("relay: flush: exit 0", rc == 0, (rc, out, err))
    m = wait_status(d, q2, "d@relayed.test", "sent", tag="relay", since=pos)
    C.check("relay: after the fix, delivered", m, tail(d))
    C.check("relay: the smarthost got it, authenticated",
            H.wait_for(lambda: sh.with_subject("relay wrong password"), 10)
            and sh.with_subject("relay wrong password")[0]["auth"] == "joe",
            sh.messages())
    C.check("relay: removed", m and removed(d, q2))

    section("9b. relay: the smarthost's certificate does not verify")
    H.daemon_set_conf(d, tls_ca_file=os.path.join(BASE, "other-ca.pem"))
    ok, info = reload(d)
    C.check("relay: reload with tls_ca_file = an unrelated CA", ok, info)
    nb = bounce_count(d.bounces)
    na = len(sh.auths())
    q3 = send(d, ["e@relayed.test"], "relay bad ca")
    m = wait_status(d, q3, "e@relayed.test", "deferred")
    C.check("relay: certificate not verified: deferred, the reason says so",
            m and re.search(r"certificate|verif", m.group(1), re.I), tail(d))
    C.check("relay: ... never bounced",
            not log_search(d, r"%s: to=<e@relayed\.test>.*status=bounced"
                           % q3) and bounce_count(d.bounces) == nb, tail(d))
    C.check("relay: ... no AUTH (no password over an unverified session), "
            "nothing sent", len(sh.auths()) == na and
            not sh.with_subject("relay bad ca"), sh.auths()[na:])
    H.daemon_set_conf(d, tls_ca_file=os.path.join(BASE, "ca.pem"))
    ok, info = reload(d)
    C.check("relay: reload with the right CA", ok, info)
    pos = len(d.log())
    rc, out, err = ctl(d, "flush")
    m = wait_status(d, q3, "e@relayed.test", "sent", tag="relay", since=pos)
    C.check("relay: after flush, delivered", rc == 0 and m, tail(d))


# ===================================================================== main

def t_lost_after_mail(d):
    section("a session lost after MAIL FROM: deferred, host not down")
    srv = Srv(IP["lost"], E.smtp_port, rcpt=lambda a: "DROP",
              name="h.lost.test")
    qid = send(d, ["x@lost.test"], "lost after mail")
    m = wait_status(d, qid, "x@lost.test", "deferred", tag="smtp")
    C.check("lost: deferred, naming the lost connection",
            m is not None and "lost connection" in m.group(1), tail(d))
    C.check("lost: the host is not marked down (it talked)",
            host_up(d, "smtp", "lost.test"), hosts_text(d))
    # The next try connects again: nothing is suspended.
    srv.rcpt = None
    pos = len(d.log())
    rc, _, err = ctl(d, "flush", qid)
    C.check("lost: smaltctl flush ID", rc == 0, err)
    ok = wait_status(d, qid, "x@lost.test", "sent", tag="smtp", since=pos)
    C.check("lost: delivered on the next try, over a new connection",
            ok and srv.count() == 2 and len(srv.delivered()) == 1,
            srv.sessions)
    srv.close()


def t_loop(d):
    section("loop: a relayhost that points back here")
    # Each pass adds a Received: header; past 50 the message bounces
    # (5.4.6) instead of going round forever, and the bounce, which
    # loops the same way, ends as a double bounce to the postmaster.
    qid = send(d, ["far@loop.test"], "round and round")
    ok = H.wait_for(lambda: re.search(
        r"to=<far@loop\.test>, relay=none, .*dsn=5\.4\.6, status=bounced "
        r"\(mail forwarding loop", d.log()) is not None, 60)
    C.check("loop: bounced with 5.4.6 (mail forwarding loop)", ok, tail(d))
    passes = len(re.findall(r"smalt/relay\[\d+\]: \w+: to=<far@loop\.test>"
                            r", relay=127\.0\.0\.1\[127\.0\.0\.1\]",
                            d.log()))
    C.check("loop: about 50 passes, not more (%d)" % passes,
            40 <= passes <= 52, passes)
    C.check("loop: the queue empties (no message goes round forever)",
            H.wait_for(lambda: spool_empty(d), 60), tail(d))
    C.check("loop: first message %s removed" % qid, removed(d, qid, 5))


def main():
    if DNSMASQ is None:
        print("SKIP - dnsmasq is not installed (Debian: dnsmasq-base)")
        print("0 passed, 0 failed")
        return 77
    ips = list(IP.values())
    E.smtp_port = pick_port(ips)
    E.dns_port = pick_port(["127.0.0.1"])
    E.silent_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    E.silent_sock.bind(("127.0.0.1", 0))
    E.silent_port = E.silent_sock.getsockname()[1]
    print("# MX port %d, DNS port %d, base %s" % (E.smtp_port, E.dns_port,
                                                  BASE), flush=True)
    start_dnsmasq(E.dns_port, dns_records())
    E.sink = Sink("a", IP["sink"], E.smtp_port)
    E.sink2 = Sink("b", IP["sink2"], E.smtp_port)
    C.run("fixtures", t_fixtures)

    # Daemon A: smtp_tls may, host_retry_min 10m, retry_min 1h.
    routes = write(os.path.join(BASE, "routes.a"), "# none yet\n")
    da = daemon("a", routes=routes)
    C.run("1", t_mx_delivery, da)
    C.run("2", t_one_transaction, da)
    C.run("3", t_fallback, da)
    C.run("4", t_nullmx_nxdomain, da)
    C.run("7", t_perrcpt, da)
    C.run("lost", t_lost_after_mail, da)
    C.run("hang", t_hang, da)
    C.run("silent-dns", t_silent_dns, da)
    C.run("5", t_host_down, da)
    C.run("11", t_wakeup, da)
    C.run("12b", t_routes_fix, da, routes)
    C.run("10", t_restart, da)
    da.stop()

    # Daemon B: host_retry_min 2s.
    db = daemon("b", host_retry_min="2s", host_retry_max="4s",
                destination_concurrency=2)
    C.run("6", t_retry_by_itself, db)
    C.run("conc", t_dest_concurrency, db)
    db.stop()

    # Daemon C: smtp_tls encrypt; a smarthost with STARTTLS and AUTH.
    make_certs()
    E.smarthost = Smarthost(pick_port(["127.0.0.1"]), "joe", "s3cret pass")
    auth_file = write(os.path.join(BASE, "relay-auth"),
                      "joe s3cret pass\n", 0o600, "smalt")
    closed = H.free_port()
    routes_c = write(os.path.join(BASE, "routes.c"), "tlsreq.test smtp\n")
    dc = daemon("c", routes=routes_c, smtp_tls="encrypt",
                tls_ca_file=os.path.join(BASE, "ca.pem"),
                relayhost="[127.0.0.1]:%d" % closed, relayhost_tls="encrypt",
                relayhost_auth_file=auth_file)
    C.run("8", t_tls_required, dc)
    if E.smarthost.ok:
        C.run("9/12a", t_relay, dc, auth_file, closed)
    else:
        C.skip("relay through aiosmtpd: python3-aiosmtpd is not installed")
    dc.stop()

    # Daemon D: its relayhost is itself.
    port = H.free_port()
    dd = daemon("d", port=port, relayhost="[127.0.0.1]:%d" % port,
                relayhost_tls="none")
    C.run("loop", t_loop, dd)
    dd.stop()

    for d in E.daemons:
        C.check("%s: no sanitizer report or crash in the log" %
                os.path.basename(d.dir),
                not re.search(r"Sanitizer|runtime error:|dumped core|"
                              r"\) killed by signal|\) exited with status",
                              d.log()), tail(d, 3000))


if __name__ == "__main__":
    rc = 1
    try:
        try:
            if main() == 77:
                rc = 77
                sys.exit(77)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            C.error("ran to its end", e)
        print("# total %.1f s" % (time.monotonic() - C.t0), flush=True)
        rc = C.finish()
    finally:
        for d in list(E.daemons):
            d.kill()
        stop_procs()
        H.keep_or_remove_tmp(rc not in (0, 77) or
                             bool(os.environ.get("SMALT_KEEP_TMP")))
    sys.exit(rc)
