#!/usr/bin/env python3
"""smaltd's delivery side end to end (SPEC §3, §4, §5, §7, §8, §9): the
real daemon takes mail over SMTP and delivers it through aliases (users,
lists, /file, |command, :include:, owner-LIST, loops, remote members),
system users' mbox and Maildir, virtual mailboxes, pipe: and error:
routes; bounces and delay warnings are read back and parsed as RFC 3464
reports; retries, queue_lifetime, delay_warning, concurrency limits, a
SIGKILL of every process mid-delivery, and pflogsumm over the log.
Each check prints one line; the last line is "N passed, N failed".

Run as root (as CI does) for everything; as another user the parts
that need test system users print SKIP and the rest still runs. Test
users smaltt1..3 are created when missing (useradd -M), with homes in
this run's temporary folder."""

import email
import email.utils
import mailbox
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402
from smalt_harness import Daemon  # noqa: E402

C = H.Checker()
BASE = H.make_tmp_base("smalt-deliver.")
ROOT = os.geteuid() == 0
HOST = H.HOSTNAME
LOCAL_DOMAINS = "%s, localhost" % HOST
ALL_DAEMONS = []
USERS = {}  # name -> pwd entry (root only)
T0 = time.monotonic()

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
ASCTIME = r"(?:%s) (?:%s) [ 123]\d \d\d:\d\d:\d\d \d{4}" % (DAYS, MONTHS)
RFC5322_DATE = (r"(?:(?:%s), )?\d{1,2} (?:%s) \d{4} \d\d:\d\d(?::\d\d)? "
                r"[+-]\d{4}" % (DAYS, MONTHS))
LOG_PREFIX = r"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ "

# The body every test message carries (LF here, CR LF on the wire): lines
# an mbox must quote (mboxrd), lines it must not, and a dot line that
# SMTP stuffs and unstuffs.
BODY = ("first line\n"
        "From the start of a line\n"
        ">From already quoted once\n"
        ">>From quoted twice\n"
        "From\n"
        "Fromage is not a From_ line\n"
        ".a line that starts with a dot\n"
        "last line\n")
BODY_MBOX = ("first line\n"
             ">From the start of a line\n"
             ">>From already quoted once\n"
             ">>>From quoted twice\n"
             "From\n"
             "Fromage is not a From_ line\n"
             ".a line that starts with a dot\n"
             "last line\n")


# ---------------------------------------------------------------- helpers
section = C.section
skip = C.skip
run = C.run
mkdir = H.make_dir
write = H.write_file
read = H.read_file
mbox_messages = H.mbox_messages


def script(name, text):
    return write(os.path.join(BASE, "bin", name), text, 0o755)


def owner_uid(path):
    try:
        return os.stat(path).st_uid
    except OSError:
        return None


def daemon(name, **kw):
    d = Daemon(BASE, name, **kw)
    ALL_DAEMONS.append(d)
    return d.start()


def make_msg(subject, body=BODY, headers="", to="someone@example.org",
             frm="Alice Sender <alice@example.org>"):
    """A message as bytes with CR LF line ends."""
    text = ("From: %s\nTo: %s\nSubject: %s\nDate: %s\n"
            "Message-ID: <%s.%d@test.example>\n%s\n%s" %
            (frm, to, subject, email.utils.formatdate(localtime=True),
             re.sub(r"\W", "", subject), os.getpid(), headers, body))
    return text.replace("\n", "\r\n").encode("latin-1")


def send(d, sender, rcpts, msg):
    """One SMTP transaction with smtplib. Returns (queue id or None,
    {rcpt: (code, text)})."""
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as s:
        s.ehlo()
        code, resp = s.mail(sender)
        if code != 250:
            raise RuntimeError("MAIL FROM:<%s>: %d %r" % (sender, code, resp))
        replies = {}
        for r in rcpts:
            replies[r] = s.rcpt(r)
        if not any(c == 250 for c, _ in replies.values()):
            s.rset()
            return None, replies
        code, resp = s.data(msg)
        m = re.search(rb"queued as ([0-9A-F]+)", resp)
        qid = m.group(1).decode() if code == 250 and m else None
        if qid is None:
            raise RuntimeError("DATA: %d %r" % (code, resp))
        return qid, replies


def with_subject(msgs, subject):
    return [m for m in msgs if m.get("Subject") == subject]


def wait_mbox(path, subject, count=1, timeout=30.0):
    """Waits until the mbox holds count messages with this Subject;
    returns them (fewer on timeout)."""
    got = H.wait_for(lambda: len(with_subject(mbox_messages(path), subject))
                     >= count, timeout, 0.1)
    msgs = with_subject(mbox_messages(path), subject)
    return msgs if got or msgs else []


def payload_text(m):
    p = m.get_payload(decode=False)
    return p if isinstance(p, str) else None


def log_lines(d, rx):
    return re.findall(rx, d.log(), re.M)


def wait_removed(d, qids, timeout=30.0):
    """Waits (one deadline for all) until the log says each is removed."""
    rxs = [re.compile(r"smalt/qmgr\[\d+\]: %s: removed$" % q, re.M)
           for q in qids if q]
    return H.wait_for(lambda: all(rx.search(d.log()) for rx in rxs),
                      timeout, 0.1)


def bounce_id(d, qid, kind="sender non-delivery"):
    m = re.search(r"smalt/bounce\[\d+\]: %s: %s notification: ([0-9A-F]+)$"
                  % (qid, kind), d.log(), re.M)
    return m.group(1) if m else None


def find_bounce(path, final_rcpt, timeout=30.0, action="failed"):
    """The first DSN in the mbox at path whose delivery-status part names
    final_rcpt with the given Action, else None."""
    found = []

    def look():
        for m in mbox_messages(path):
            for rcpt_fields in dsn_recipients(m):
                fr = rcpt_fields.get("Final-Recipient", "")
                if (fr.split(";")[-1].strip().lower() == final_rcpt.lower()
                        and rcpt_fields.get("Action", "").strip() == action):
                    found.append(m)
                    return True
        return False
    H.wait_for(look, timeout, 0.1)
    return found[0] if found else None


def dsn_parts(m):
    """(text/plain, message/delivery-status, original) parts of a report,
    Nones where missing."""
    if not m.is_multipart():
        return None, None, None
    parts = m.get_payload()
    plain = next((p for p in parts if p.get_content_type() == "text/plain"),
                 None)
    status = next((p for p in parts
                   if p.get_content_type() == "message/delivery-status"),
                  None)
    orig = next((p for p in parts if p.get_content_type() in
                 ("message/rfc822", "text/rfc822-headers")), None)
    return plain, status, orig


def dsn_recipients(m):
    """The per-recipient field groups of a DSN, as dicts."""
    _, status, _ = dsn_parts(m)
    if status is None:
        return []
    blocks = status.get_payload()
    if not isinstance(blocks, list):
        return []
    return [dict(b.items()) for b in blocks[1:]]


def dsn_message_fields(m):
    _, status, _ = dsn_parts(m)
    if status is None or not isinstance(status.get_payload(), list):
        return {}
    blocks = status.get_payload()
    return dict(blocks[0].items()) if blocks else {}


def original_subject(m):
    _, _, orig = dsn_parts(m)
    if orig is None:
        return None
    if orig.get_content_type() == "message/rfc822":
        inner = orig.get_payload()
        if isinstance(inner, list) and inner:
            return inner[0].get("Subject")
        return None
    hm = re.search(r"^Subject: (.*)$", orig.get_payload(), re.M)
    return hm.group(1).strip() if hm else None


def unfold(s):
    return re.sub(r"\s+", " ", s or "").strip()


def check_dsn(name, m, rcpt, status_rx, diag_rx, subject, action="failed",
              to=None):
    """The RFC 3464 shape of one notification as read from a mailbox
    (SPEC §5, §9)."""
    C.check("%s: a notification arrived" % name, m is not None)
    if m is None:
        return
    C.check("%s: Content-Type multipart/report; "
            "report-type=delivery-status" % name,
            m.get_content_type() == "multipart/report" and
            m.get_param("report-type") == "delivery-status",
            m.get("Content-Type"))
    frm = email.utils.parseaddr(m.get("From", ""))[1]
    C.check("%s: From MAILER-DAEMON@%s" % (name, HOST),
            frm.lower() == ("MAILER-DAEMON@%s" % HOST).lower(), m.get("From"))
    C.check("%s: envelope sender is null (Return-Path: <>)" % name,
            m.get_all("Return-Path") == ["<>"], m.get_all("Return-Path"))
    C.check("%s: mbox From_ line names MAILER-DAEMON" % name,
            re.match(r"MAILER-DAEMON %s$" % ASCTIME, m.get_from() or ""),
            m.get_from())
    if to is not None:
        C.check("%s: To: %s" % (name, to),
                email.utils.parseaddr(m.get("To", ""))[1].lower() ==
                to.lower(), m.get("To"))
    C.check("%s: Date is an RFC 5322 date" % name,
            re.fullmatch(RFC5322_DATE, unfold(m.get("Date"))), m.get("Date"))
    plain, status, orig = dsn_parts(m)
    types = [p.get_content_type() for p in m.get_payload()] \
        if m.is_multipart() else []
    C.check("%s: parts text/plain, message/delivery-status, original" % name,
            len(types) == 3 and types[0] == "text/plain" and
            types[1] == "message/delivery-status" and
            types[2] in ("message/rfc822", "text/rfc822-headers"), types)
    mf = dsn_message_fields(m)
    C.check("%s: Reporting-MTA: dns; %s" % (name, HOST),
            unfold(mf.get("Reporting-MTA")).lower() ==
            ("dns; %s" % HOST).lower(), mf)
    C.check("%s: Arrival-Date is an RFC 5322 date" % name,
            re.fullmatch(RFC5322_DATE, unfold(mf.get("Arrival-Date"))), mf)
    rf = [r for r in dsn_recipients(m)
          if unfold(r.get("Final-Recipient")).lower() ==
          ("rfc822; %s" % rcpt).lower()]
    C.check("%s: Final-Recipient: rfc822; %s" % (name, rcpt), len(rf) == 1,
            dsn_recipients(m))
    if rf:
        r = rf[0]
        C.check("%s: Action: %s" % (name, action),
                unfold(r.get("Action")) == action, r)
        C.check("%s: Status matches %s" % (name, status_rx),
                re.fullmatch(status_rx, unfold(r.get("Status"))), r)
        C.check("%s: Diagnostic-Code matches %r" % (name, diag_rx),
                re.search(diag_rx, unfold(r.get("Diagnostic-Code"))), r)
    text = plain.get_payload() if plain is not None else ""
    C.check("%s: the text part names the recipient and reason" % name,
            rcpt.lower() in text.lower() and re.search(diag_rx, unfold(text)),
            text[-800:])
    C.check("%s: the original is attached (Subject %r)" % (name, subject),
            original_subject(m) == subject, orig and str(orig)[:500])


def log_has(d, rx):
    return re.search(rx, d.log(), re.M)


def ensure_user(name):
    """A system user for the tests with its home in BASE/home. Creates it
    when missing (useradd -M); an existing one gets its home moved here
    (usermod -d), or keeps the old one when usermod refuses."""
    home = os.path.join(BASE, "home", name)
    try:
        pwd.getpwnam(name)
        r = subprocess.run(["usermod", "-d", home, name],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            print("# usermod -d %s: %s (keeping the old home)" %
                  (name, r.stdout.decode(errors="replace").strip()))
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", home, "-s",
                        "/usr/sbin/nologin", name], check=True)
    pw = pwd.getpwnam(name)
    home = pw.pw_dir
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o755)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    shutil.rmtree(os.path.join(home, "Maildir"), ignore_errors=True)
    return pw


def setup():
    mkdir(os.path.join(BASE, "bin"))
    mkdir(os.path.join(BASE, "home"))
    mkdir(os.path.join(BASE, "mail"), 0o1777)
    # Pipe commands run as the daemon's user: their outputs go here.
    mkdir(os.path.join(BASE, "stamps"), 0o1777)
    mkdir(os.path.join(BASE, "pipeout"), 0o1777)
    # Virtual mailboxes are written as the daemon's user.
    mkdir(os.path.join(BASE, "vmail"), 0o755, "smalt")
    if ROOT:
        for u in ("smaltt1", "smaltt2", "smaltt3"):
            USERS[u] = ensure_user(u)
    # A command for pipe: routes that always fails for now.
    script("tempfail.sh",
           "#!/bin/sh\n"
           "# $1: a file to log each attempt in; $2: the recipient\n"
           "echo \"$(date +%s.%N) $2\" >> \"$1\"\n"
           "cat > /dev/null\n"
           "exit 75\n")
    # A slow command that logs when it runs.
    slow = ("#!/bin/sh\n"
            "# $1: log file, $2: tag, $3: recipient\n"
            "echo \"start $(date +%s.%N) $2 $3 $$\" >> \"$1\"\n"
            "sleep 1\n"
            "cat > /dev/null\n"
            "echo \"stop $(date +%s.%N) $2 $3 $$\" >> \"$1\"\n"
            "exit 0\n")
    script("slow.sh", slow)
    script("slow2.sh", slow)
    script("record.sh",
           "#!/bin/sh\n"
           "# Records its arguments, environment and input per recipient.\n"
           "out=$1; shift\n"
           "{ for a in \"$@\"; do printf '[%s]\\n' \"$a\"; done; } "
           "> \"$out/$RECIPIENT.args\"\n"
           "{ echo \"SENDER=$SENDER\"; echo \"RECIPIENT=$RECIPIENT\"; "
           "echo \"UID=$(id -u)\"; } > \"$out/$RECIPIENT.env\"\n"
           "cat > \"$out/$RECIPIENT.stdin\"\n"
           "exit 0\n")
    script("fail.sh",
           "#!/bin/sh\n"
           "cat > /dev/null\n"
           "echo \"fatal: mailbox is disabled for $RECIPIENT\" >&2\n"
           "exit 1\n")


def intervals(path, tag=None):
    """[(start, stop)] of the slow.sh runs logged in path (by pid)."""
    starts, out = {}, []
    for line in (read(path) or "").splitlines():
        f = line.split()
        if len(f) != 5 or (tag is not None and f[2] != tag):
            continue
        if f[0] == "start":
            starts[f[4]] = float(f[1])
        elif f[0] == "stop" and f[4] in starts:
            out.append((starts.pop(f[4]), float(f[1])))
    return out


def max_overlap(iv):
    ev = sorted([(a, 1) for a, _ in iv] + [(b, -1) for _, b in iv],
                key=lambda e: (e[0], e[1]))
    n = best = 0
    for _, k in ev:
        n += k
        best = max(best, n)
    return best


def spool_empty(d):
    return not (d.list_dir("incoming") or d.list_dir("deferred") or
                d.list_dir("msg"))


# ---------------------------------------------- background: slow sections
class Background:
    """Daemons whose checks need time to pass (retries, expiry,
    concurrency): started first, checked after the other sections."""
    retry = expire = conc2 = conc1 = None
    retry_qid = expire_qid = None
    retry_sent = expire_sent = conc_sent = 0.0


BG = Background()


def start_background():
    section("start: retry timing, delay warning and expiry, concurrency")
    stamps = os.path.join(BASE, "stamps")
    tf = os.path.join(BASE, "bin", "tempfail.sh")
    # retry_min 2s, retry_max 4s: attempts about 2, 4, 4 s apart.
    routes = write(os.path.join(BASE, "routes.retry"),
                   "tempfail.example  pipe:%s %s/retry.txt %%r\n" %
                   (tf, stamps))
    BG.retry = daemon("retry", routes=routes, retry_min="2s",
                      retry_max="4s")
    BG.retry_qid, _ = send(BG.retry, "someone@example.org",
                           ["r1@tempfail.example"], make_msg("retry me"))
    BG.retry_sent = time.time()

    # delay_warning 2s, queue_lifetime 6s, retries every second: one
    # warning, a few more rounds, then the expiry bounce.
    routes = write(os.path.join(BASE, "routes.expire"),
                   "tempfail.example  pipe:%s %s/expire.txt %%r\n" %
                   (tf, stamps))
    virt = write(os.path.join(BASE, "virtual.expire"),
                 "bouncebox  %s/vmail/expire-bounces.mbox\n" % BASE)
    BG.expire = daemon("expire", routes=routes, virtual_mailboxes=virt,
                       local_domains=LOCAL_DOMAINS, retry_min="1s",
                       retry_max="1s", delay_warning="2s",
                       queue_lifetime="6s")
    BG.expire_qid, _ = send(BG.expire, "bouncebox@%s" % HOST,
                            ["e1@tempfail.example"], make_msg("expire me"))
    BG.expire_sent = time.time()

    # delivery_concurrency 2 over 8 recipients of one destination.
    slow = os.path.join(BASE, "bin", "slow.sh")
    slow2 = os.path.join(BASE, "bin", "slow2.sh")
    routes = write(os.path.join(BASE, "routes.conc2"),
                   "conc.example  pipe:%s %s/conc2.txt A %%r\n" %
                   (slow, stamps))
    BG.conc2 = daemon("conc2", routes=routes, delivery_concurrency=2,
                      destination_concurrency=8)
    # destination_concurrency 1: one destination (one command) never runs
    # twice at once; another destination runs beside it.
    routes = write(os.path.join(BASE, "routes.conc1"),
                   "one.example  pipe:%s %s/conc1.txt A %%r\n"
                   "two.example  pipe:%s %s/conc1.txt B %%r\n" %
                   (slow, stamps, slow2, stamps))
    BG.conc1 = daemon("conc1", routes=routes, delivery_concurrency=8,
                      destination_concurrency=1)
    for i in range(8):
        send(BG.conc2, "someone@example.org", ["c%d@conc.example" % i],
             make_msg("conc2 %d" % i))
    for i in range(4):
        send(BG.conc1, "someone@example.org", ["same@one.example"],
             make_msg("conc1 A %d" % i))
    for i in range(3):
        send(BG.conc1, "someone@example.org", ["other@two.example"],
             make_msg("conc1 B %d" % i))
    BG.conc_sent = time.time()


def check_retry():
    section("retry timing (retry_min 2s, retry_max 4s, exit 75)")
    d, qid = BG.retry, BG.retry_qid
    C.check("retry: message queued", qid, qid)
    stamp = os.path.join(BASE, "stamps", "retry.txt")
    H.wait_for(lambda: len((read(stamp) or "").splitlines()) >= 4, 40, 0.2)
    times = [float(ln.split()[0]) for ln in (read(stamp) or "").splitlines()]
    C.check("retry: at least 4 attempts within 40 s", len(times) >= 4, times)
    gaps = [round(b - a, 2) for a, b in zip(times, times[1:])]
    if len(gaps) >= 3:
        C.check("retry: 1st gap about retry_min 2 s (1.5..7 s)",
                1.5 <= gaps[0] <= 7.0, gaps)
        C.check("retry: 2nd gap doubled to about 4 s (3..7 s)",
                3.0 <= gaps[1] <= 7.0, gaps)
        C.check("retry: 3rd gap capped at retry_max 4 s (3..7 s)",
                3.0 <= gaps[2] <= 7.0, gaps)
    rx = (r"smalt/pipe\[\d+\]: %s: to=<r1@tempfail\.example>, relay=pipe, "
          r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, "
          r"dsn=4\.\d+\.\d+, status=deferred \(command exited with status 75"
          % qid)
    C.check("retry: one pipe status=deferred log line per attempt",
            len(log_lines(d, rx)) >= len(times) and len(times) >= 4,
            d.log()[-2500:])
    C.check("retry: one (queue active) line per attempt",
            len(log_lines(d, r"smalt/qmgr\[\d+\]: %s: from=<someone@example"
                             r"\.org>, size=\d+, nrcpt=1 \(queue active\)$"
                          % qid)) >= 4)
    C.check("retry: the message waits in deferred/, not incoming/",
            d.list_dir("deferred") == [qid] and not d.list_dir("incoming") and
            d.list_dir("msg") == [qid],
            (d.list_dir("incoming"), d.list_dir("deferred")))
    if d.list_dir("deferred") == [qid]:
        env = d.read_env(qid, "deferred")
        r = env["rcpts"][0] if env["rcpts"] else {}
        C.check("retry: envelope: recipient deferred with the reason",
                r.get("state") == "deferred" and "75" in r.get("reason", ""),
                env)
        C.check("retry: envelope: attempts counted",
                int(env.get("attempts", "0")) >= 3, env)
    C.check("retry: no bounce or warning (queue_lifetime 5d, "
            "delay_warning 4h)",
            not log_has(d, r"notification|status=bounced"), d.log()[-1500:])


def check_expire():
    section("delay_warning 2s and queue_lifetime 6s")
    d, qid = BG.expire, BG.expire_qid
    C.check("expire: message queued", qid, qid)
    ok = d.wait_log(r"smalt/qmgr\[\d+\]: %s: removed$" % qid, 40)
    C.check("expire: the message is removed in the end", ok, d.log()[-3000:])
    log = d.log()
    warn = re.findall(r"smalt/bounce\[\d+\]: %s: sender delay notification: "
                      r"([0-9A-F]+)$" % qid, log, re.M)
    C.check("expire: exactly one delay notification logged", len(warn) == 1,
            warn)
    # Rounds after the warning: the "not more than one" above means
    # something only if there were some.
    after = log.split("delay notification")[1] if warn else ""
    n_after = len(re.findall(r"%s: to=<e1@tempfail\.example>, relay=pipe, "
                             r".*status=deferred" % qid, after))
    C.check("expire: at least 2 more deferred rounds after the warning",
            n_after >= 2, n_after)
    rx = (r"smalt/qmgr\[\d+\]: %s: to=<e1@tempfail\.example>, relay=none, "
          r"delay=[\d.]+, delays=[\d./]+, dsn=[45]\.4\.7, status=bounced "
          r"\(message expired" % qid)
    C.check("expire: the recipient bounced as expired (log line)",
            log_has(d, rx), log[-2000:])
    nb = bounce_id(d, qid)
    C.check("expire: sender non-delivery notification logged", nb, log[-1500:])
    C.check("expire: no delivery attempt after the expiry",
            not re.search(r"status=bounced \(message expired.*\n(?:.*\n)*.*"
                          r"%s: to=<e1@tempfail\.example>, relay=pipe" % qid,
                          log), log[-2000:])
    box = os.path.join(BASE, "vmail", "expire-bounces.mbox")
    dm = find_bounce(box, "e1@tempfail.example", 20, action="delayed")
    check_dsn("expire: delay DSN", dm, "e1@tempfail.example",
              r"4\.\d+\.\d+", r"status 75", "expire me", action="delayed",
              to="bouncebox@%s" % HOST)
    if dm is not None:
        C.check("expire: delay DSN Subject says delayed",
                "delayed" in (dm.get("Subject") or "").lower(),
                dm.get("Subject"))
    fm = find_bounce(box, "e1@tempfail.example", 20)
    check_dsn("expire: expiry bounce", fm, "e1@tempfail.example",
              r"[45]\.4\.7", r"expired", "expire me")
    H.wait_for(lambda: spool_empty(d), 20)
    msgs = mbox_messages(box)
    delayed = [m for m in msgs if any(r.get("Action", "").strip() ==
                                      "delayed" for r in dsn_recipients(m))]
    C.check("expire: exactly one delay DSN in the sender's mailbox",
            len(delayed) == 1, [m.get("Subject") for m in msgs])
    C.check("expire: two notifications in all (one delay, one failure)",
            len(msgs) == 2, [m.get("Subject") for m in msgs])
    C.check("expire: spool empty at the end", spool_empty(d),
            (d.list_dir("incoming"), d.list_dir("deferred"),
             d.list_dir("msg")))


def check_concurrency():
    section("delivery_concurrency and destination_concurrency")
    f2 = os.path.join(BASE, "stamps", "conc2.txt")
    H.wait_for(lambda: len(intervals(f2)) >= 8, 40, 0.2)
    iv = intervals(f2)
    C.check("conc2: all 8 deliveries ran", len(iv) == 8, iv)
    C.check("delivery_concurrency=2: never more than 2 at once",
            max_overlap(iv) <= 2, max_overlap(iv))
    C.check("delivery_concurrency=2: 2 at once were reached",
            max_overlap(iv) == 2, max_overlap(iv))
    C.check("conc2: 8 pipe deliveries logged as sent",
            BG.conc2.wait_log(r"smalt/pipe\[\d+\]: [0-9A-F]+: to=<c\d@conc\."
                              r"example>, relay=pipe, .*status=sent", 20, 8),
            BG.conc2.log()[-2000:])
    f1 = os.path.join(BASE, "stamps", "conc1.txt")
    H.wait_for(lambda: len(intervals(f1)) >= 7, 40, 0.2)
    a, b = intervals(f1, "A"), intervals(f1, "B")
    C.check("conc1: all 7 deliveries ran", len(a) == 4 and len(b) == 3,
            (a, b))
    C.check("destination_concurrency=1: one destination never twice at "
            "once (same recipient, one command)",
            max_overlap(a) == 1 and max_overlap(b) == 1,
            (max_overlap(a), max_overlap(b)))
    C.check("destination_concurrency=1: two destinations ran side by side",
            max_overlap(a + b) == 2, max_overlap(a + b))
    for d in (BG.conc2, BG.conc1):
        H.wait_for(lambda: spool_empty(d), 20)
        C.check("%s: spool empty" % os.path.basename(d.dir), spool_empty(d),
                (d.list_dir("incoming"), d.list_dir("deferred")))


# ------------------------------------------------- aliases and mailboxes
def t_local():
    section("local: aliases, system users' mbox, virtual mailboxes")
    if not ROOT:
        skip("aliases to system users, /file, |command and mailbox owners "
             "need root (test users)")
        return None
    u1, u2, u3 = USERS["smaltt1"], USERS["smaltt2"], USERS["smaltt3"]
    nobody = pwd.getpwnam("nobody")
    smalt = pwd.getpwnam("smalt")
    files = mkdir(os.path.join(BASE, "files"), 0o755, "smaltt1")
    nobody_dir = mkdir(os.path.join(BASE, "nobody"), 0o1777)
    mail = os.path.join(BASE, "mail")
    vmail = os.path.join(BASE, "vmail")
    incl = write(os.path.join(BASE, "incl.list"),
                 "# an :include: file owned by the aliases file's owner\n"
                 "smaltt3,\n"
                 "%s/incl.mbox\n" % files, 0o644, "smaltt1")
    inclroot = write(os.path.join(BASE, "inclroot.list"),
                     "# owned by root: its commands run as nobody\n"
                     "|id -u > %s/uid.txt\n" % nobody_dir, 0o644)
    aliases = write(os.path.join(BASE, "aliases.local"), (
        "# smalt test aliases: a comment line\n"
        "    # an indented comment line\n"
        "postmaster: smaltt3\n"
        "alias1: smaltt1\n"
        "Multi: smaltt1,\n"
        "\t# a comment between continuation lines\n"
        "\tsmaltt2\n"
        "tofile: %(f)s/alias.mbox\n"
        "tocmd: \"|/usr/bin/env > %(f)s/cmd.env; id -u > %(f)s/cmd.uid; "
        "cat > %(f)s/cmd.stdin\"\n"
        "incl: :include:%(incl)s\n"
        "inclroot: :include:%(inclroot)s\n"
        "staff: smaltt2, member@remote.example\n"
        "owner-staff: smaltt1\n"
        "staff2: smaltt2, nosuchuser-smalt\n"
        "owner-staff2: smaltt1\n"
        "fwd: someone@remote.example\n"
        "dup: smaltt1, SMALTT1, alias1\n"
        "viadomain: smaltt2@MX.SMALT-TEST.EXAMPLE\n"
        "\"john doe\": smaltt1\n"
        "smaltt3: smaltt3, %(f)s/self.mbox\n") %
        {"f": files, "incl": incl, "inclroot": inclroot}, 0o644, "smaltt1")
    # The Maildir writer makes Maildir/ and its tmp, new, cur, not the
    # folders above (mailbox.h).
    mkdir(os.path.join(vmail, "vmd"), 0o755, "smalt")
    virtual = write(os.path.join(BASE, "virtual.local"),
                    "vbox@%s  %s/vbox.mbox\n"
                    "vmd  %s/vmd/Maildir/\n"
                    "listsender  %s/listsender.mbox\n" %
                    (HOST, vmail, vmail, vmail))
    d = daemon("local", aliases=aliases, virtual_mailboxes=virtual,
               local_domains=LOCAL_DOMAINS, mail_spool_directory=mail)
    sender = "alice.sender@example.org"
    q = {}
    for key, rcpt in (("alias1", "alias1@localhost"),
                      ("multi", "MULTI@LocalHost"),
                      ("tofile", "tofile@localhost"),
                      ("tocmd", "tocmd@localhost"),
                      ("incl", "incl@localhost"),
                      ("inclroot", "inclroot@localhost"),
                      ("staff", "staff@localhost"),
                      ("fwd", "fwd@localhost"),
                      ("vbox", "VBox@MX.Smalt-Test.Example"),
                      ("vmd", "vmd@localhost"),
                      ("viadomain", "viadomain@localhost"),
                      ("johndoe", '"john doe"@localhost')):
        q[key], rep = send(d, sender, [rcpt], make_msg("local " + key))
        C.check("local: %s accepted at RCPT and queued" % rcpt,
                q[key] and rep[rcpt][0] == 250, rep)
    q["dup"], _ = send(d, sender, ["dup@localhost"], make_msg("local dup"))
    q["self"], _ = send(d, sender, ["smaltt3@localhost"],
                        make_msg("local self"))
    lsender = "listsender@%s" % HOST
    q["staff2"], _ = send(d, lsender, ["staff2@localhost"],
                          make_msg("local staff2"))
    wait_removed(d, q.values(), 40)

    # alias -> one local user: the mbox, read back with mailbox.mbox.
    box1 = os.path.join(mail, "smaltt1")
    m = wait_mbox(box1, "local alias1")
    C.check("alias1 -> smaltt1: one copy in smaltt1's mbox", len(m) == 1,
            [x.get("Subject") for x in mbox_messages(box1)])
    if m:
        m = m[0]
        C.check("mbox: From_ line is 'From SENDER asctime-date'",
                re.fullmatch(r"%s %s" % (re.escape(sender), ASCTIME),
                             m.get_from() or ""), m.get_from())
        fd = re.sub(r"\s+", " ", (m.get_from() or "").split(" ", 1)[-1])
        try:
            when = time.mktime(time.strptime(fd, "%a %b %d %H:%M:%S %Y"))
            C.check("mbox: From_ date is now (local time)",
                    abs(when - time.time()) < 600, fd)
        except ValueError as e:
            C.check("mbox: From_ date parses as asctime", False, (fd, e))
        C.check("mbox: Return-Path: <sender> added",
                m.get_all("Return-Path") == ["<%s>" % sender],
                m.get_all("Return-Path"))
        C.check("mbox: Delivered-To: added",
                m.get_all("Delivered-To") == ["alias1@localhost"],
                m.get_all("Delivered-To"))
        C.check("mbox: Return-Path and Delivered-To come first",
                list(m.keys())[:2] == ["Return-Path", "Delivered-To"],
                list(m.keys()))
        C.check("mbox: the Received: header of smtpd is kept",
                "by %s (smalt)" % HOST in unfold(m.get("Received")),
                m.get("Received"))
        C.check("mbox: body intact, 'From ' lines quoted (mboxrd)",
                payload_text(m) == BODY_MBOX, payload_text(m))
    raw = read(box1, "rb") or b""
    C.check("mbox: LF line endings only (no CR in the file)",
            raw and b"\r" not in raw, raw[:300])
    C.check("mbox: the file ends with an empty line",
            raw.endswith(b"\n\n"), raw[-50:])
    C.check("mbox: owned by the recipient (smaltt1)",
            owner_uid(box1) == u1.pw_uid, owner_uid(box1))
    C.check("mbox: no dot-lock file left behind",
            not os.path.exists(box1 + ".lock"))
    C.check("mbox: mode 0600", raw and
            os.stat(box1).st_mode & 0o777 == 0o600,
            oct(os.stat(box1).st_mode) if raw else None)
    C.check("log: to=<smaltt1@localhost>, orig_to=<alias1@localhost>, "
            "relay=local, ... status=sent (delivered to mailbox)",
            log_has(d, LOG_PREFIX + r"smalt/local\[\d+\]: %s: "
                    r"to=<smaltt1@localhost>, orig_to=<alias1@localhost>, "
                    r"relay=local, delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/"
                    r"[\d.]+, dsn=2\.0\.0, status=sent \(delivered to "
                    r"mailbox\)$" % q["alias1"]), d.log()[-3000:])
    C.check("log: qmgr's from=<...>, size=N, nrcpt=1 (queue active)",
            log_has(d, LOG_PREFIX + r"smalt/qmgr\[\d+\]: %s: from=<%s>, "
                    r"size=\d+, nrcpt=1 \(queue active\)$" %
                    (q["alias1"], re.escape(sender))))

    # A list over continuation lines with a comment between them, a
    # name in another case.
    for u in ("smaltt1", "smaltt2"):
        m = wait_mbox(os.path.join(mail, u), "local multi")
        C.check("Multi (continued, commented, any case) -> %s: one copy" % u,
                len(m) == 1 and payload_text(m[0]) == BODY_MBOX,
                [x.get("Subject") for x in mbox_messages(os.path.join(mail,
                                                                      u))])
    box2 = os.path.join(mail, "smaltt2")
    C.check("mbox of smaltt2 owned by smaltt2",
            owner_uid(box2) == u2.pw_uid, owner_uid(box2))

    # /file: mbox format, as the aliases file's owner.
    fbox = os.path.join(files, "alias.mbox")
    m = wait_mbox(fbox, "local tofile")
    C.check("/file: one message, mbox format (mailbox.mbox reads it)",
            len(m) == 1, mbox_messages(fbox))
    if m:
        C.check("/file: From_ line, Return-Path, Delivered-To, quoted body",
                re.fullmatch(r"%s %s" % (re.escape(sender), ASCTIME),
                             m[0].get_from() or "") and
                m[0].get_all("Return-Path") == ["<%s>" % sender] and
                m[0].get_all("Delivered-To") == ["tofile@localhost"] and
                payload_text(m[0]) == BODY_MBOX,
                (m[0].get_from(), m[0].items(), payload_text(m[0])))
    C.check("/file: written as the aliases file's owner (smaltt1)",
            owner_uid(fbox) == u1.pw_uid, owner_uid(fbox))
    C.check("log: /file delivery line",
            log_has(d, r"smalt/local\[\d+\]: %s: to=<tofile@localhost>, "
                    r"relay=local, .*status=sent \(delivered to file: %s\)$"
                    % (q["tofile"], re.escape(fbox))), d.log()[-3000:])

    # |command: as the owner, message on stdin with LF, SENDER/RECIPIENT.
    stdin = read(os.path.join(files, "cmd.stdin"), "rb")
    envtxt = read(os.path.join(files, "cmd.env")) or ""
    uid = (read(os.path.join(files, "cmd.uid")) or "").strip()
    C.check("|command: ran and read the message", stdin is not None, stdin)
    if stdin is not None:
        C.check("|command: stdin has LF line endings only", b"\r" not in stdin,
                stdin[:300])
        C.check("|command: stdin starts with Return-Path and Delivered-To",
                stdin.startswith(("Return-Path: <%s>\nDelivered-To: "
                                  "tocmd@localhost\n" % sender).encode()),
                stdin[:200])
        C.check("|command: body intact and not quoted",
                stdin.endswith(b"\n\n" + BODY.encode()), stdin[-300:])
    C.check("|command: runs as the aliases file's owner (smaltt1)",
            uid == str(u1.pw_uid), uid)
    C.check("|command: SENDER in the environment",
            "SENDER=%s\n" % sender in envtxt, envtxt)
    C.check("|command: RECIPIENT in the environment",
            "RECIPIENT=tocmd@localhost\n" in envtxt, envtxt)
    C.check("|command: HOME and USER of the owner, a plain PATH",
            "USER=smaltt1\n" in envtxt and "HOME=%s\n" % u1.pw_dir in envtxt
            and re.search(r"^PATH=", envtxt, re.M), envtxt)
    C.check("log: |command delivery line",
            log_has(d, r"smalt/local\[\d+\]: %s: to=<tocmd@localhost>, "
                    r"relay=local, .*status=sent \(delivered to command: "
                    % q["tocmd"]), d.log()[-3000:])

    # Duplicates and a name that lists itself.
    m = wait_mbox(box1, "local dup")
    C.check("dup: a user listed twice (and through another alias) gets "
            "one copy", len(m) == 1, len(m))
    m = wait_mbox(os.path.join(mail, "smaltt3"), "local self")
    sm = wait_mbox(os.path.join(files, "self.mbox"), "local self")
    C.check("smaltt3: smaltt3, /file: a name listing itself is delivered "
            "to its own mailbox and the file, not taken for a loop",
            len(m) == 1 and len(sm) == 1 and
            not log_has(d, r"%s: .*status=bounced" % q["self"]),
            (len(m), len(sm)))

    m = wait_mbox(box2, "local viadomain")
    C.check("alias -> user@LOCAL.DOMAIN (other case): looked up again as "
            "a local name, one copy for smaltt2", len(m) == 1)
    m = wait_mbox(box1, "local johndoe")
    C.check("a quoted alias name (\"john doe\") -> smaltt1", len(m) == 1)

    # :include: (an owner's file: a user and a /file)
    m = wait_mbox(os.path.join(mail, "smaltt3"), "local incl")
    C.check(":include: -> smaltt3 (comma-ended line, comment line)",
            len(m) == 1, mbox_messages(os.path.join(mail, "smaltt3")))
    ibox = os.path.join(files, "incl.mbox")
    m = wait_mbox(ibox, "local incl")
    C.check(":include: -> /file, written as the include file's owner",
            len(m) == 1 and owner_uid(ibox) == u1.pw_uid,
            (mbox_messages(ibox), owner_uid(ibox)))
    C.check("log: :include: members logged with orig_to=<incl@localhost>",
            log_has(d, r"%s: to=<smaltt3@localhost>, orig_to=<incl@localhost>"
                    r", relay=local, .*status=sent" % q["incl"]),
            d.log()[-3000:])
    # :include: file owned by root: its command runs as nobody.
    nuid = os.path.join(nobody_dir, "uid.txt")
    H.wait_for(lambda: os.path.exists(nuid), 10)
    C.check("root's :include: file: |command runs as nobody, never root",
            (read(nuid) or "").strip() == str(nobody.pw_uid) and
            owner_uid(nuid) == nobody.pw_uid,
            (read(nuid), owner_uid(nuid)))

    # owner-LIST: the envelope sender of the list's members.
    owner = "owner-staff@%s" % HOST
    m = wait_mbox(box2, "local staff")
    C.check("staff -> smaltt2: one copy", len(m) == 1,
            [x.get("Subject") for x in mbox_messages(box2)])
    if m:
        C.check("owner-staff: a local member's Return-Path is "
                "<owner-staff@hostname> (aliases(5) OWNER, aliases.h)",
                m[0].get_all("Return-Path") == ["<%s>" % owner],
                m[0].get_all("Return-Path"))
        C.check("owner-staff: a local member's From_ line names the owner",
                (m[0].get_from() or "").startswith(owner + " "),
                m[0].get_from())
    fm = re.search(r"%s: to=<member@remote\.example>, orig_to=<staff@"
                   r"localhost>, relay=local, .*status=sent \(forwarded as "
                   r"([0-9A-F]+)\)$" % q["staff"], d.log(), re.M)
    C.check("staff: remote member forwarded as a new message", fm,
            d.log()[-3000:])
    if fm:
        fid = fm.group(1)
        H.wait_for(lambda: fid in d.list_dir("deferred"), 15)
        if fid in d.list_dir("deferred"):
            env = d.read_env(fid, "deferred")
            C.check("owner-staff: the forwarded copy's envelope sender is "
                    "owner-staff@hostname", env.get("sender") == owner, env)

    # owner-staff2: a member that fails bounces to the list's owner, not
    # to the sender (aliases(5): "so that the bounces of a list go to
    # its owner, not to whoever wrote to the list").
    m = wait_mbox(box2, "local staff2")
    C.check("staff2 -> smaltt2: one copy", len(m) == 1)
    own = find_bounce(box1, "nosuchuser-smalt@localhost", 10) or \
        find_bounce(box1, "staff2@localhost", 1)
    lbox = os.path.join(vmail, "listsender.mbox")
    snd = find_bounce(lbox, "staff2@localhost", 1) or \
        find_bounce(lbox, "nosuchuser-smalt@localhost", 1)
    C.check("owner-staff2: a failing member's bounce goes to the list "
            "owner (owner-staff2 -> smaltt1), not to the sender",
            own is not None and snd is None,
            "owner got %s, sender got %s" %
            (own is not None, snd is not None))

    # A remote member: a new queued message with Delivered-To.
    fm = re.search(r"smalt/local\[\d+\]: %s: to=<someone@remote\.example>, "
                   r"orig_to=<fwd@localhost>, relay=local, delay=[\d.]+, "
                   r"delays=[\d./]+, dsn=2\.0\.0, status=sent \(forwarded as "
                   r"([0-9A-F]+)\)$" % q["fwd"], d.log(), re.M)
    C.check("fwd -> remote: log 'forwarded as ID'", fm, d.log()[-3000:])
    if fm:
        fid = fm.group(1)
        C.check("fwd: the new message is queued and taken up",
                d.wait_log(r"smalt/qmgr\[\d+\]: %s: from=<%s>, size=\d+, "
                           r"nrcpt=1 \(queue active\)" %
                           (fid, re.escape(sender)), 15), d.log()[-2000:])
        try:
            body = d.read_msg(fid)
        except OSError as e:
            body = repr(e).encode()
        C.check("fwd: the new message starts with Delivered-To: "
                "fwd@localhost", body.startswith(b"Delivered-To: "
                                                 b"fwd@localhost\r\n"),
                body[:200])
        C.check("fwd: the new message holds the original",
                b"\r\nSubject: local fwd\r\n" in body and
                body.endswith(BODY.replace("\n", "\r\n").encode()),
                body[-300:])
        H.wait_for(lambda: fid in d.list_dir("deferred"), 15)
        if fid in d.list_dir("deferred"):
            env = d.read_env(fid, "deferred")
            C.check("fwd: envelope sender kept, recipient the remote one, "
                    "waiting for the smtp channel",
                    env.get("sender") == sender and
                    [r["address"] for r in env["rcpts"]] ==
                    ["someone@remote.example"] and
                    env["rcpts"][0]["state"] == "deferred", env)
        else:
            C.check("fwd: the new message waits in deferred/", False,
                    d.list_dir("deferred"))

    # Virtual mailboxes: an mbox path (the table's address form, any
    # case) and a Maildir (the local-part form).
    vbox = os.path.join(vmail, "vbox.mbox")
    m = wait_mbox(vbox, "local vbox")
    C.check("virtual mbox: one message", len(m) == 1, mbox_messages(vbox))
    if m:
        C.check("virtual mbox: Return-Path, Delivered-To, quoted body",
                m[0].get_all("Return-Path") == ["<%s>" % sender] and
                [x.lower() for x in m[0].get_all("Delivered-To", [])] ==
                ["vbox@mx.smalt-test.example"] and
                payload_text(m[0]) == BODY_MBOX,
                (m[0].items(), payload_text(m[0])))
    C.check("virtual mbox: written as the daemon's user (smalt)",
            owner_uid(vbox) == smalt.pw_uid, owner_uid(vbox))
    md = os.path.join(vmail, "vmd", "Maildir")
    check_maildir("virtual Maildir", md, "local vmd", sender,
                  "vmd@localhost", smalt.pw_uid)
    C.check("log: virtual Maildir: status=sent (delivered to maildir)",
            log_has(d, r"%s: to=<vmd@localhost>, relay=local, .*dsn=2\.0\.0, "
                    r"status=sent \(delivered to maildir\)$" % q["vmd"]),
            d.log()[-2000:])
    wait_removed(d, [q["dup"], q["self"], q["staff2"]], 20)
    C.check("local: nothing bounced but staff2's unknown member",
            len(log_lines(d, r"status=bounced")) == 1 and
            log_has(d, r"to=<nosuchuser-smalt@localhost>, orig_to=<staff2@"
                    r"localhost>, .*status=bounced"), d.log()[-2000:])
    return d


def check_maildir(name, md, subject, sender, rcpt, uid):
    newd = os.path.join(md, "new")
    H.wait_for(lambda: os.path.isdir(newd) and os.listdir(newd), 20)
    names = os.listdir(newd) if os.path.isdir(newd) else []
    C.check("%s: one file in new/" % name, len(names) == 1, names)
    C.check("%s: tmp/ and cur/ exist, tmp/ is empty" % name,
            os.path.isdir(os.path.join(md, "cur")) and
            os.listdir(os.path.join(md, "tmp")) == []
            if os.path.isdir(os.path.join(md, "tmp")) else False)
    try:
        box = mailbox.Maildir(md, factory=None, create=False)
        msgs = list(box)
    except Exception as e:  # noqa: BLE001
        msgs = []
        C.check("%s: mailbox.Maildir reads it" % name, False, e)
    m = with_subject(msgs, subject)
    C.check("%s: mailbox.Maildir reads the message" % name, len(m) == 1,
            [x.get("Subject") for x in msgs])
    if m:
        C.check("%s: Return-Path and Delivered-To added" % name,
                m[0].get_all("Return-Path") == ["<%s>" % sender] and
                m[0].get_all("Delivered-To") == [rcpt],
                m[0].items())
        C.check("%s: body intact, not quoted" % name,
                payload_text(m[0]) == BODY, payload_text(m[0]))
    if names:
        p = os.path.join(newd, names[0])
        raw = read(p, "rb") or b""
        C.check("%s: LF line endings, no From_ line" % name,
                b"\r" not in raw and raw.startswith(b"Return-Path: "),
                raw[:200])
        C.check("%s: file and folder owned by uid %d" % (name, uid),
                owner_uid(p) == uid and owner_uid(md) == uid,
                (owner_uid(p), owner_uid(md)))


def t_maildir():
    section("home_mailbox = Maildir/")
    if not ROOT:
        skip("home_mailbox to a test user's home needs root")
        return None
    u2 = USERS["smaltt2"]
    d = daemon("maildir", home_mailbox="Maildir/",
               local_domains=LOCAL_DOMAINS,
               mail_spool_directory=os.path.join(BASE, "mail"))
    sender = "bob@example.org"
    qid, rep = send(d, sender, ["smaltt2@localhost"], make_msg("maildir home"))
    C.check("maildir: queued", qid, rep)
    wait_removed(d, [qid], 30)
    check_maildir("home Maildir", os.path.join(u2.pw_dir, "Maildir"),
                  "maildir home", sender, "smaltt2@localhost", u2.pw_uid)
    C.check("home Maildir: nothing in the mail spool for smaltt2 from it",
            not with_subject(mbox_messages(os.path.join(BASE, "mail",
                                                        "smaltt2")),
                             "maildir home"))
    C.check("log: home Maildir: status=sent (delivered to maildir)",
            log_has(d, r"%s: to=<smaltt2@localhost>, relay=local, .*"
                    r"dsn=2\.0\.0, status=sent \(delivered to maildir\)$"
                    % qid), d.log()[-2000:])
    return d


# ------------------------------------- pipe and error routes, bounces
class PipeCounts:
    received = 0
    bounced = 0


PC = PipeCounts()


def t_pipe():
    section("routes pipe: and error:, bounces, loops, double bounces")
    vmail = os.path.join(BASE, "vmail")
    out = os.path.join(BASE, "pipeout")
    aliases = write(os.path.join(BASE, "aliases.pipe"),
                    "postmaster: pmbox\n"
                    "ghost: nosuchuser-smalt\n"
                    "loopa: loopb\n"
                    "loopb: loopa\n")
    virtual = write(os.path.join(BASE, "virtual.pipe"),
                    "bouncebox  %s/pipe-bounces.mbox\n"
                    "pmbox      %s/pipe-postmaster.mbox\n"
                    "vuser      %s/pipe-vuser.mbox\n" % (vmail, vmail, vmail))
    routes = write(os.path.join(BASE, "routes.pipe"), (
        "# pipe: argv without a shell, %%s and %%r substituted\n"
        "ok.example    pipe:%s/bin/record.sh %s \"two words\" $HOME;x "
        "sender=%%s %%r 100%%%%\n"
        "fail.example  pipe:%s/bin/fail.sh\n"
        "err.example   error:this domain does not take mail (test)\n") %
        (BASE, out, BASE))
    d = daemon("pipe", aliases=aliases, virtual_mailboxes=virtual,
               routes=routes, local_domains=LOCAL_DOMAINS)
    bb = "bouncebox@%s" % HOST
    bbox = os.path.join(vmail, "pipe-bounces.mbox")
    q = {}

    def sendq(key, sender, rcpts, subject, headers=""):
        qid, rep = send(d, sender, rcpts, make_msg(subject, headers=headers))
        q[key] = qid
        if qid:
            PC.received += 1
        return qid, rep

    sendq("ok", bb, ["a@ok.example", "b@ok.example"], "pipe ok")
    sendq("fail", bb, ["x@fail.example"], "pipe fail")
    sendq("err", bb, ["y@err.example"], "pipe err")
    sendq("ghost", bb, ["ghost@localhost"], "pipe ghost")
    _, loop_rep = sendq("loop", bb, ["loopa@localhost"], "pipe loop")
    sendq("dt", bb, ["vuser@localhost"], "pipe delivered-to",
          headers="Delivered-To: vuser@localhost\n")
    sendq("vuser", bb, ["vuser@localhost"], "pipe vuser")
    sendq("null", "", ["z@fail.example"], "pipe null sender")
    # One recipient delivered, one bounced: the bounce names only that one.
    sendq("mixed", bb, ["c@ok.example", "w@err.example"], "pipe mixed")
    # Over 64 KiB: the bounce returns the headers only.
    big = "".join("big line %05d %s\n" % (i, "y" * 60) for i in range(1500))
    q["big"], _ = send(d, bb, ["big@err.example"],
                       make_msg("pipe big", body=big))
    PC.received += 1 if q["big"] else 0
    PC.bounced = (6 if q["loop"] else 5) + 2
    wait_removed(d, q.values(), 40)

    # pipe: arguments, environment, stdin
    for r in ("a@ok.example", "b@ok.example"):
        args = read(os.path.join(out, r + ".args"))
        C.check("pipe: %s: argv split on white space, quotes kept one "
                "argument, no shell, %%s %%r %%%% substituted" % r,
                args == "[two words]\n[$HOME;x]\n[sender=%s]\n[%s]\n[100%%]\n"
                % (bb, r), args)
        env = read(os.path.join(out, r + ".env")) or ""
        C.check("pipe: %s: SENDER and RECIPIENT in the environment" % r,
                "SENDER=%s\n" % bb in env and "RECIPIENT=%s\n" % r in env, env)
        if ROOT:
            C.check("pipe: %s: runs as the daemon's user, not root" % r,
                    "UID=%d\n" % pwd.getpwnam("smalt").pw_uid in env, env)
        stdin = read(os.path.join(out, r + ".stdin"), "rb") or b""
        C.check("pipe: %s: message on stdin, LF endings, Return-Path first,"
                " body intact" % r,
                stdin.startswith(("Return-Path: <%s>\n" % bb).encode()) and
                b"\r" not in stdin and stdin.endswith(b"\n\n" +
                                                      BODY.encode()),
                stdin[:200] + b" ... " + stdin[-200:])
        C.check("log: pipe %s status=sent, relay=pipe" % r,
                log_has(d, LOG_PREFIX + r"smalt/pipe\[\d+\]: %s: to=<%s>, "
                        r"relay=pipe, delay=[\d.]+, delays=[\d.]+/[\d.]+/"
                        r"[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent" %
                        (q["ok"], re.escape(r))), d.log()[-3000:])

    # pipe exit 1: bounced with the command's stderr as the reason.
    reason = "fatal: mailbox is disabled for x@fail.example"
    C.check("log: pipe exit 1 -> status=bounced (command exited with "
            "status 1: STDERR)",
            log_has(d, r"smalt/pipe\[\d+\]: %s: to=<x@fail\.example>, "
                    r"relay=pipe, .*dsn=5\.\d+\.\d+, status=bounced \("
                    r"command exited with status 1: %s\)$" %
                    (q["fail"], re.escape(reason))), d.log()[-3000:])
    nb = bounce_id(d, q["fail"])
    C.check("log: bounce/ sender non-delivery notification: NEWID", nb,
            d.log()[-2000:])
    if nb:
        C.check("log: the bounce is queued with the null sender",
                log_has(d, r"smalt/qmgr\[\d+\]: %s: from=<>, size=\d+, "
                        r"nrcpt=1 \(queue active\)" % nb))
        C.check("log: the bounce is delivered to the sender's mailbox",
                log_has(d, r"smalt/local\[\d+\]: %s: to=<%s>, relay=local, "
                        r".*status=sent \(delivered to mailbox\)" %
                        (nb, re.escape(bb))), d.log()[-2000:])
    m = find_bounce(bbox, "x@fail.example")
    check_dsn("pipe exit 1 bounce", m, "x@fail.example", r"5\.\d+\.\d+",
              re.escape(reason), "pipe fail", to=bb)
    if m is not None:
        C.check("pipe exit 1 bounce: Diagnostic-Code is x-unix; with the "
                "reason", unfold(dsn_recipients(m)[0].get("Diagnostic-Code"))
                .startswith("x-unix; "), dsn_recipients(m))
        C.check("pipe exit 1 bounce: Subject says undelivered",
                "undeliver" in (m.get("Subject") or "").lower(),
                m.get("Subject"))

    # error:TEXT
    text = "this domain does not take mail (test)"
    C.check("log: error: route -> status=bounced (TEXT)",
            log_has(d, r"smalt/error\[\d+\]: %s: to=<y@err\.example>, "
                    r"relay=none, .*dsn=5\.\d+\.\d+, status=bounced \(%s\)$"
                    % (q["err"], re.escape(text))), d.log()[-3000:])
    m = find_bounce(bbox, "y@err.example")
    check_dsn("error: bounce", m, "y@err.example", r"5\.\d+\.\d+",
              re.escape(text), "pipe err", to=bb)

    # Per-recipient results in one message.
    C.check("mixed: c@ok.example delivered by the pipe",
            os.path.exists(os.path.join(out, "c@ok.example.stdin")))
    m = find_bounce(bbox, "w@err.example")
    C.check("mixed: the bounce names only the failed recipient",
            m is not None and len(dsn_recipients(m)) == 1 and
            original_subject(m) == "pipe mixed",
            m and dsn_recipients(m))
    # A big original: only its headers come back.
    m = find_bounce(bbox, "big@err.example")
    C.check("big: bounced", m is not None)
    if m is not None:
        _, _, orig = dsn_parts(m)
        C.check("big (over 64 KiB): the original comes back as "
                "text/rfc822-headers with its Subject, without its body",
                orig is not None and
                orig.get_content_type() == "text/rfc822-headers" and
                original_subject(m) == "pipe big" and
                "big line 00001" not in m.as_string(),
                orig and orig.get_content_type())
        C.check("big: the bounce is small (under 64 KiB)",
                len(m.as_bytes()) < 65536, len(m.as_bytes()))

    # An alias member that is no user at delivery time: 5.1.1
    C.check("log: alias to a user that does not exist -> dsn=5.1.1 "
            "status=bounced",
            log_has(d, r"smalt/local\[\d+\]: %s: to=<nosuchuser-smalt@"
                    r"localhost>, orig_to=<ghost@localhost>, relay=local, "
                    r".*dsn=5\.1\.1, status=bounced" % q["ghost"]),
            d.log()[-3000:])
    m = find_bounce(bbox, "ghost@localhost")
    check_dsn("unknown user bounce", m, "ghost@localhost", r"5\.1\.1",
              r"nosuchuser-smalt", "pipe ghost")

    # An alias loop: refused at RCPT or bounced with 5.4.6.
    if q["loop"] is None:
        C.check("alias loop refused at RCPT with 5xx",
                loop_rep["loopa@localhost"][0] // 100 == 5, loop_rep)
    else:
        C.check("log: alias loop -> dsn=5.4.6 status=bounced",
                log_has(d, r"smalt/local\[\d+\]: %s: to=<loopa@localhost>, "
                        r"relay=local, .*dsn=5\.4\.6, status=bounced" %
                        q["loop"]), d.log()[-3000:])
        m = find_bounce(bbox, "loopa@localhost")
        check_dsn("alias loop bounce", m, "loopa@localhost", r"5\.4\.6",
                  r"loop", "pipe loop")
    C.check("alias loop: no mailbox for loopa/loopb written",
            not [n for n in os.listdir(vmail) if "loop" in n])

    # Delivered-To: the recipient already -> a loop, 5.4.6.
    C.check("log: message with Delivered-To: rcpt -> dsn=5.4.6 bounced",
            log_has(d, r"smalt/local\[\d+\]: %s: to=<vuser@localhost>, "
                    r"relay=local, .*dsn=5\.4\.6, status=bounced" % q["dt"]),
            d.log()[-3000:])
    m = find_bounce(bbox, "vuser@localhost")
    check_dsn("Delivered-To loop bounce", m, "vuser@localhost", r"5\.4\.6",
              r"loop", "pipe delivered-to")
    vbox = os.path.join(vmail, "pipe-vuser.mbox")
    C.check("Delivered-To loop: not delivered; the same recipient without "
            "the header is",
            [x.get("Subject") for x in mbox_messages(vbox)] == ["pipe vuser"],
            [x.get("Subject") for x in mbox_messages(vbox)])

    # MAIL FROM:<> failing: a double bounce to postmaster, never to <>.
    nb = bounce_id(d, q["null"], "postmaster non-delivery")
    C.check("null sender failing: 'postmaster non-delivery notification' "
            "logged", nb, d.log()[-2000:])
    C.check("null sender failing: no sender notification for it",
            not bounce_id(d, q["null"]))
    pm = os.path.join(vmail, "pipe-postmaster.mbox")
    m = find_bounce(pm, "z@fail.example")
    check_dsn("double bounce", m, "z@fail.example", r"5\.\d+\.\d+",
              r"fatal: mailbox is disabled", "pipe null sender",
              to="postmaster@%s" % HOST)
    C.check("double bounce: delivered through the postmaster alias",
            nb and log_has(d, r"smalt/local\[\d+\]: %s: to=<pmbox@%s>, "
                           r"orig_to=<postmaster@%s>, relay=local, .*"
                           r"status=sent" % (nb, re.escape(HOST),
                                             re.escape(HOST))),
            d.log()[-2000:])
    H.wait_for(lambda: spool_empty(d), 20)
    C.check("pipe: spool empty at the end (everything delivered or "
            "bounced)", spool_empty(d),
            (d.list_dir("incoming"), d.list_dir("deferred")))
    bounces = [x for x in mbox_messages(bbox)]
    C.check("pipe: one notification per failed message in the sender's "
            "mailbox", len(bounces) == PC.bounced - 1,
            [original_subject(x) for x in bounces])
    return d


def t_double_bounce_dropped():
    section("a failing double bounce is dropped")
    aliases = write(os.path.join(BASE, "aliases.dbl"),
                    "postmaster: nosuchuser-smalt\n")
    routes = write(os.path.join(BASE, "routes.dbl"),
                   "err.example  error:no mail here\n")
    d = daemon("dbl", aliases=aliases, routes=routes,
               local_domains=LOCAL_DOMAINS)
    qid, _ = send(d, "", ["q@err.example"], make_msg("dbl null"))
    C.check("dbl: queued", qid)
    nb = None
    if d.wait_log(r"%s: postmaster non-delivery notification: " % qid, 20):
        nb = bounce_id(d, qid, "postmaster non-delivery")
    C.check("dbl: the failure goes to postmaster as a double bounce", nb,
            d.log()[-2000:])
    if not nb:
        return d
    C.check("dbl: the double bounce fails (postmaster -> unknown user)",
            d.wait_log(r"smalt/local\[\d+\]: %s: to=<nosuchuser-smalt@%s>, "
                       r"orig_to=<postmaster@%s>, relay=local, .*dsn=5\.1\.1, "
                       r"status=bounced" % (nb, re.escape(HOST),
                                            re.escape(HOST)), 20),
            d.log()[-2000:])
    C.check("dbl: 'undeliverable double bounce discarded' logged",
            d.wait_log(r"smalt/bounce\[\d+\]: %s: undeliverable double "
                       r"bounce discarded$" % nb, 20), d.log()[-2000:])
    C.check("dbl: the double bounce is removed",
            wait_removed(d, [nb], 20), d.log()[-2000:])
    # Give a loop time to show, then look.
    time.sleep(2)
    log = d.log()
    C.check("dbl: no third message: exactly 2 taken up, 1 notification",
            len(re.findall(r"\(queue active\)$", log, re.M)) == 2 and
            len(re.findall(r"notification: ", log)) == 1, log[-2500:])
    C.check("dbl: spool empty", spool_empty(d),
            (d.list_dir("incoming"), d.list_dir("deferred")))
    return d


# ------------------------------------------------------------- reload
def t_reload():
    section("SIGHUP: held mail released, new aliases used at once")
    vmail = os.path.join(BASE, "vmail")
    rbox = os.path.join(vmail, "reload.mbox")
    aliases = write(os.path.join(BASE, "aliases.reload"), "old: rbox\n")
    virtual = write(os.path.join(BASE, "virtual.reload"),
                    "rbox  %s\n" % rbox)
    d = daemon("reload", aliases=aliases, virtual_mailboxes=virtual,
               local_domains=LOCAL_DOMAINS, delivery_concurrency=0)
    q1, _ = send(d, "someone@example.org", ["old@localhost"],
                 make_msg("reload held"))
    _, rep = send(d, "someone@example.org", ["newname@localhost"],
                  make_msg("reload refused"))
    C.check("reload: a name not yet in the aliases is refused at RCPT",
            rep["newname@localhost"][0] == 550, rep)
    time.sleep(1)
    C.check("reload: delivery_concurrency=0 holds the message",
            d.incoming_ids() == [q1] and not os.path.exists(rbox))
    write(aliases, "old: rbox\nnewname: rbox\n")
    H.daemon_set_conf(d, delivery_concurrency=None)
    os.kill(d.pid, 1)  # SIGHUP
    C.check("reload: logged", d.wait_log(r"reloaded configuration", 15),
            d.log()[-1500:])
    C.check("reload: raising delivery_concurrency releases held mail",
            wait_mbox(rbox, "reload held", 1, 20), d.log()[-1500:])
    q2, rep = send(d, "someone@example.org", ["newname@localhost"],
                   make_msg("reload new alias"))
    C.check("reload: the new alias is accepted at RCPT", q2, rep)
    C.check("reload: the new alias is delivered",
            q2 and wait_mbox(rbox, "reload new alias", 1, 20),
            d.log()[-1500:])
    H.wait_for(lambda: spool_empty(d), 10)
    C.check("reload: spool empty", spool_empty(d))
    return d


# ------------------------------------------------------ crash safety
CRASH_N = 60


def crash_body(k):
    lines = ["crash message %d" % k, "From the crash test, line quoted"]
    lines += ["line %03d of message %d: %s" % (j, k, "x" * 40)
              for j in range(60)]
    lines.append("END OF MESSAGE %d" % k)
    return "\n".join(lines) + "\n"


def crash_expected_mbox(k):
    return crash_body(k).replace("\nFrom the crash", "\n>From the crash")


def t_crash():
    section("hold everything, restart resumes, SIGKILL mid-delivery")
    vmail = os.path.join(BASE, "vmail")
    vpath = os.path.join(vmail, "crash.mbox")
    virtual = write(os.path.join(BASE, "virtual.crash"),
                    "vcrash  %s\n" % vpath)
    rcpts = ["vcrash@localhost"]
    boxes = [vpath]
    if ROOT:
        rcpts.append("smaltt3@localhost")
        boxes.append(os.path.join(BASE, "mail-crash", "smaltt3"))
    spool = mkdir(os.path.join(BASE, "mail-crash"), 0o1777)
    d = daemon("crash", virtual_mailboxes=virtual, local_domains=LOCAL_DOMAINS,
               mail_spool_directory=spool, delivery_concurrency=0)
    ids = []
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 30) as s:
        for k in range(CRASH_N):
            s.sendmail("crash@example.org", rcpts,
                       make_msg("crash %d" % k, body=crash_body(k)))
    H.wait_for(lambda: d.count_incoming() >= CRASH_N, 10)
    ids = d.incoming_ids()
    C.check("crash: %d messages queued" % CRASH_N, len(ids) == CRASH_N,
            len(ids))
    time.sleep(1.5)
    C.check("delivery_concurrency=0 holds everything: nothing taken up",
            not log_has(d, r"\(queue active\)|status=") and
            d.count_incoming() == CRASH_N and
            not any(os.path.exists(b) for b in boxes), d.log()[-1500:])
    C.check("crash: SIGTERM (delivery held) exits 0", d.stop() == 0)

    # Restart with delivery on; SIGKILL everything while it delivers.
    H.daemon_set_conf(d, delivery_concurrency=None)
    H.daemon_start_nowait(d)
    sent_rx = re.compile(r"status=sent", re.M)
    total = CRASH_N * len(rcpts)
    H.wait_for(lambda: len(sent_rx.findall(d.log_since_start())) >= 20 or
               not d.alive(), 30, 0.002)
    C.check("crash: restarted with delivery on, deliveries begin",
            d.alive() and "daemon started" in d.log_since_start() and
            sent_rx.search(d.log_since_start()), d.log_since_start()[-1500:])
    seen_before = len(sent_rx.findall(d.log_since_start()))
    pids = H.daemon_kill_all(d)
    done_at_kill = len(sent_rx.findall(d.log_since_start()))
    print("# killed %d processes after %d (%d seen before the kill) of %d "
          "deliveries" % (len(pids), done_at_kill, seen_before, total))
    C.check("crash: SIGKILL hit mid-way (some delivered, some not)",
            0 < done_at_kill < total, done_at_kill)
    C.check("crash: master, smtpd, qmgr and agent all killed",
            len(pids) >= 4, pids)
    C.check("crash: no process of the daemon survives",
            all(H.proc_state(p) in (None, "Z", "X") for p in pids),
            [(p, H.proc_state(p)) for p in pids])
    C.check("crash: no live process uses the spool or mailboxes",
            H.procs_using(d.dir) == [] and H.procs_using(vmail) == [],
            (H.procs_using(d.dir), H.procs_using(vmail)))
    left = len(set(d.incoming_ids()) | set(d.list_dir("deferred")))
    print("# %d messages left in the queue at the kill" % left)
    # A writer killed inside the mbox lock leaves its dot-lock file,
    # which stays in the way until it is MAILBOX_DOTLOCK_STALE (5 min)
    # old: age it so that the daemon's own stale-lock rule clears it.
    old = time.time() - 3600
    for b in boxes:
        if os.path.exists(b + ".lock"):
            print("# a stale dot-lock %s.lock was left: aged" % b)
            os.utime(b + ".lock", (old, old))

    d.start()
    ok = H.wait_for(lambda: spool_empty(d) and not d.list_dir("tmp"), 90,
                    0.2)
    C.check("crash: after the restart everything is delivered and the "
            "spool is empty", ok,
            (len(d.incoming_ids()), d.list_dir("deferred"),
             d.log_since_start()[-2000:]))
    for b in boxes:
        name = os.path.basename(b)
        raw = read(b, "rb") or b""
        try:
            msgs = mbox_messages(b)
        except Exception as e:  # noqa: BLE001
            msgs = []
            C.check("crash: %s parses with mailbox.mbox" % name, False, e)
        seen, bad = {}, []
        for m in msgs:
            mm = re.fullmatch(r"crash (\d+)", m.get("Subject") or "")
            if not mm:
                bad.append(("no subject", m.get("Subject")))
                continue
            k = int(mm.group(1))
            seen[k] = seen.get(k, 0) + 1
            if payload_text(m) != crash_expected_mbox(k):
                bad.append((k, (payload_text(m) or "")[-200:]))
        missing = [k for k in range(CRASH_N) if k not in seen]
        dups = sum(v - 1 for v in seen.values())
        print("# %s: %d messages, %d duplicates" % (name, len(msgs), dups))
        C.check("crash: %s: every message delivered at least once" % name,
                not missing, missing)
        C.check("crash: %s: every message whole, nothing else in it" % name,
                not bad, bad[:3])
        C.check("crash: %s: well-formed (From_ lines, LF, ends in an empty "
                "line)" % name,
                raw.startswith(b"From crash@example.org ") and
                b"\r" not in raw and raw.endswith(b"\n\n") and
                len(re.findall(rb"^From ", raw, re.M)) == len(msgs),
                raw[-200:])

    # The master alone SIGKILLed (a crash of the master, the OOM killer):
    # its children must not live on, delivering and holding the spool,
    # or no new smaltd can start on it.
    kids = H.descendants(d.pid)
    os.kill(d.pid, 9)
    d.proc.wait()
    gone = H.wait_for(lambda: all(H.proc_state(p) in (None, "Z", "X")
                                  for p in kids), 15, 0.1)
    C.check("master SIGKILLed alone: smtpd, qmgr and agent exit too",
            gone, [(p, H.proc_state(p)) for p in kids])
    for p in kids:  # clean up after a failure: these are ours
        if H.proc_state(p) not in (None, "Z", "X"):
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
    H.wait_for(lambda: all(H.proc_state(p) in (None, "Z", "X")
                           for p in kids), 10, 0.05)
    try:
        d.start()
        started = True
    except RuntimeError as e:
        started = False
        print(str(e)[-500:])
    C.check("master SIGKILLed alone: smaltd starts again on the spool",
            started)
    return d


# ------------------------------------------------------------ pflogsumm
def t_pflogsumm(d, d_local):
    section("pflogsumm --syslog-name=smalt")
    exe = shutil.which("pflogsumm")
    if exe is None and ROOT:
        r = subprocess.run(["apt-get", "install", "-y", "pflogsumm"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        exe = shutil.which("pflogsumm")
        if exe is None:
            print("# apt-get install pflogsumm: %s" %
                  r.stdout.decode(errors="replace")[-300:])
    if exe is None:
        skip("pflogsumm is not installed and cannot be installed here")
        return
    if d is None:
        skip("pflogsumm: the pipe section did not run")
        return
    r = subprocess.run([exe, "--syslog-name=smalt", d.log_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = r.stdout.decode(errors="replace")
    C.check("pflogsumm runs", r.returncode == 0, out[-1000:])

    def count(word):
        m = re.search(r"^\s*(\d+)\s+%s\b" % word, out, re.M)
        return int(m.group(1)) if m else None
    # What really happened, counted from the mailboxes and command
    # outputs, not from the log.
    vmail = os.path.join(BASE, "vmail")
    mailbox_msgs = sum(len(mbox_messages(os.path.join(vmail, n)))
                       for n in ("pipe-bounces.mbox", "pipe-postmaster.mbox",
                                 "pipe-vuser.mbox"))
    piped = len([n for n in os.listdir(os.path.join(BASE, "pipeout"))
                 if n.endswith(".stdin")])
    C.check("pflogsumm: received = messages accepted over SMTP (%d)" %
            PC.received, count("received") == PC.received,
            out[:1500])
    C.check("pflogsumm: delivered = mailbox messages + pipe deliveries "
            "(%d)" % (mailbox_msgs + piped),
            count("delivered") == mailbox_msgs + piped, out[:1500])
    C.check("pflogsumm: bounced = failed recipients (%d)" % PC.bounced,
            count("bounced") == PC.bounced, out[:1500])
    C.check("pflogsumm: deferred 0, forwarded 0",
            count("deferred") == 0 and count("forwarded") == 0, out[:1500])
    if d_local is None:
        return
    # The aliases' daemon: two copies forwarded (fwd, staff's remote
    # member), both waiting for the smtp channel; one member bounced.
    r = subprocess.run([exe, "--syslog-name=smalt", d_local.log_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = r.stdout.decode(errors="replace")
    waiting = d_local.list_dir("deferred")
    C.check("pflogsumm (aliases): forwarded = copies queued for remote "
            "members (%d)" % len(waiting),
            count("forwarded") == len(waiting) == 2, (waiting, out[:1200]))
    C.check("pflogsumm (aliases): deferred = those copies, bounced = 1",
            count("deferred") == 2 and count("bounced") == 1, out[:1200])


# ------------------------------------------------------------------ main
def main():
    if not H.SMALT_BUILD:
        print("SMALT_BUILD must name the build directory")
        return 2
    if not ROOT:
        print("# not root: the sections that need test system users are "
              "skipped")
    run("setup", setup)
    run("background", start_background)
    d_local = run("local", t_local)
    run("maildir", t_maildir)
    d_pipe = run("pipe", t_pipe)
    run("dbl", t_double_bounce_dropped)
    run("reload", t_reload)
    if BG.retry:
        run("retry", check_retry)
    if BG.expire:
        run("expire", check_expire)
    if BG.conc2 and BG.conc1:
        run("concurrency", check_concurrency)
    run("crash", t_crash)
    run("pflogsumm", t_pflogsumm, d_pipe, d_local)

    section("shutdown")
    H.check_stop_all(C, ALL_DAEMONS)
    nulls = []
    for d in ALL_DAEMONS:
        nulls += re.findall(r"^.*: to=<>,.*$", d.log(), re.M)
    san = H.sanitizer_reports(ALL_DAEMONS)
    C.check("never a delivery to the null sender (no to=<> in any log)",
            not nulls, nulls[:5])
    C.check("no sanitizer reports in any daemon log", not san, san[:2])
    return H.finish_run(C, T0)


if __name__ == "__main__":
    sys.exit(main())
