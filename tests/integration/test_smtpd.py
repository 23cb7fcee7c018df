#!/usr/bin/env python3
"""smaltd's SMTP server as clients meet it (SPEC §3, §4, §6, §7, §9):
swaks and smtplib transactions, pipelining, limits, SMTP smuggling, a
SIGKILL under load, 1,000 idle sessions, hostile input, relay policy,
protocol details and bare newlines. Each check prints one line; the last
line is "N passed, N failed"."""

import os
import random
import re
import resource
import smtplib
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402
from smalt_harness import Client, Closed, Daemon  # noqa: E402

C = H.Checker()
BASE = H.make_tmp_base()
ALL_DAEMONS = []

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
RFC5322_DATE = (r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?\d{1,2} (?:%s) "
                r"\d{4} \d\d:\d\d(?::\d\d)? [+-]\d{4}" % MONTHS)
ENH_RX = re.compile(r"^\d{3}[ -]\d\.\d{1,3}\.\d{1,3} ")


def client_name_rx():
    """The names smaltd may give 127.0.0.1: "unknown", or the name the
    hosts file gives it (c-ares reads /etc/hosts first, then checks the
    name leads back to the address)."""
    names = {"unknown"}
    try:
        names.add(socket.gethostbyaddr("127.0.0.1")[0])
    except OSError:
        pass
    return "(?:%s)" % "|".join(re.escape(n) for n in sorted(names))


CLIENT = client_name_rx()


def daemon(name, **kw):
    # These tests look at what smtpd queued: hold it there (delivery is
    # test_deliver.py's business).
    kw.setdefault("delivery_concurrency", 0)
    d = Daemon(BASE, name, **kw)
    ALL_DAEMONS.append(d)
    return d.start()


def section(title):
    print("# %s" % title, flush=True)


def run(name, fn, *args):
    """Runs one section; an exception is one failed check, not the end."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        C.error("%s: section ran to its end" % name, e)


def codes(replies):
    return [r.code for r in replies]


def new_ids(d, before):
    return sorted(set(d.incoming_ids()) - set(before))


def queued_id(reply):
    m = re.match(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$", reply.lines[-1])
    return m.group(1) if m else None


def wire(text):
    """Message text with LF line ends -> CR LF on the wire, dot-stuffed."""
    if isinstance(text, str):
        text = text.encode("latin-1")
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b""
    for ln in lines:
        if ln.startswith(b"."):
            ln = b"." + ln
        out += ln + b"\r\n"
    return out


def ehlo(c, helo="client.example"):
    r = c.cmd("EHLO " + helo)
    assert r.code == 250, r
    return r


def send_raw(c, sender, rcpts, body_wire):
    """MAIL/RCPT/DATA then body_wire (already terminated by the caller
    or not: ".\r\n" is added). Returns the list of replies."""
    out = [c.cmd("MAIL FROM:<%s>" % sender)]
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    if out[-1].code != 354:
        return out
    c.send(body_wire + b".\r\n")
    out.append(c.read_reply(30))
    return out


# ---------------------------------------------------------------- 1. swaks
def t_swaks():
    section("1. swaks")
    d = daemon("swaks")
    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % d.port, "--to",
         "root@localhost", "--from", "a@example.com"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("latin-1")
    C.check("swaks exits 0", p.returncode == 0, out[-1500:])
    m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})\r?$", out,
                  re.M)
    C.check("swaks: 250 2.0.0 Ok: queued as ID", m, out[-1500:])
    qid = m.group(1) if m else "?"
    hm = re.search(r"^ -> EHLO (\S+)", out, re.M)
    helo = hm.group(1) if hm else "?"
    ids = d.incoming_ids()
    C.check("swaks: exactly one message in incoming/", ids == [qid], ids)
    if ids != [qid]:
        return
    msg = d.read_msg(qid)
    rx = (r"^Received: from %s \((%s) \[127\.0\.0\.1\]\)\r\n"
          r"\tby %s \(smalt\) with ESMTP id %s\r\n"
          r"\tfor <root@localhost>; (%s)\r\n" %
          (re.escape(helo), CLIENT, re.escape(H.HOSTNAME), qid,
           RFC5322_DATE))
    mm = re.match(rx.encode(), msg)
    C.check("swaks: message starts with the SPEC §6 Received: header",
            mm, msg[:400])
    name = mm.group(1).decode() if mm else CLIENT
    if mm:
        import email.utils
        dt = email.utils.parsedate_to_datetime(mm.group(2).decode())
        C.check("swaks: Received date is now",
                abs(dt.timestamp() - time.time()) < 300, mm.group(2))
    C.check("swaks: header and swaks' body stored with CR LF",
            b"\r\n\r\nThis is a test mailing\r\n" in msg and
            re.search(rb"\r(?!\n)|(?<!\r)\n", msg) is None, msg[-200:])
    env = d.read_env(qid)
    C.check("swaks: envelope sender and recipient",
            env.get("sender") == "a@example.com" and
            [r["address"] for r in env["rcpts"]] == ["root@localhost"], env)
    C.check("log: disconnect line",
            d.wait_log(r"disconnect from %s\[127\.0\.0\.1\]" %
                       re.escape(name)), d.log()[-2000:])
    log = d.log()
    pre = r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ smalt/smtpd\[\d+\]: "
    C.check("log: connect from HOST[127.0.0.1]",
            re.search(pre + r"connect from %s\[127\.0\.0\.1\]$" %
                      re.escape(name), log, re.M), log[-2000:])
    C.check("log: ID: client=HOST[127.0.0.1]",
            re.search(pre + r"%s: client=%s\[127\.0\.0\.1\]$" %
                      (qid, re.escape(name)), log, re.M), log[-2000:])
    C.check("log: client name is %s" % ("unknown" if name == "unknown"
                                         else "the hosts-file name"),
            re.fullmatch(CLIENT, name), name)
    d.stop()


# -------------------------------------------------------------- 2. smtplib
def t_smtplib(d):
    section("2. smtplib")
    before = d.incoming_ids()
    body = (b"From: a@example.com\r\nTo: root@localhost\r\n"
            b"Subject: three\r\n\r\nhello three\r\n")
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as s:
        refused = s.sendmail("a@example.com",
                             ["root@localhost", "postmaster@localhost",
                              "ROOT@LOCALHOST"], body)
    C.check("smtplib: 3 recipients accepted", refused == {}, refused)
    ids = new_ids(d, before)
    C.check("smtplib: one queued message", len(ids) == 1, ids)
    if ids:
        env = d.read_env(ids[0])
        addrs = [r["address"] for r in env["rcpts"]]
        C.check("smtplib: envelope lists 3 recipients", len(addrs) == 3,
                addrs)
        C.check("smtplib: envelope recipients are the ones sent",
                [a.lower() for a in addrs] ==
                ["root@localhost", "postmaster@localhost",
                 "root@localhost"], addrs)
        C.check("smtplib: recipients pending",
                all(r["state"] == "pending" for r in env["rcpts"]), env)
        hdr, rest = H.split_received(d.read_msg(ids[0]))
        C.check("smtplib: no 'for' clause with 3 recipients",
                hdr.startswith(b"Received: ") and b"for <" not in hdr, hdr)
        C.check("smtplib: message stored exactly", rest == body, rest)

    # 8-bit body, dot lines, kept byte for byte
    before = d.incoming_ids()
    eight = bytes(range(0x80, 0x100))
    msg = (b"From: a@example.com\r\nSubject: 8bit\r\n"
           b"Content-Type: text/plain; charset=latin1\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n"
           b"caf\xe9 na\xefve \xff\xfe\r\n" + eight[:64] + b"\r\n" +
           eight[64:] + b"\r\n.leading dot\r\n..two dots\r\n"
           b"\tTAB\x01\x7f\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as s:
        s.ehlo()
        C.check("smtplib: 8BITMIME advertised", s.has_extn("8bitmime"))
        refused = s.sendmail("a@example.com", ["root@localhost"], msg,
                             mail_options=["BODY=8BITMIME"])
    C.check("smtplib: 8-bit message accepted", refused == {}, refused)
    ids = new_ids(d, before)
    C.check("smtplib: 8-bit message queued", len(ids) == 1, ids)
    if ids:
        hdr, rest = H.split_received(d.read_msg(ids[0]))
        C.check("smtplib: 8-bit body kept byte for byte (CRLF, unstuffed)",
                rest == msg, repr(rest[-300:]))


# --------------------------------------------------------- 3. pipelining
EHLO_EXT = ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES")


def check_ehlo_reply(name, r):
    kws = [ln[4:].split(" ")[0].upper() for ln in r.lines[1:]]
    ok = (r.code == 250 and len(r.lines) > 1 and
          all(ln.startswith("250-") for ln in r.lines[:-1]) and
          r.lines[-1].startswith("250 ") and
          all(k in kws for k in EHLO_EXT))
    C.check(name, ok, r)


def t_pipelining(d):
    section("3. pipelining")
    body = wire("Subject: pipe\n\npipelined body\n.dot\n")
    head = (b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n"
            b"RCPT TO:<root@localhost>\r\nRCPT TO:<postmaster@localhost>\r\n"
            b"DATA\r\n")

    # a) commands in one write, body + QUIT in a second one
    before = d.incoming_ids()
    with Client(d.port) as c:
        c.send(head)
        rs = c.read_replies(5)
        check_ehlo_reply("pipelining: multi-line EHLO with the 4 extensions",
                         rs[0])
        ok = ([r.lines[-1][:9] for r in rs[1:]] ==
              ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 End d"])
        C.check("pipelining: 250 2.1.0, 250 2.1.5 x2, 354 in order", ok, rs)
        c.send(body + b".\r\nQUIT\r\n")
        rs = c.read_all_replies(20)
        C.check("pipelining: 250 2.0.0 queued then 221 2.0.0",
                len(rs) == 2 and queued_id(rs[0]) and
                rs[1].lines[-1].startswith("221 2.0.0"), rs)
        C.check("pipelining: closed after QUIT", c.wait_closed(5))
    ids = new_ids(d, before)
    C.check("pipelining: one message queued", len(ids) == 1, ids)
    if ids:
        _, rest = H.split_received(d.read_msg(ids[0]))
        C.check("pipelining: body stored",
                rest == b"Subject: pipe\r\n\r\npipelined body\r\n.dot\r\n",
                rest)
        C.check("pipelining: 2 recipients in the envelope",
                len(d.read_env(ids[0])["rcpts"]) == 2)

    # b) everything, body and QUIT included, in one write
    before = d.incoming_ids()
    with Client(d.port) as c:
        c.send(head + body + b".\r\nQUIT\r\n")
        rs = c.read_all_replies(20)
        exp = [250, 250, 250, 250, 354, 250, 221]
        C.check("one-write transaction: replies %s" % exp,
                codes(rs) == exp and rs[1].lines[-1].startswith("250 2.1.0")
                and rs[5].lines[-1].startswith("250 2.0.0 Ok: queued as")
                and rs[6].lines[-1].startswith("221 2.0.0"), rs)
    ids = new_ids(d, before)
    C.check("one-write transaction: one message queued", len(ids) == 1, ids)

    # c) two messages back to back in one write
    before = d.incoming_ids()
    b1 = wire("Subject: first\n\nfirst message\n")
    b2 = wire("Subject: second\n\nsecond message\n")
    data = (b"EHLO client.example\r\n"
            b"MAIL FROM:<a@example.com>\r\nRCPT TO:<root@localhost>\r\n"
            b"DATA\r\n" + b1 + b".\r\n"
            b"MAIL FROM:<b@example.com>\r\nRCPT TO:<postmaster@localhost>\r\n"
            b"DATA\r\n" + b2 + b".\r\nQUIT\r\n")
    with Client(d.port) as c:
        c.send(data)
        rs = c.read_all_replies(20)
        exp = [250, 250, 250, 354, 250, 250, 250, 354, 250, 221]
        C.check("two pipelined messages: replies %s" % exp,
                codes(rs) == exp, rs)
        qids = [queued_id(r) for r in rs if r.code == 250 and queued_id(r)]
    ids = new_ids(d, before)
    C.check("two pipelined messages: 2 queued", len(ids) == 2, ids)
    if len(ids) == 2 and len(qids) == 2:
        got = {i: H.split_received(d.read_msg(i))[1] for i in qids}
        C.check("two pipelined messages: each body in its own file",
                got.get(qids[0]) == b1 and got.get(qids[1]) == b2, got)
        C.check("two pipelined messages: senders kept apart",
                d.read_env(qids[0])["sender"] == "a@example.com" and
                d.read_env(qids[1])["sender"] == "b@example.com")


# ---------------------------------------------------------------- 4. limits
def t_max_connections():
    d = daemon("maxconn", max_connections=3)
    cs = [Client(d.port) for _ in range(3)]
    C.check("max_connections=3: 3 sessions greeted",
            all(c.greeting.code == 220 for c in cs),
            [c.greeting for c in cs])
    with Client(d.port) as c4:
        C.check("max_connections=3: 4th gets 421 4.7.0",
                c4.greeting.lines[-1].startswith("421 4.7.0"), c4.greeting)
        C.check("max_connections=3: 4th is closed", c4.wait_closed(5))
    cs[0].cmd("QUIT")
    cs[0].close()

    def again():
        with Client(d.port) as c:
            return c.greeting.code == 220
    C.check("max_connections=3: a slot frees when a session ends",
            H.wait_for(again, 10, 0.2))
    for c in cs[1:]:
        c.close()
    d.stop()


def t_max_per_ip():
    d = daemon("maxip", max_connections_per_ip=2)
    cs = [Client(d.port) for _ in range(2)]
    C.check("max_connections_per_ip=2: 2 sessions greeted",
            all(c.greeting.code == 220 for c in cs))
    with Client(d.port) as c3:
        C.check("max_connections_per_ip=2: 3rd gets 421 4.7.0",
                c3.greeting.lines[-1].startswith("421 4.7.0"), c3.greeting)
        C.check("max_connections_per_ip=2: 3rd is closed", c3.wait_closed(5))
    try:
        with Client(d.port, source=("127.0.0.2", 0), timeout=20) as o:
            C.check("max_connections_per_ip=2: another address is served",
                    o.greeting.code == 220, o.greeting)
    except OSError as e:
        print("# skipped: cannot bind 127.0.0.2 (%s)" % e)
    for c in cs:
        c.close()
    d.stop()


def t_max_recipients():
    d = daemon("maxrcpt", max_recipients=2)
    with Client(d.port) as c:
        ehlo(c)
        rs = [c.cmd("MAIL FROM:<a@example.com>"),
              c.cmd("RCPT TO:<root@localhost>"),
              c.cmd("RCPT TO:<postmaster@localhost>"),
              c.cmd("RCPT TO:<root@localhost>")]
        C.check("max_recipients=2: 3rd RCPT gets 452 4.5.3",
                codes(rs[:3]) == [250, 250, 250] and
                rs[3].lines[-1].startswith("452 4.5.3"), rs)
        r = c.cmd("DATA")
        C.check("max_recipients=2: DATA still 354", r.code == 354, r)
        c.send(wire("Subject: two\n\nfor two\n") + b".\r\n")
        r = c.read_reply(30)
        C.check("max_recipients=2: message accepted", queued_id(r), r)
        qid = queued_id(r)
    if qid:
        C.check("max_recipients=2: envelope has 2 recipients",
                len(d.read_env(qid)["rcpts"]) == 2)
    d.stop()


def t_error_limit(d):
    with Client(d.port) as c:
        c.send(b"".join(b"BOGUS%d\r\n" % i for i in range(10)))
        rs = c.read_all_replies(10)
        C.check("10 bad commands: 500 replies then 421",
                rs and rs[-1].code == 421 and
                all(r.code == 500 for r in rs[:-1]) and len(rs) >= 2, rs)
        C.check("10 bad commands: connection closed", c.wait_closed(5))


def t_timeout():
    d = daemon("timeout", smtpd_timeout="2s")
    with Client(d.port) as c:
        t0 = time.monotonic()
        try:
            r = c.read_reply(15)
        except (Closed, socket.timeout) as e:
            r = e
        dt = time.monotonic() - t0
        C.check("smtpd_timeout=2s: idle session gets 421 4.4.2",
                isinstance(r, H.Reply) and
                r.lines[-1].startswith("421 4.4.2"), r)
        C.check("smtpd_timeout=2s: after 1.5-8 s (%.1f s)" % dt,
                1.5 <= dt <= 8, dt)
        C.check("smtpd_timeout=2s: idle session closed", c.wait_closed(5))
    # A client that trickles one byte every 0.5 s, never ending a line,
    # must not keep the session alive.
    with Client(d.port) as c:
        t0 = time.monotonic()
        cut = None
        got = b""
        for i in range(30):  # 15 s at most
            try:
                c.send(b"NOOP"[i % 4:i % 4 + 1])
            except OSError:
                cut = time.monotonic() - t0
                break
            c.sock.settimeout(0.5)
            try:
                chunk = c.sock.recv(4096)
                got += chunk
                if not chunk:
                    cut = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                cut = time.monotonic() - t0
                break
        C.check("smtpd_timeout=2s: a trickling client is cut off within "
                "8 s (%s)" % ("%.1f s" % cut if cut else "not cut off after "
                              "%.0f s" % (time.monotonic() - t0)),
                cut is not None and cut <= 8, got)
        C.check("smtpd_timeout=2s: the trickler got 421 4.4.2",
                b"421 4.4.2" in got, got)
    # A slow but honest client: one line every second is fine.
    with Client(d.port) as c:
        ok = True
        for _ in range(5):
            time.sleep(0.8)
            ok = ok and c.cmd("NOOP").code == 250
        C.check("smtpd_timeout=2s: a command every 0.8 s keeps it open "
                "past the timeout", ok)
    # A client that sends commands and never reads the replies: the
    # server stops reading, its reply writes stall, and smtpd_timeout
    # bounds that write (SPEC §9).
    with Client(d.port) as c:
        c.sock.settimeout(30)
        t0 = time.monotonic()
        chunk = b"NOOP\r\n" * 10000
        dropped = None
        sent = 0
        try:
            while time.monotonic() - t0 < 30:
                c.sock.sendall(chunk)
                sent += len(chunk)
        except socket.timeout:
            pass
        except OSError:
            dropped = time.monotonic() - t0
        if dropped is None and c.wait_closed(1):
            dropped = time.monotonic() - t0
        C.check("smtpd_timeout=2s: a client that never reads is dropped "
                "(%s, %d bytes sent)" %
                ("%.1f s" % dropped if dropped else "not dropped", sent),
                dropped is not None and dropped < 20)
    C.check("smtpd_timeout=2s: daemon alive", d.alive())
    d.stop()


def t_line_too_long(d):
    with Client(d.port) as c:
        ehlo(c)
        r = c.cmd("NOOP " + "x" * 600)
        C.check("600-octet command: 500 5.5.2",
                r.lines[-1].startswith("500 5.5.2"), r)
        r = c.cmd("NOOP")
        C.check("after the long line: NOOP still 250", r.code == 250, r)
        r = c.cmd("NOOP " + "y" * 505)  # 512 octets with CR LF
        C.check("512-octet command (the limit) is served", r.code == 250, r)
        r = c.cmd("NOOP " + "z" * 6000)
        C.check("6000-octet command: one 500 5.5.2",
                r.lines[-1].startswith("500 5.5.2"), r)
        rs = [c.cmd("MAIL FROM:<a@example.com>"),
              c.cmd("RCPT TO:<root@localhost>")]
        C.check("after long lines: a transaction still works",
                codes(rs) == [250, 250], rs)
        c.cmd("QUIT")


def t_message_size():
    d = daemon("msgsize", max_message_size="10k")
    with Client(d.port) as c:
        r = ehlo(c)
        C.check("max_message_size=10k: EHLO says SIZE 10240",
                "250-SIZE 10240" in r.lines, r)
        r = c.cmd("MAIL FROM:<a@example.com> SIZE=20000")
        C.check("MAIL SIZE=20000 over 10k: 552 5.3.4",
                r.lines[-1].startswith("552 5.3.4"), r)
        r = c.cmd("MAIL FROM:<a@example.com> SIZE=2000")
        C.check("MAIL SIZE=2000: 250", r.code == 250, r)
        c.cmd("RSET")
        # 20 KB without SIZE: read to its end, then 552, nothing queued
        big = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 256
        rs = send_raw(c, "a@example.com", ["root@localhost"], big)
        C.check("20 KB body over 10k: 552 after the data end",
                codes(rs[:3]) == [250, 250, 354] and
                rs[-1].lines[-1].startswith("552"), rs)
        C.check("20 KB body over 10k: nothing queued",
                d.count_incoming() == 0 and d.list_dir("msg") == [],
                (d.incoming_ids(), d.list_dir("msg")))
        rs = send_raw(c, "a@example.com", ["root@localhost"],
                      wire("Subject: small\n\nsmall\n"))
        C.check("after the 552: a small message is accepted",
                queued_id(rs[-1]), rs)
        n = d.count_incoming()
        # a text line over 1000 octets (1001 + CR LF) -> 552 after the
        # data end
        long_line = b"Subject: long\r\n\r\n" + b"L" * 1001 + b"\r\nend\r\n"
        rs = send_raw(c, "a@example.com", ["root@localhost"], long_line)
        C.check("1001-octet text line: 552 after the data end",
                rs[-1].lines[-1].startswith("552"), rs)
        C.check("1001-octet text line: nothing queued",
                d.count_incoming() == n)
        ok_line = b"Subject: edge\r\n\r\n" + b"E" * 998 + b"\r\nend\r\n"
        rs = send_raw(c, "a@example.com", ["root@localhost"], ok_line)
        C.check("998 octets + CR LF (the 1000 limit): accepted",
                queued_id(rs[-1]), rs)
        qid = queued_id(rs[-1])
        if qid:
            C.check("998-octet line stored whole",
                    H.split_received(d.read_msg(qid))[1] == ok_line)
        r = c.cmd("NOOP")
        C.check("after the size errors: the session still works",
                r.code == 250, r)
        c.cmd("QUIT")
    d.stop()


def t_limits(d_main):
    section("4. limits")
    run("max_connections", t_max_connections)
    run("max_connections_per_ip", t_max_per_ip)
    run("max_recipients", t_max_recipients)
    run("error limit", t_error_limit, d_main)
    run("smtpd_timeout", t_timeout)
    run("line too long", t_line_too_long, d_main)
    run("max_message_size", t_message_size)


# ------------------------------------------------------------ 5. smuggling
FAKES = [("\\n.\\n", b"\n.\n"), ("\\r.\\r", b"\r.\r"),
         ("\\n.\\r\\n", b"\n.\r\n"), ("\\r\\n.\\n", b"\r\n.\n"),
         ("\\r\\n.\\r+text", b"\r\n.\r")]
SMUGGLED = (b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<root@localhost>\r\n"
            b"DATA\r\nsmuggled\r\n")


def smuggle(d, fake):
    with Client(d.port) as c:
        ehlo(c)
        rs = [c.cmd("MAIL FROM:<good@example.com>"),
              c.cmd("RCPT TO:<root@localhost>"), c.cmd("DATA")]
        assert codes(rs) == [250, 250, 354], rs
        c.send(b"Subject: s\r\n\r\nbefore" + fake + SMUGGLED +
               b"\r\n.\r\nQUIT\r\n")
        return c.read_all_replies(20)


def t_smuggling(d):
    section("5. SMTP smuggling")
    for name, fake in FAKES:
        before = d.incoming_ids()
        rs = smuggle(d, fake)
        ids = new_ids(d, before)
        C.check("smuggling %s: replies 250 then 221 only" % name,
                codes(rs) == [250, 221], rs)
        C.check("smuggling %s: exactly one message" % name, len(ids) == 1,
                ids)
        if len(ids) == 1:
            msg = d.read_msg(ids[0])
            C.check("smuggling %s: smuggled text is inside the message" %
                    name, b"smuggled" in msg and
                    b"MAIL FROM:<evil@example.com>" in msg, msg)
            C.check("smuggling %s: sender is the real one" % name,
                    d.read_env(ids[0])["sender"] == "good@example.com")
    dr = daemon("smuggle-reject", bare_newline="reject")
    for name, fake in FAKES:
        before = dr.incoming_ids()
        rs = smuggle(dr, fake)
        C.check("bare_newline=reject %s: 554 then 221" % name,
                codes(rs) == [554, 221], rs)
        C.check("bare_newline=reject %s: nothing queued" % name,
                new_ids(dr, before) == [])
    C.check("bare_newline=reject: no message files left",
            dr.list_dir("msg") == [], dr.list_dir("msg"))
    # a clean message is still accepted with reject
    with Client(dr.port) as c:
        ehlo(c)
        rs = send_raw(c, "a@example.com", ["root@localhost"],
                      wire("Subject: clean\n\nclean\n"))
        C.check("bare_newline=reject: a CR LF message is accepted",
                queued_id(rs[-1]), rs)
    dr.stop()


# -------------------------------------------------------------- 6. SIGKILL
def kill_body(tok):
    lines = ["Subject: token %s" % tok, "Message-ID: <%s@test>" % tok, ""]
    lines += ["%s line %02d abcdefghijklmnopqrstuvwxyz" % (tok, i)
              for i in range(20)]
    lines.append("END-%s" % tok)
    return wire("\n".join(lines) + "\n")


def t_sigkill():
    section("6. SIGKILL under load")
    d = daemon("sigkill")
    acked = {}          # token -> queue id from the 250 reply
    lock = threading.Lock()
    stop = threading.Event()
    nworkers, per = 4, 50

    def worker(w):
        try:
            c = Client(d.port, timeout=30)
            ehlo(c, "worker%d.example" % w)
            for i in range(per):
                if stop.is_set():
                    break
                tok = "T%d-%03d-%08x" % (w, i, random.getrandbits(32))
                c.send("MAIL FROM:<w%d@example.com>\r\nRCPT TO:<root@"
                       "localhost>\r\nDATA\r\n" % w)
                rs = c.read_replies(3)
                if codes(rs) != [250, 250, 354]:
                    break
                c.send(kill_body(tok) + b".\r\n")
                r = c.read_reply(30)
                qid = queued_id(r)
                if not qid:
                    break
                with lock:
                    acked[tok] = qid
            c.close()
        except (OSError, Closed, AssertionError):
            pass

    threads = [threading.Thread(target=worker, args=(w,), daemon=True)
               for w in range(nworkers)]
    target = random.randint(10, 150)
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while (len(acked) < target and any(t.is_alive() for t in threads) and
           time.monotonic() < deadline):
        time.sleep(0.001)
    time.sleep(random.random() * 0.02)
    d.kill()
    stop.set()
    for t in threads:
        t.join(30)
    with lock:
        acked = dict(acked)
    print("# SIGKILL after %d acknowledged messages (target %d)" %
          (len(acked), target))
    C.check("SIGKILL: some messages were acknowledged first", acked)
    # What the kill left, before recovery
    d.start()
    C.check("SIGKILL: smaltd restarts on the same spool", d.alive())
    by_token = {}
    bad = []
    for qid in d.incoming_ids():
        try:
            env = d.read_env(qid)
            msg = d.read_msg(qid)
        except OSError as e:
            bad.append((qid, "unreadable: %s" % e))
            continue
        if not env["complete"] or env.get("id") != qid or not env["rcpts"]:
            bad.append((qid, "bad envelope %r" % env))
            continue
        hdr, rest = H.split_received(msg)
        m = re.match(rb"Subject: token (\S+)\r\n", rest)
        if not hdr.startswith(b"Received: ") or not m:
            bad.append((qid, "no Received/Subject: %r" % msg[:200]))
            continue
        tok = m.group(1).decode()
        if rest != kill_body(tok):
            bad.append((qid, "truncated or changed body"))
            continue
        if env.get("size") and int(env["size"]) != len(msg):
            bad.append((qid, "size %s != %d" % (env["size"], len(msg))))
        by_token[tok] = qid
    C.check("SIGKILL: every queued message is whole (%d in incoming/)" %
            len(by_token), not bad, bad[:5])
    missing = [t for t in acked if t not in by_token]
    C.check("SIGKILL: every acknowledged message survived (%d)" %
            len(acked), not missing, missing[:10])
    wrong = [t for t in acked if t in by_token and by_token[t] != acked[t]]
    C.check("SIGKILL: under the queue id the 250 reply gave", not wrong,
            wrong[:5])
    C.check("SIGKILL: spool/tmp empty after restart",
            d.list_dir("tmp") == [], d.list_dir("tmp"))
    C.check("SIGKILL: spool/corrupt empty", d.list_dir("corrupt") == [],
            d.list_dir("corrupt"))
    C.check("SIGKILL: every msg/ file has an envelope",
            set(d.list_dir("msg")) == set(d.incoming_ids()),
            set(d.list_dir("msg")) ^ set(d.incoming_ids()))
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as s:
        s.sendmail("a@example.com", ["root@localhost"],
                   b"Subject: after\r\n\r\nafter restart\r\n")
    C.check("SIGKILL: mail accepted after the restart", True)
    d.stop()


# ------------------------------------------------------ 7. 1,000 sessions
def t_thousand():
    section("7. 1,000 idle sessions")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        C.check("1,000 sessions: RLIMIT_NOFILE hard limit >= 1200", False,
                hard)
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d = daemon("thousand", max_connections=1100, max_connections_per_ip=1100)
    socks = []
    greeted = 0
    try:
        t0 = time.monotonic()
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", d.port), 30)
            socks.append(s)
        bufs = {}
        for s in socks:
            s.settimeout(30)
            b = b""
            while b"\n" not in b:
                chunk = s.recv(512)
                if not chunk:
                    break
                b += chunk
            if b.startswith(b"220 "):
                greeted += 1
            bufs[s] = b
        dt = time.monotonic() - t0
        C.check("1,000 sessions: all greeted with 220 (%.1f s)" % dt,
                greeted == 1000, greeted)
        t1 = time.monotonic()
        with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as sm:
            refused = sm.sendmail("a@example.com", ["root@localhost"],
                                  b"Subject: busy\r\n\r\nwhile busy\r\n")
        dt = time.monotonic() - t1
        C.check("1,000 sessions: a message is accepted meanwhile",
                refused == {} and d.count_incoming() == 1)
        C.check("1,000 sessions: ... within 10 s (%.2f s)" % dt, dt < 10)
        alive_fds = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    continue
            except BlockingIOError:
                alive_fds += 1
            except OSError:
                continue
        C.check("1,000 sessions: all still open", alive_fds == 1000,
                alive_fds)
    finally:
        for s in socks:
            s.close()
    C.check("1,000 sessions: all disconnects logged",
            d.wait_log(r"disconnect from ", 30, count=1001),
            len(re.findall("disconnect from", d.log())))
    C.check("1,000 sessions: daemon alive", d.alive())
    with Client(d.port) as c:
        C.check("1,000 sessions: served after they closed",
                c.greeting.code == 220 and c.cmd("NOOP").code == 250)
    d.stop()


# ----------------------------------------------------------- 8. robustness
def msg_orphans(d):
    queued = set(d.incoming_ids()) | set(d.list_dir("deferred")) | \
        set(d.list_dir("hold"))
    return sorted(set(d.list_dir("msg")) - queued)


def t_robustness(d):
    section("8. robustness")
    with Client(d.port) as c:
        ehlo(c)
        r1 = c.cmd(b"NO\x00OP")
        r2 = c.cmd(b"\x00\x00\x00")
        r3 = c.cmd(b"MAIL FROM:<a\x00b@example.com>")
        C.check("NUL bytes in commands: 500 each",
                [r1.code, r2.code, r3.code] == [500, 500, 500],
                (r1, r2, r3))
        C.check("NUL bytes: session still works", c.cmd("NOOP").code == 250)
    C.check("NUL bytes: daemon alive", d.alive())

    rnd = random.Random(1234)
    garbage = bytes(rnd.getrandbits(8) for _ in range(65536))
    with Client(d.port) as c:
        try:
            c.send(garbage)
        except OSError:
            pass
        closed = c.wait_closed(20)
    C.check("64 KB of garbage: connection ends", closed)
    C.check("64 KB of garbage: daemon alive", d.alive())
    garbage2 = garbage.replace(b"\n", b"x").replace(b"\r", b"y")
    with Client(d.port) as c:
        try:
            c.send(garbage2)
            c.send(b"\r\nQUIT\r\n")
        except OSError:
            pass
        rs = c.read_all_replies(10)
        C.check("64 KB without a line end: one 500 5.5.2, then QUIT works",
                codes(rs) == [500, 221] and
                rs[0].lines[-1].startswith("500 5.5.2"), rs)
    C.check("64 KB without a line end: daemon alive", d.alive())

    with Client(d.port) as c:
        c.send(b"EHLO client.example\r\nMAIL FROM:")
        c.shutdown_write()
        rs = c.read_all_replies(10)
        C.check("half-close after 'MAIL FROM:' without newline: EHLO "
                "answered, then closed", codes(rs) == [250] and
                c.wait_closed(5), rs)
    with Client(d.port) as c:
        c.send(b"QUIT\r\n")
        c.shutdown_write()
        rs = c.read_all_replies(10)
        C.check("half-close right after QUIT: 221 2.0.0",
                len(rs) == 1 and rs[0].lines[-1].startswith("221 2.0.0"), rs)
    before = d.incoming_ids()
    with Client(d.port) as c:
        c.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n"
               b"RCPT TO:<root@localhost>\r\nDATA\r\n" +
               wire("Subject: hc\n\nhalf-closed\n") + b".\r\nQUIT\r\n")
        c.shutdown_write()
        rs = c.read_all_replies(20)
        C.check("whole transaction then half-close: all replies",
                codes(rs) == [250, 250, 250, 354, 250, 221], rs)
    C.check("whole transaction then half-close: queued",
            len(new_ids(d, before)) == 1)

    ndisc = len(re.findall("disconnect from", d.log()))
    before = d.incoming_ids()
    with Client(d.port) as c:
        ehlo(c)
        rs = [c.cmd("MAIL FROM:<a@example.com>"),
              c.cmd("RCPT TO:<root@localhost>"), c.cmd("DATA")]
        C.check("disconnect in DATA: got 354", codes(rs) == [250, 250, 354],
                rs)
        c.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 500 +
               b"no end")
    C.check("disconnect in DATA: session ends",
            d.wait_log("disconnect from", 10, ndisc + 1))
    C.check("disconnect in DATA: nothing queued", new_ids(d, before) == [])
    C.check("disconnect in DATA: no leftover in msg/",
            H.wait_for(lambda: msg_orphans(d) == [], 10), msg_orphans(d))
    C.check("disconnect in DATA: tmp/ empty",
            H.wait_for(lambda: d.list_dir("tmp") == [], 10),
            d.list_dir("tmp"))

    # a client gone while its message is being committed
    ndisc = len(re.findall("disconnect from", d.log()))
    c = Client(d.port)
    c.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n"
           b"RCPT TO:<root@localhost>\r\nDATA\r\n" +
           wire("Subject: gone\n\ngone\n") + b".\r\n")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                      b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    C.check("client reset around the commit: session ends",
            d.wait_log("disconnect from", 10, ndisc + 1))
    C.check("client reset around the commit: no orphan in msg/",
            H.wait_for(lambda: msg_orphans(d) == [], 10), msg_orphans(d))

    # many short-lived connections that reset at once
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", d.port), 10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    C.check("50 connect-and-reset clients: daemon alive",
            H.wait_for(lambda: d.alive(), 1) and d.alive())

    p = subprocess.run(
        ["swaks", "--server", "127.0.0.1:%d" % d.port, "--to",
         "root@localhost", "--from", "a@example.com"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    C.check("after all that: swaks succeeds", p.returncode == 0 and
            b"250 2.0.0 Ok: queued as" in p.stdout, p.stdout[-800:])
    C.check("after all that: daemon alive", d.alive())


# --------------------------------------------------------------- 9. policy
def t_policy(d_main):
    section("9. policy")
    d = daemon("untrusted", relay_networks="10.0.0.0/8")
    with Client(d.port, timeout=15) as c:
        ehlo(c, "helo.example")
        rs = [c.cmd("MAIL FROM:<sender@example.com>"),
              c.cmd("RCPT TO:<x@example.com>")]
        C.check("untrusted client: RCPT to a remote domain gets 554 5.7.1",
                rs[0].code == 250 and
                rs[1].lines[-1].startswith("554 5.7.1"), rs)
        r = c.cmd("RCPT TO:<root@localhost>")
        C.check("untrusted client: RCPT to a local user is accepted",
                r.code == 250, r)
        r = c.cmd("RCPT TO:<@localhost:x@example.com>")
        C.check("untrusted client: source-routed remote RCPT is no relay",
                r.code != 250, r)
        r = c.cmd("RCPT TO:<x@example.com@localhost>")
        C.check("untrusted client: x@example.com@localhost is refused",
                r.code >= 500, r)
        c.cmd("QUIT")
    rx = (r"smalt/smtpd\[\d+\]: NOQUEUE: reject: RCPT from %s\[127\.0\.0\.1\]"
          r": 554 5\.7\.1 <x@example\.com>: Relay access denied; "
          r"from=<sender@example\.com> to=<x@example\.com> proto=ESMTP "
          r"helo=<helo\.example>$" % CLIENT)
    C.check("untrusted client: SPEC §7 reject log line",
            d.wait_log(rx, 5), d.log()[-1500:])

    # early talker
    s = socket.create_connection(("127.0.0.1", d.port), 10)
    s.sendall(b"EHLO early.example\r\n")
    c = Client.__new__(Client)
    c.sock, c.buf, c.eof, c.timeout = s, b"", False, 10
    try:
        r = c.read_reply(10)
    except (Closed, socket.timeout, OSError) as e:
        r = e
    C.check("early talker: 554", isinstance(r, H.Reply) and r.code == 554,
            r)
    C.check("early talker: closed", c.wait_closed(5))
    c.close()
    C.check("early talker: logged", d.wait_log("early talker", 5))

    # a patient client is greeted within about a second
    t0 = time.monotonic()
    with Client(d.port, timeout=15) as c:
        dt = time.monotonic() - t0
        C.check("patient untrusted client: 220 within 4 s (%.2f s)" % dt,
                c.greeting.code == 220 and dt < 4, c.greeting)
        C.check("patient untrusted client: session works",
                c.cmd("EHLO x.example").code == 250)
    d.stop()

    with Client(d_main.port) as c:
        ehlo(c)
        c.cmd("MAIL FROM:<a@example.com>")
        r = c.cmd("RCPT TO:<x@example.com>")
        C.check("trusted (default relay_networks): remote RCPT 250",
                r.code == 250, r)
        r = c.cmd("RCPT TO:<nosuchuser12345@localhost>")
        C.check("unknown local user: 550 5.1.1",
                r.lines[-1].startswith("550 5.1.1"), r)
        r = c.cmd("RCPT TO:<MyAlias@localhost>")
        C.check("alias 'myalias: root': RCPT TO:<MyAlias@localhost> 250",
                r.code == 250, r)
        r = c.cmd("RCPT TO:<root@LocalHost>")
        C.check("domain case-insensitive: root@LocalHost 250", r.code == 250,
                r)
        r = c.cmd("RCPT TO:<Postmaster>")
        C.check("RCPT TO:<Postmaster> without domain: 250", r.code == 250,
                r)
        c.cmd("QUIT")
    C.check("unknown local user: reject logged",
            d_main.wait_log(r"NOQUEUE: reject: RCPT from %s\[127\.0\.0\.1\]: "
                            r"550 5\.1\.1 <nosuchuser12345@localhost>" %
                            CLIENT, 5))


# ------------------------------------------------------------ 10. protocol
def t_protocol(d):
    section("10. protocol")
    seen = []   # replies that must carry an enhanced status code

    def cmd(c, line):
        r = c.cmd(line)
        seen.append((line, r))
        return r

    before = d.incoming_ids()
    with Client(d.port) as c:
        r = cmd(c, "MAIL FROM:<a@example.com>")
        C.check("MAIL before EHLO: 503 5.5.1",
                r.lines[-1].startswith("503 5.5.1"), r)
        r = c.cmd("ehlo client.example")
        C.check("lower-case ehlo: 250", r.code == 250, r)
        r = cmd(c, "rcpt to:<root@localhost>")
        C.check("RCPT before MAIL: 503", r.code == 503, r)
        r = cmd(c, "mail from:<a@example.com>")
        C.check("lower-case mail from: 250", r.code == 250, r)
        r = cmd(c, "data")
        C.check("DATA before RCPT: 503", r.code == 503, r)
        r = cmd(c, "Mail From:<b@example.com>")
        C.check("nested MAIL: 503", r.code == 503, r)
        r = cmd(c, "rset")
        C.check("RSET: 250", r.code == 250, r)
        r = cmd(c, "MaIl FrOm:<c@example.com>")
        C.check("mixed-case MAIL after RSET: 250", r.code == 250, r)
        r = cmd(c, "RcPt tO:<root@localhost>")
        C.check("mixed-case RCPT: 250", r.code == 250, r)
        r = c.cmd("DaTa")
        C.check("mixed-case DATA: 354", r.code == 354, r)
        c.send(wire("Subject: case\n\ncase\n") + b".\r\n")
        r = c.read_reply(30)
        seen.append(("end of data", r))
        C.check("mixed-case transaction queued", queued_id(r), r)
        qid = queued_id(r)
        r = cmd(c, "qUiT")
        C.check("mixed-case QUIT: 221", r.code == 221, r)
    if qid:
        C.check("after RSET the new sender counts",
                d.read_env(qid)["sender"] == "c@example.com")

    with Client(d.port) as c:
        ehlo(c)
        r = cmd(c, "VRFY root")
        C.check("VRFY: 252", r.code == 252, r)
        r = cmd(c, "EXPN root")
        C.check("EXPN: 502 5.5.1", r.lines[-1].startswith("502 5.5.1"), r)
        r = cmd(c, "EXPN myalias")
        C.check("EXPN of an alias lists nothing: 502",
                r.code == 502 and "root" not in r.text, r)
        r = cmd(c, "HELP")
        C.check("HELP: 214", r.code == 214, r)
        r = cmd(c, "NOOP")
        C.check("NOOP: 250", r.code == 250, r)
        r = cmd(c, "FROBNICATE now")
        C.check("unknown command: 500 5.5.2",
                r.lines[-1].startswith("500 5.5.2"), r)
        r = cmd(c, "MAIL FROM:<>")
        C.check("MAIL FROM:<> (null sender): 250", r.code == 250, r)
        r = cmd(c, "RCPT TO:<root@localhost>")
        c.send(b"DATA\r\n")
        r = c.read_reply()
        c.send(wire("Subject: bounce\n\nnull sender\n") + b".\r\n")
        r = c.read_reply(30)
        seen.append(("end of data", r))
        C.check("null sender message queued", queued_id(r), r)
        if queued_id(r):
            C.check("null sender stored as empty",
                    d.read_env(queued_id(r))["sender"] == "")
        r = cmd(c, "MAIL FROM:<a b c>")
        C.check("bad sender syntax: 501", r.code == 501, r)
        r = cmd(c, "MAIL FROM:<a@>")
        C.check("bad sender domain: 501", r.code == 501, r)
        r = cmd(c, "MAIL FROM:<a@example.com>")
        r = cmd(c, "RCPT TO:<@@bad@@>")
        C.check("bad recipient syntax: 501", r.code == 501, r)
        r = cmd(c, "RCPT TO:root@localhost")
        C.check("RCPT without brackets is tolerated: 250", r.code == 250, r)
        cmd(c, "RSET")
        r = cmd(c, "MAIL")
        C.check("MAIL without FROM: 501", r.code == 501, r)
        r = cmd(c, "QUIT")

    with Client(d.port) as c:
        r = c.cmd("HELO client.example")
        C.check("HELO: 250 with the hostname",
                r.code == 250 and H.HOSTNAME in r.text, r)
        r = cmd(c, "MAIL FROM:<a@example.com> SIZE=10")
        C.check("after HELO: MAIL works", r.code in (250, 555), r)
        if r.code != 250:
            cmd(c, "MAIL FROM:<a@example.com>")
        cmd(c, "RCPT TO:<root@localhost>")
        c.cmd("DATA")
        c.send(wire("Subject: helo\n\nhelo\n") + b".\r\n")
        r = c.read_reply(30)
        seen.append(("end of data", r))
        qid = queued_id(r)
        C.check("HELO transaction queued", qid, r)
        if qid:
            hdr, _ = H.split_received(d.read_msg(qid))
            C.check("HELO transaction: Received ... with SMTP",
                    b"(smalt) with SMTP id " + qid.encode() in hdr, hdr)
        cmd(c, "QUIT")

    bad = []
    for line, r in seen:
        for ln in r.lines:
            m = ENH_RX.match(ln)
            if not m or ln[0] != ln[4]:
                bad.append((line, ln))
    C.check("every reply (not greeting, HELO/EHLO, 354) has an enhanced "
            "status code of its class (%d replies)" % len(seen), not bad,
            bad)


# ------------------------------------------------------- 11. bare newlines
def t_bare_lf(d):
    section("11. bare LF")
    before = d.incoming_ids()
    with Client(d.port) as c:
        ehlo(c)
        rs = [c.cmd("MAIL FROM:<a@example.com>"),
              c.cmd("RCPT TO:<root@localhost>"), c.cmd("DATA")]
        c.send(b"Subject: lf\n\nline1\nline2\n..x\n.\nmid\r..y\r\n"
               b"crlf\r\n..z\r\nlast\r\n.\r\n")
        r = c.read_reply(30)
        C.check("bare LF (normalize): accepted",
                codes(rs) == [250, 250, 354] and queued_id(r), (rs, r))
        c.cmd("QUIT")
    ids = new_ids(d, before)
    if len(ids) == 1:
        _, rest = H.split_received(d.read_msg(ids[0]))
        exp = (b"Subject: lf\r\n\r\nline1\r\nline2\r\n.x\r\n.\r\nmid\r\n"
               b".y\r\ncrlf\r\n.z\r\nlast\r\n")
        C.check("bare LF: stored with CR LF, dots unstuffed", rest == exp,
                rest)
        msg = d.read_msg(ids[0])
        C.check("bare LF: no bare CR or LF in the stored file",
                re.search(rb"\r(?!\n)|(?<!\r)\n", msg) is None)
    else:
        C.check("bare LF: one message queued", False, ids)


# ------------------------------------------------------------------ main
def main():
    t_start = time.monotonic()
    if not H.SMALT_BUILD:
        print("SMALT_BUILD must name the build directory")
        return 2
    aliases = os.path.join(BASE, "aliases")
    with open(aliases, "w") as f:
        f.write("# test aliases\nmyalias: root\n")
    os.chmod(aliases, 0o644)

    run("1", t_swaks)
    d_main = None
    try:
        d_main = daemon("main", aliases=aliases)
    except Exception as e:  # noqa: BLE001
        C.error("main daemon starts", e)
    if d_main:
        run("2", t_smtplib, d_main)
        run("3", t_pipelining, d_main)
        run("4", t_limits, d_main)
        run("5", t_smuggling, d_main)
    run("6", t_sigkill)
    run("7", t_thousand)
    if d_main:
        run("8", t_robustness, d_main)
        run("9", t_policy, d_main)
        run("10", t_protocol, d_main)
        run("11", t_bare_lf, d_main)
        C.check("main daemon alive at the end", d_main.alive())

    section("shutdown")
    bad = []
    for line in (r.lines for r in Client.all_replies):
        first = line[0]
        if (first.startswith("220 ") or first.startswith("354 ") or
                first.startswith("250-" + H.HOSTNAME) or
                first == "250 " + H.HOSTNAME):
            continue  # greeting, EHLO/HELO, 3xx: no code (RFC 2034)
        for ln in line:
            if not ENH_RX.match(ln) or ln[0] != ln[4]:
                bad.append(ln)
    C.check("every reply read in this test (%d) has an enhanced status "
            "code, except greetings, HELO/EHLO and 354" %
            len(Client.all_replies), not bad, bad[:10])
    H.check_stop_all(C, ALL_DAEMONS, every=True)
    san = H.sanitizer_reports(ALL_DAEMONS)
    C.check("no sanitizer reports in any daemon log", not san, san[:2])
    return H.finish_run(C, t_start)


if __name__ == "__main__":
    sys.exit(main())
