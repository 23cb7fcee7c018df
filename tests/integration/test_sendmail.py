#!/usr/bin/env python3
"""sendmail, mailq and newaliases end to end (SPEC §2, §4, §9): the
sendmail of the build tree (never /usr/sbin/sendmail) invoked the way
cron, mutt, PHP, git send-email and s-nail invoke it, every message read
back from a real mailbox with mailbox.mbox; headers it adds, keeps and
removes; -t, Resent-*, groups, quoted names, bare LF, the lone dot, 8-bit
and long lines; exit codes; the maildrop with the daemon stopped and
running; mailq's layout with held and deferred mail; newaliases and -q
against a running daemon; trusted and untrusted senders (a setgid
smaltdrop copy run as test users); and hostile files dropped straight
into maildrop/. Each check prints one line; the last line is
"N passed, N failed".

Needs root (as CI runs it): it creates the test users smalts1 and smalts2
when missing (useradd -M) and runs sendmail as them; as another user it
prints SKIP and exits 77."""

import datetime
import email.utils
import fcntl
import grp
import mailbox
import os
import pwd
import re
import shutil
import smtplib
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smalt_harness as H  # noqa: E402
from smalt_harness import Daemon  # noqa: E402

C = H.Checker()
ROOT = os.geteuid() == 0
HOST = H.HOSTNAME
LOCAL_DOMAINS = "%s, localhost" % HOST
T0 = time.monotonic()
BASE = None
SM = None          # the build tree's sendmail
SGID = None        # a copy, setgid smaltdrop, for the test users
ALL_DAEMONS = []
USERS = {}         # name -> pwd entry

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
ASCTIME = r"(?:%s) (?:%s) [ 123]\d \d\d:\d\d:\d\d \d{4}" % (DAYS, MONTHS)
QID = r"[0-9A-F]{16}"
# The master's line for a child that died; sanitizers' reports.
CRASH_RX = (r"\(pid \d+\) (?:killed by signal|exited)|AddressSanitizer|"
            r"LeakSanitizer|runtime error:")
MAILQ_HEADER = ("-Queue ID-  --Size-- ----Arrival Time---- "
                "-Sender/Recipient-------")

# Virtual mailboxes (written by the daemon's user into BASE/vmail), one
# per case, so that each check reads a mailbox of its own.
BOXES = """cron mutt phpto phpcc phpbcc git1 git2 snail added kept fname
envf envr envnull bccto bccbcc tto tcmd rold rnew rcc rbcc undis quote1
quote2 list1 list2 list3 list4 dotend doti dotoi eight long edge fromline
flags verify bsbox alias1 alias2 rootf userf userr usernof smaltf burst
stop1 stop2 held1 held2 held3 hostbox good""".split()


# ---------------------------------------------------------------- helpers
section = C.section
skip = C.skip
run = C.run
mkdir = H.make_dir  # runs as root: owner applies
write = H.write_file
read = H.read_file


def daemon(name, start=True, **kw):
    kw.setdefault("local_domains", LOCAL_DOMAINS)
    kw.setdefault("mail_spool_directory", os.path.join(BASE, "mail"))
    kw.setdefault("virtual_mailboxes", os.path.join(BASE, "virtual"))
    d = Daemon(BASE, name, **kw)
    ALL_DAEMONS.append(d)
    return d.start() if start else d


def box(name):
    return os.path.join(BASE, "vmail", name + ".mbox")


def sm(args, data=b"", conf=None, user=None, exe=None, env=None,
       timeout=30):
    """Runs sendmail (or exe) with -C conf (unless conf is False), as
    user (through the setgid copy) when given. Returns the
    CompletedProcess; stdout and stderr are str."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    cmd = [exe or (SGID if user else SM)]
    if conf:
        cmd += ["-C", conf]
    cmd += list(args)
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    e = dict(os.environ)
    e.pop("SMALT_CONF", None)
    if env:
        e.update(env)
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=timeout)
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    return r


def show(r):
    return "exit %s, stdout %r, stderr %r" % (r.returncode, r.stdout[-600:],
                                             r.stderr[-600:])


def mbox_entries(path):
    """[(Message, raw bytes without the From_ line)] of an mbox file,
    read under a shared fcntl lock, so that a delivery under way (it
    holds the write lock) is never seen half written."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return []
    with f:
        fcntl.lockf(f, fcntl.LOCK_SH)
        b = mailbox.mbox(path, create=False)
        try:
            return [(b.get_message(k), b.get_bytes(k)) for k in b.keys()]
        finally:
            b.close()


def with_subject(entries, subject):
    return [e for e in entries if e[0].get("Subject") == subject]


def wait_mbox(path, subject, count=1, timeout=20.0):
    """Waits until the mbox holds count messages with this Subject;
    returns [(Message, raw)] (fewer on timeout)."""
    H.wait_for(lambda: len(with_subject(mbox_entries(path), subject))
               >= count, timeout, 0.05)
    return with_subject(mbox_entries(path), subject)


def wait_one(name, boxname, subject, timeout=20.0):
    """One copy of a message in a virtual box, as (Message, raw) or
    (None, None), with a check that it arrived."""
    got = wait_mbox(box(boxname), subject, 1, timeout)
    C.check("%s: delivered into mailbox %s" % (name, boxname), len(got) == 1,
            "%d copies" % len(got))
    return got[0] if got else (None, None)


def body_of(raw):
    i = raw.find(b"\n\n")
    return raw[i + 2:] if i >= 0 else b""


def addr(v):
    return email.utils.parseaddr(v or "")[1].lower()


def rpath(m):
    return m.get_all("Return-Path") if m is not None else None


def log_since(d, offset):
    return d.log()[offset:]


def log_mark(d):
    return len(d.log())


def pickup_lines(d, offset=0):
    """[(queue id, uid, sender)] of the pickup log lines after offset."""
    return re.findall(r"smalt/pickup\[\d+\]: (%s): uid=(\d+) from=<([^>]*)>$"
                      % QID, log_since(d, offset), re.M)


def removed(d, qid):
    return re.search(r"smalt/qmgr\[\d+\]: %s: removed$" % qid, d.log(), re.M)


def no_crash(d):
    return not re.search(CRASH_RX, d.log())


def ensure_user(name):
    home = os.path.join(BASE, "home", name)
    try:
        pwd.getpwnam(name)
        subprocess.run(["usermod", "-d", home, name], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", home, "-s",
                        "/usr/sbin/nologin", name], check=True)
    pw = pwd.getpwnam(name)
    os.makedirs(pw.pw_dir, exist_ok=True)
    os.chmod(pw.pw_dir, 0o755)
    os.chown(pw.pw_dir, pw.pw_uid, pw.pw_gid)
    return pw


def setup():
    global SGID
    mkdir(os.path.join(BASE, "bin"))
    mkdir(os.path.join(BASE, "home"))
    mkdir(os.path.join(BASE, "mail"), 0o1777)
    mkdir(os.path.join(BASE, "pipeout"), 0o1777)
    mkdir(os.path.join(BASE, "vmail"), 0o755, "smalt")
    write(os.path.join(BASE, "virtual"),
          "".join("%s  %s\n" % (b, box(b)) for b in BOXES))
    for u in ("smalts1", "smalts2"):
        USERS[u] = ensure_user(u)
    # The setgid copy, as cmake --install makes it.
    SGID = os.path.join(BASE, "bin", "sendmail")
    shutil.copy(SM, SGID)
    os.chown(SGID, 0, grp.getgrnam("smaltdrop").gr_gid)
    os.chmod(SGID, 0o2755)
    # And one without the setgid bit, as a user might run from a build.
    plain = os.path.join(BASE, "bin", "sendmail-plain")
    shutil.copy(SM, plain)
    os.chmod(plain, 0o755)
    # argv[0] names.
    for n in ("mailq", "newaliases"):
        os.symlink(SM, os.path.join(BASE, "bin", n))
    write(os.path.join(BASE, "bin", "catto.sh"),
          "#!/bin/sh\n# $1: folder, $2: recipient\ncat > \"$1/$2\"\n",
          0o755)


# ----------------------------------------------------- how callers call it
def t_invocations(d):
    section("cron, mutt, PHP, git send-email and s-nail invocations")
    conf = d.conf_path

    # cron: Debian's cron runs "sendmail -FCronDaemon -i -B8BITMIME -oem
    # USER" with its own headers (no Date, no Message-ID).
    subj = "Cron <root@box> run-parts /etc/cron.hourly"
    msg = ("From: root (Cron Daemon)\nTo: cron\nSubject: %s\n"
           "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
           "Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n"
           "\nrun-parts: /etc/cron.hourly/x exited with return code 1\n"
           "caf\u00e9\n" % subj)
    r = sm(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "cron"], msg, conf)
    C.check("cron: exit 0, nothing on stderr",
            r.returncode == 0 and r.stderr == "", show(r))
    m, raw = wait_one("cron", "cron", subj)
    if m is not None:
        C.check("cron: Return-Path <root@%s>" % HOST,
                rpath(m) == ["<root@%s>" % HOST], rpath(m))
        C.check("cron: its own From: kept (one From:)",
                m.get_all("From") == ["root (Cron Daemon)"],
                m.get_all("From"))
        C.check("cron: Date and Message-ID added",
                len(m.get_all("Date") or []) == 1 and
                len(m.get_all("Message-ID") or []) == 1, m.items())
        C.check("cron: 8-bit body intact, LF line ends",
                body_of(raw) == b"run-parts: /etc/cron.hourly/x exited with "
                b"return code 1\ncaf\xc3\xa9\n", body_of(raw))

    # mutt: "sendmail -oem -oi -- RCPT" with a complete message.
    subj = "mutt message"
    date = "Sun, 01 Mar 2026 10:00:00 +0100"
    msg = ("Date: %s\nFrom: Mutt User <mutt.user@example.org>\n"
           "To: mutt@localhost\nSubject: %s\n"
           "Message-ID: <mutt.1234@example.org>\nMIME-Version: 1.0\n"
           "Content-Type: text/plain; charset=us-ascii\n"
           "Content-Disposition: inline\nUser-Agent: Mutt/2.2.9\n\n"
           "Hello from mutt.\n.\n-- \nsig\n" % (date, subj))
    r = sm(["-oem", "-oi", "--", "mutt@localhost"], msg, conf)
    C.check("mutt: exit 0", r.returncode == 0, show(r))
    m, raw = wait_one("mutt", "mutt", subj)
    if m is not None:
        C.check("mutt: From/Date/Message-ID kept as written",
                m.get_all("From") == ["Mutt User <mutt.user@example.org>"]
                and m.get_all("Date") == [date] and
                m.get_all("Message-ID") == ["<mutt.1234@example.org>"],
                m.items())
        C.check("mutt: -oi: the lone '.' line and what follows kept",
                body_of(raw) == b"Hello from mutt.\n.\n-- \nsig\n",
                body_of(raw))

    # PHP's mail(): "sendmail -t -i", CR LF between the headers it
    # writes, LF in the body the script hands it.
    subj = "PHP mail"
    msg = ("To: phpto@localhost\r\nSubject: %s\r\n"
           "From: webmaster@example.org\r\nCc: phpcc@localhost\r\n"
           "Bcc: phpbcc@localhost\r\nX-Mailer: PHP/8.2.7\r\n\r\n"
           "line one\nline two\n\nlast line\n" % subj).encode()
    r = sm(["-t", "-i"], msg, conf)
    C.check("php: exit 0", r.returncode == 0, show(r))
    for b in ("phpto", "phpcc", "phpbcc"):
        m, raw = wait_one("php %s" % b, b, subj)
        if m is None:
            continue
        C.check("php %s: no Bcc: in the delivered copy" % b,
                m.get_all("Bcc") is None and b"phpbcc" not in
                raw.split(b"\n\n")[0].replace(b"Delivered-To: phpbcc", b""),
                raw[:600])
        C.check("php %s: To and Cc kept" % b,
                m.get("To") == "phpto@localhost" and
                m.get("Cc") == "phpcc@localhost", m.items())
        C.check("php %s: mixed CRLF/LF input delivered with LF only" % b,
                b"\r" not in raw and
                body_of(raw) == b"line one\nline two\n\nlast line\n", raw)
    raw_file = read(box("phpto"), "rb") or b""
    C.check("php: the mbox file holds no CR at all", b"\r" not in raw_file)

    # git send-email: "sendmail -i RCPT1 RCPT2" with a patch.
    subj = "[PATCH] queue: fix the thing"
    msg = ("From: Dev Eloper <dev@example.org>\n"
           "To: git1@localhost\nCc: git2@localhost\nSubject: %s\n"
           "Date: Mon, 2 Mar 2026 09:00:00 +0000\n"
           "Message-ID: <20260302090000.1-1-dev@example.org>\n"
           "X-Mailer: git-send-email 2.39.2\nMIME-Version: 1.0\n"
           "Content-Transfer-Encoding: 8bit\n\n"
           "Signed-off-by: Dev Eloper <dev@example.org>\n---\n"
           " queue/x.c | 2 +-\n\n"
           "diff --git a/queue/x.c b/queue/x.c\n"
           "--- a/queue/x.c\n+++ b/queue/x.c\n@@ -1 +1 @@\n"
           "-old\n+new\n.\n From here\nFrom here too\n--\n2.39.2\n" % subj)
    r = sm(["-i", "git1@localhost", "git2@localhost"], msg, conf)
    C.check("git send-email: exit 0", r.returncode == 0, show(r))
    want = (b"Signed-off-by: Dev Eloper <dev@example.org>\n---\n"
            b" queue/x.c | 2 +-\n\ndiff --git a/queue/x.c b/queue/x.c\n"
            b"--- a/queue/x.c\n+++ b/queue/x.c\n@@ -1 +1 @@\n"
            b"-old\n+new\n.\n From here\n>From here too\n--\n2.39.2\n")
    for b in ("git1", "git2"):
        m, raw = wait_one("git send-email %s" % b, b, subj)
        if m is not None:
            C.check("git send-email %s: patch body intact (a '.' line; a "
                    "'From ' line, >From-quoted in the mbox)" % b,
                    body_of(raw) == want, body_of(raw))
            C.check("git send-email %s: Message-ID kept" % b,
                    m.get_all("Message-ID") ==
                    ["<20260302090000.1-1-dev@example.org>"], m.items())

    # s-nail (mailx) with mta= pointing at our sendmail; the config
    # through SMALT_CONF, since s-nail adds no -C.
    snail = shutil.which("s-nail")
    if snail is None:
        try:
            r = subprocess.run(["apt-get", "install", "-y", "s-nail"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            r = subprocess.CompletedProcess([], 1, str(e).encode())
        snail = shutil.which("s-nail")
        if snail is None:
            print("# apt-get install s-nail: %s" %
                  r.stdout.decode(errors="replace")[-300:])
    if snail is None:
        skip("s-nail is not installed and cannot be installed here")
        return
    subj = "s-nail message"
    env = dict(os.environ, SMALT_CONF=conf, MAILRC="/dev/null",
               HOME=os.path.join(BASE, "home"), LC_ALL="C.UTF-8")
    p = subprocess.run([snail, "-n", "-S", "mta=%s" % SM, "-S",
                        "sendwait", "-S", "from=snail.user@example.org",
                        "-s", subj, "snail@localhost"],
                       input=b"Hello from s-nail.\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=60)
    C.check("s-nail: exit 0", p.returncode == 0,
            p.stdout.decode(errors="replace")[-500:])
    m, raw = wait_one("s-nail", "snail", subj)
    if m is not None:
        C.check("s-nail: body and From: as s-nail wrote them",
                body_of(raw) == b"Hello from s-nail.\n" and
                addr(m.get("From")) == "snail.user@example.org",
                raw[:800])


# --------------------------------------------------------------- headers
def t_headers(d):
    section("headers added, kept, removed; -F -f -r; -t; dots; long lines")
    conf = d.conf_path

    subj = "headers added"
    before = datetime.datetime.now(datetime.timezone.utc)
    r = sm(["added@localhost"], "Subject: %s\n\nbody\n" % subj, conf)
    C.check("added: exit 0", r.returncode == 0, show(r))
    m, raw = wait_one("added", "added", subj)
    if m is not None:
        C.check("added: From: root@%s" % HOST,
                m.get_all("From") == ["root@%s" % HOST], m.get_all("From"))
        dates = m.get_all("Date") or []
        try:
            dt = email.utils.parsedate_to_datetime(dates[0])
            ok = (len(dates) == 1 and dt.tzinfo is not None and
                  abs((dt - before).total_seconds()) < 300)
        except (IndexError, TypeError, ValueError) as e:
            ok, dt = False, e
        C.check("added: one Date:, parsed by parsedate_to_datetime, now",
                ok, (dates, dt))
        C.check("added: Date: is RFC 5322 (day, month, year, time, zone)",
                dates and re.fullmatch(
                    r"(?:(?:%s), )?\d{1,2} (?:%s) \d{4} \d\d:\d\d:\d\d "
                    r"[+-]\d{4}" % (DAYS, MONTHS), dates[0]), dates)
        mids = m.get_all("Message-ID") or []
        C.check("added: one Message-ID: <...@%s>" % HOST,
                len(mids) == 1 and re.fullmatch(
                    r"<[^<>@\s]+@%s>" % re.escape(HOST), mids[0]), mids)
    # Two messages, two Message-IDs.
    r = sm(["added@localhost"], "Subject: %s 2\n\nbody\n" % subj, conf)
    m2, _ = wait_one("added (second)", "added", subj + " 2")
    if m is not None and m2 is not None:
        C.check("added: Message-IDs differ between messages",
                m.get("Message-ID") != m2.get("Message-ID"),
                (m.get("Message-ID"), m2.get("Message-ID")))

    subj = "headers kept"
    hdr = ("From: Someone Else <someone@example.org>\n"
           "Date: Tue, 3 Mar 2026 12:34:56 -0500\n"
           "Message-ID: <kept.42@example.org>\n")
    r = sm(["kept@localhost"], hdr + "Subject: %s\n\nbody\n" % subj, conf)
    m, raw = wait_one("kept", "kept", subj)
    if m is not None:
        C.check("kept: From, Date, Message-ID exactly as given, once each",
                m.get_all("From") == ["Someone Else <someone@example.org>"]
                and m.get_all("Date") == ["Tue, 3 Mar 2026 12:34:56 -0500"]
                and m.get_all("Message-ID") == ["<kept.42@example.org>"],
                m.items())
    subj = "headers kept lc"
    r = sm(["kept@localhost"], "from: lc@example.org\ndate: Tue, 3 Mar "
           "2026 12:34:56 -0500\nmessage-id: <lc@example.org>\n"
           "Subject: %s\n\nbody\n" % subj, conf)
    m, raw = wait_one("kept lc", "kept", subj)
    if m is not None:
        C.check("kept: from:/date:/message-id: in lower case not added "
                "again", len(m.get_all("From")) == 1 and
                len(m.get_all("Date")) == 1 and
                len(m.get_all("Message-ID")) == 1, m.items())

    subj = "full name"
    r = sm(["-F", "Jane Q. Public, Esq.", "fname@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf)
    C.check("-F: exit 0", r.returncode == 0, show(r))
    m, _ = wait_one("-F", "fname", subj)
    if m is not None:
        C.check("-F: From: display name set, address the sender",
                email.utils.parseaddr(m.get("From")) ==
                ("Jane Q. Public, Esq.", "root@%s" % HOST), m.get("From"))
        C.check("-F: one address in From: (the comma is quoted)",
                len(email.utils.getaddresses(m.get_all("From"))) == 1,
                m.get("From"))

    for flag, b in (("-f", "envf"), ("-r", "envr")):
        subj = "envelope sender %s" % flag
        r = sm([flag, "bounces@lists.example.org", "%s@localhost" % b],
               "Subject: %s\n\nbody\n" % subj, conf)
        C.check("%s: exit 0" % flag, r.returncode == 0, show(r))
        m, _ = wait_one(flag, b, subj)
        if m is not None:
            C.check("%s: Return-Path <bounces@lists.example.org>" % flag,
                    rpath(m) == ["<bounces@lists.example.org>"], rpath(m))
            C.check("%s: mbox From_ line names the sender" % flag,
                    re.match(r"bounces@lists\.example\.org %s$" % ASCTIME,
                             m.get_from() or ""), m.get_from())
            C.check("%s: root is trusted: no X-Authentication-Warning" %
                    flag, m.get("X-Authentication-Warning") is None,
                    m.items())
    # Attached value, as some scripts write it.
    subj = "envelope sender attached"
    r = sm(["-fattached@example.org", "envf@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf)
    m, _ = wait_one("-fADDR", "envf", subj)
    if m is not None:
        C.check("-fADDR (attached): Return-Path <attached@example.org>",
                rpath(m) == ["<attached@example.org>"], rpath(m))
    subj = "null sender"
    r = sm(["-f", "<>", "envnull@localhost"], "Subject: %s\n\nbody\n" % subj,
           conf)
    C.check("-f '<>': exit 0", r.returncode == 0, show(r))
    m, _ = wait_one("-f '<>'", "envnull", subj)
    if m is not None:
        C.check("-f '<>': Return-Path <>", rpath(m) == ["<>"], rpath(m))

    # -t: Bcc recipients get the message, nobody sees the Bcc: field.
    subj = "bcc removed"
    r = sm(["-t"], "To: bccto@localhost\nBcc: bccbcc@localhost,\n"
           " nosuch-but-folded-away@example.org\nSubject: %s\n\nbody\n"
           % subj, conf)
    C.check("-t Bcc: exit 0", r.returncode == 0, show(r))
    for b in ("bccto", "bccbcc"):
        m, raw = wait_one("-t Bcc %s" % b, b, subj)
        if m is not None:
            head = raw.split(b"\n\n")[0]
            C.check("-t Bcc %s: no Bcc: field, not even its continuation "
                    "line" % b, m.get_all("Bcc") is None and
                    b"nosuch-but-folded-away" not in head, head)

    # -t and command-line recipients together.
    subj = "t plus argv"
    r = sm(["-t", "-i", "tcmd@localhost"], "To: tto@localhost\n"
           "Subject: %s\n\nbody\n" % subj, conf)
    C.check("-t + argv: exit 0", r.returncode == 0, show(r))
    wait_one("-t + argv (header recipient)", "tto", subj)
    wait_one("-t + argv (command-line recipient)", "tcmd", subj)

    # Resent-*: only the Resent- recipients.
    subj = "resent"
    mark = log_mark(d)
    r = sm(["-t"], "From: a@example.org\nTo: rold@localhost\n"
           "Subject: %s\nResent-From: b@example.org\n"
           "Resent-To: rnew@localhost\nResent-Cc: rcc@localhost\n"
           "\nbody\n" % subj, conf)
    C.check("-t Resent-*: exit 0", r.returncode == 0, show(r))
    wait_one("-t Resent-To", "rnew", subj)
    wait_one("-t Resent-Cc", "rcc", subj)
    ids = [p[0] for p in pickup_lines(d, mark)]
    H.wait_for(lambda: ids and removed(d, ids[0]), 10)
    C.check("-t Resent-*: the old To: recipient does not get it",
            ids and removed(d, ids[0]) and
            not with_subject(mbox_entries(box("rold")), subj),
            log_since(d, mark)[-1500:])
    C.check("-t Resent-*: nrcpt=2 in the log",
            re.search(r"%s: from=<root@%s>, size=\d+, nrcpt=2 "
                      % (ids[0] if ids else "X", re.escape(HOST)),
                      log_since(d, mark)), log_since(d, mark)[-1500:])

    # A group with no members, and the Bcc recipient.
    subj = "undisclosed"
    r = sm(["-t"], "To: undisclosed-recipients:;\nBcc: undis@localhost\n"
           "Subject: %s\n\nbody\n" % subj, conf)
    C.check("-t 'undisclosed-recipients:;' + Bcc: exit 0", r.returncode == 0,
            show(r))
    m, _ = wait_one("-t undisclosed-recipients", "undis", subj)
    if m is not None:
        C.check("undisclosed: To: undisclosed-recipients:; kept",
                m.get("To") == "undisclosed-recipients:;", m.get("To"))
    r = sm(["-t"], "To: undisclosed-recipients:;\nSubject: nobody\n\nb\n",
           conf)
    C.check("-t with only an empty group: exit 65, 'no recipient'",
            r.returncode == 65 and "recipient" in r.stderr, show(r))

    # Quoted display names with commas (and a comment).
    subj = "quoted names"
    mark = log_mark(d)
    r = sm(["-t"], "To: \"Doe, John\" <quote1@localhost>,\n"
           " \"Smith; Ann, (Dr.)\" <quote2@localhost> (the second),\n"
           " \"quote1@localhost, again\" <QUOTE1@LOCALHOST>\n"
           "Subject: %s\n\nbody\n" % subj, conf)
    C.check("-t quoted display names with commas: exit 0",
            r.returncode == 0, show(r))
    wait_one("quoted names (first)", "quote1", subj)
    wait_one("quoted names (second)", "quote2", subj)
    C.check("quoted names: nrcpt=2 (no address made of a name, the "
            "duplicate once)",
            H.wait_for(lambda: re.search(r"nrcpt=2 ", log_since(d, mark)),
                       10) and not re.search(r"nrcpt=[013-9]",
                                             log_since(d, mark)),
            log_since(d, mark)[-1500:])

    # A lone dot: the end without -i, a line with -i / -oi.
    body = "before\n.\nafter\n"
    for flags, b, want in (([], "dotend", b"before\n"),
                           (["-i"], "doti", b"before\n.\nafter\n"),
                           (["-oi"], "dotoi", b"before\n.\nafter\n")):
        subj = "lone dot %s" % (flags[0] if flags else "no -i")
        r = sm(flags + ["%s@localhost" % b], "Subject: %s\n\n%s" %
               (subj, body), conf)
        C.check("%s: exit 0" % subj, r.returncode == 0, show(r))
        m, raw = wait_one(subj, b, subj)
        if m is not None:
            C.check("%s: body is %r" % (subj, want), body_of(raw) == want,
                    body_of(raw))
    # A dot line with CR LF ends it too, and ".." is not a lone dot.
    subj = "lone dot crlf"
    r = sm(["dotend@localhost"], ("Subject: %s\r\n\r\n..\r\nx\r\n.\r\n"
                                  "after\r\n" % subj).encode(), conf)
    m, raw = wait_one(subj, "dotend", subj)
    if m is not None:
        C.check("lone dot crlf: '.' CR LF ends input, '..' kept as is",
                body_of(raw) == b"..\nx\n", body_of(raw))

    # 8-bit octets, untouched (not valid UTF-8 either).
    subj = "eight bit"
    body8 = (b"caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac\n"
             b"latin-1 \xe9\xe8\xff\xfe\x80\n\x01\x7f\ttab\n")
    r = sm(["-B8BITMIME", "eight@localhost"],
           b"Subject: " + subj.encode() + b"\nX-Raw: \xc3\xa9\n\n" + body8,
           conf)
    C.check("8-bit: exit 0", r.returncode == 0, show(r))
    m, raw = wait_one("8-bit", "eight", subj)
    if m is not None:
        C.check("8-bit: body octets untouched", body_of(raw) == body8,
                body_of(raw))
        C.check("8-bit: header octets untouched",
                b"\nX-Raw: \xc3\xa9\n" in raw.split(b"\n\n")[0], raw[:500])

    # A 2000-octet body line (over RFC 5322's 998).
    subj = "long line"
    line = ("0123456789" * 200).encode()
    r = sm(["long@localhost"], b"Subject: " + subj.encode() +
           b"\n\nshort\n" + line + b"\nend\n", conf)
    C.check("2000-octet line: exit 0", r.returncode == 0, show(r))
    m, raw = wait_one("2000-octet line", "long", subj)
    if m is not None:
        C.check("2000-octet line: kept whole on one line",
                body_of(raw) == b"short\n" + line + b"\nend\n",
                [len(x) for x in body_of(raw).split(b"\n")])


    # More address lists for -t: two To: fields, a group with members,
    # an empty Cc:, a bare local part; Resent-Bcc: removed too.
    subj = "t lists"
    r = sm(["-t"], "To: list1@localhost\nCc:\nTo: team: list2@localhost,"
           "\n list3@localhost;, list4\nSubject: %s\n\nbody\n" % subj,
           conf)
    C.check("-t two To: fields, a group, an empty Cc:, a bare local part: "
            "exit 0", r.returncode == 0, show(r))
    for b in ("list1", "list2", "list3", "list4"):
        wait_one("-t lists %s" % b, b, subj)
    subj = "resent bcc"
    r = sm(["-t"], "To: rold@localhost\nResent-To: rnew@localhost\n"
           "Resent-Bcc: rbcc@localhost\nSubject: %s\n\nbody\n" % subj, conf)
    for b in ("rnew", "rbcc"):
        m, raw = wait_one("-t Resent-Bcc %s" % b, b, subj)
        if m is not None:
            C.check("-t Resent-Bcc %s: no Resent-Bcc: field" % b,
                    m.get_all("Resent-Bcc") is None, m.items())
    # Without -t a Bcc: field goes too (its address gets nothing).
    subj = "bcc without t"
    mark = log_mark(d)
    r = sm(["bccto@localhost"], "Bcc: bccbcc@localhost\nSubject: %s\n\n"
           "body\n" % subj, conf)
    m, raw = wait_one("Bcc: without -t", "bccto", subj)
    if m is not None:
        C.check("Bcc: without -t: removed from the message",
                m.get_all("Bcc") is None, m.items())
    C.check("Bcc: without -t: only the command-line recipient (nrcpt=1)",
            H.wait_for(lambda: re.search(r"nrcpt=1 ", log_since(d, mark)),
                       10), log_since(d, mark)[-800:])

    # -F and -f cannot start header fields of their own.
    subj = "F with newline"
    r = sm(["-F", "Evil\r\nX-Injected: yes", "fname@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf)
    m, raw = wait_one("-F with CR LF", "fname", subj)
    if m is not None:
        C.check("-F with CR LF inside: no header field injected",
                m.get("X-Injected") is None and
                len(m.get_all("From") or []) == 1, raw[:600])
    # Quotes and backslashes in -F survive as one display name.
    subj = "F with quotes"
    name = 'Jo "the \\ boss" O\'Hara'
    r = sm(["-F", name, "fname@localhost"], "Subject: %s\n\nbody\n" % subj,
           conf)
    m, raw = wait_one("-F with quotes", "fname", subj)
    if m is not None:
        C.check("-F with quotes and a backslash: the name round-trips",
                email.utils.parseaddr(m.get("From")) ==
                (name, "root@%s" % HOST), m.get("From"))

    # A header line over 998 octets is folded at white space; the
    # unfolded value is the same.
    subj = "long header"
    words = " ".join("word%04d" % i for i in range(200))  # 1799 octets
    r = sm(["long@localhost"], "Subject: %s\nX-Long: %s\n\nbody\n" %
           (subj, words), conf)
    m, raw = wait_one("long header line", "long", subj)
    if m is not None:
        head = raw.split(b"\n\n")[0].split(b"\n")
        C.check("long header line: folded, every line at most 998 octets, "
                "the unfolded value unchanged",
                max(len(x) for x in head) <= 998 and
                re.sub(r"\s+", " ", m.get("X-Long") or "").strip() == words,
                [len(x) for x in head])

    # Only a header, no newline at the end; an empty message.
    subj = "no newline"
    r = sm(["edge@localhost"], b"Subject: no newline", conf)
    m, raw = wait_one("a lone header without a newline", "edge", subj)
    if m is not None:
        C.check("a lone header without a newline: From/Date/Message-ID "
                "added, body empty", m.get("From") and m.get("Date") and
                m.get("Message-ID") and body_of(raw) in (b"", b"\n"),
                raw[-300:])
    mark = log_mark(d)
    r = sm(["edge@localhost"], b"", conf)
    C.check("empty input: exit 0 (queued, as Postfix does)",
            r.returncode == 0, show(r))
    C.check("empty input: delivered",
            H.wait_for(lambda: re.search(r"to=<edge@localhost>.*status=sent",
                                         log_since(d, mark)), 10),
            log_since(d, mark)[-800:])

    # A leading mbox "From " line (git format-patch, formail, an mbox
    # message re-sent) is an envelope line, not part of the message:
    # Postfix's and Sendmail's sendmail drop it.
    subj = "[PATCH] leading From_ line"
    msg = ("From 1a2b3c4d5e6f Mon Sep 17 00:00:00 2001\n"
           "From: Dev Eloper <dev@example.org>\nTo: fromline@localhost\n"
           "Date: Mon, 2 Mar 2026 09:00:00 +0000\nSubject: %s\n\n"
           "the patch\n" % subj)
    r = sm(["-t", "-i"], msg, conf)
    C.check("leading 'From ' line, -t: exit 0 (the headers after it are "
            "read)", r.returncode == 0, show(r))
    if r.returncode == 0:
        m, raw = wait_one("leading 'From ' line", "fromline", subj)
        if m is not None:
            C.check("leading 'From ' line: dropped; From/Date kept, none "
                    "added", m.get_all("From") ==
                    ["Dev Eloper <dev@example.org>"] and
                    body_of(raw) == b"the patch\n", raw[:700])


# --------------------------------------------------- exit codes and stderr
def t_exit_codes(d):
    section("exit codes and stderr")
    conf = d.conf_path
    mark = log_mark(d)
    r = sm(["-t"], "Subject: no recipients\n\nbody\n", conf)
    C.check("-t without To/Cc/Bcc: exit 65 (EX_DATAERR) with a reason",
            r.returncode == 65 and "recipient" in r.stderr.lower(), show(r))
    r = sm([], "Subject: no recipients\n\nbody\n", conf)
    C.check("no recipients at all: exit 65", r.returncode == 65, show(r))
    r = sm(["nosuchuser@localhost"], "Subject: nouser\n\nbody\n", conf)
    C.check("nosuchuser@localhost: exit 67 (EX_NOUSER), stderr names it",
            r.returncode == 67 and "nosuchuser@localhost" in r.stderr,
            show(r))
    r = sm(["nosuchuser2"], "Subject: nouser\n\nbody\n", conf)
    C.check("nosuchuser2 (bare local part): exit 67", r.returncode == 67,
            show(r))
    r = sm(["-t"], "To: cron@localhost, nosuchuser3@%s\n"
           "Subject: nouser\n\nbody\n" % HOST, conf)
    C.check("-t with one unknown local user among good ones: exit 67",
            r.returncode == 67 and "nosuchuser3" in r.stderr, show(r))
    time.sleep(0.5)
    C.check("refused messages were not queued (no pickup log line)",
            not pickup_lines(d, mark), log_since(d, mark))

    bad = write(os.path.join(BASE, "bad.conf"),
                "# a comment\nhostname = %s\nno_such_key = 1\n" % HOST)
    r = sm(["cron@localhost"], "Subject: x\n\nb\n", bad)
    C.check("-C file with an unknown key: exit 78, stderr names file:3",
            r.returncode == 78 and "%s:3" % bad in r.stderr, show(r))
    r = sm(["cron@localhost"], "Subject: x\n\nb\n", None,
           env={"SMALT_CONF": bad})
    C.check("SMALT_CONF naming that file: exit 78, file:3 on stderr",
            r.returncode == 78 and "%s:3" % bad in r.stderr, show(r))
    r = sm(["cron@localhost"], "Subject: x\n\nb\n",
           os.path.join(BASE, "no-such.conf"))
    C.check("-C a missing file: exit 78 with the file's name",
            r.returncode == 78 and "no-such.conf" in r.stderr, show(r))
    r = sm(["-bp"], "", bad)
    C.check("-bp with a bad config: exit 78", r.returncode == 78, show(r))
    r = sm(["-C", d.conf_path, "cron@localhost"], "Subject: x\n\nb\n", None,
           env={"SMALT_CONF": bad})
    C.check("-C wins over SMALT_CONF (good -C, bad SMALT_CONF): exit 0",
            r.returncode == 0, show(r))

    r = sm(["-b"], "", conf)
    C.check("-b alone: exit 64 (EX_USAGE) with a reason",
            r.returncode == 64 and r.stderr.strip(), show(r))
    r = sm(["-bz"], "", conf)
    C.check("-bz: exit 64", r.returncode == 64 and r.stderr.strip(), show(r))
    r = sm(["-f"], "", conf)
    C.check("-f without a value: exit 64", r.returncode == 64, show(r))

    # Options sendmail does not act on: accepted, values consumed.
    subj = "ignored flags"
    xlog = os.path.join(BASE, "x-logfile")
    args = ["-G", "-U", "-v", "-oQ/tmp", "-ODeliveryMode=b", "-N", "never",
            "-R", "hdrs", "-V", "envid", "-L", "tag", "-B", "8BITMIME",
            "-X", xlog, "-odb", "-oem", "-oee", "-Ooption=value", "-n",
            "-m", "-h", "20", "-p", "smtp:host", "-A", "-s",
            "flags@localhost"]
    r = sm(args, "Subject: %s\n\nbody\n" % subj, conf)
    C.check("ignored options (%s): exit 0, nothing on stderr" %
            " ".join(args[:-1]), r.returncode == 0 and r.stderr == "",
            show(r))
    mark = log_mark(d)
    m, _ = wait_one("ignored options", "flags", subj)
    C.check("ignored options: -X's value was consumed (no file written, "
            "not a recipient)", not os.path.exists(xlog) and
            not re.search(r"to=<[^>]*x-logfile", d.log()), d.log()[-800:])
    C.check("-bm: exit 0",
            sm(["-bm", "flags@localhost"], "Subject: bm\n\nb\n", conf)
            .returncode == 0)
    wait_one("-bm", "flags", "bm")

    # sendmail's other modes: -bv verifies, -bt tests addresses, -bd
    # runs a daemon, -bh/-bP print statistics. Whatever smalt does with
    # them (a usage error, as Postfix gives for most, or nothing), it must
    # not send the caller's input to the arguments as a message.
    rcs = {}
    for mode in ("v", "t", "d", "D", "h", "H", "P", "a"):
        r = sm(["-b" + mode, "verify@localhost"],
               "Subject: mode -b%s\n\nbody\n" % mode, conf)
        rcs["-b" + mode] = r.returncode
    sm(["verify@localhost"], "Subject: mode marker\n\nbody\n", conf)
    wait_one("-bX modes: a marker message", "verify", "mode marker")
    time.sleep(0.3)
    sent = [m.get("Subject") for m, _ in mbox_entries(box("verify"))
            if m.get("Subject") != "mode marker"]
    C.check("-bv -bt -bd -bD -bh -bH -bP -ba: no message delivered to the "
            "address given (exit codes %s)" % rcs, not sent,
            "delivered: %s" % sent)

    # Bad input and arguments.
    mark = log_mark(d)
    r = sm(["-t"], "To: <unterminated\nSubject: x\n\nb\n", conf)
    C.check("-t with a To: that does not parse: exit 65, stderr names To",
            r.returncode == 65 and "To" in r.stderr, show(r))
    r = sm(["-f", "not an address", "cron@localhost"], "Subject: x\n\nb\n",
           conf)
    C.check("-f with a bad address: exit 64 or 65 with the reason",
            r.returncode in (64, 65) and "not an address" in r.stderr,
            show(r))
    p = subprocess.run(["sh", "-c", 'exec "$@" <&-', "sh", SM, "-C", conf,
                        "cron@localhost"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    C.check("standard input closed: exit 66 (EX_NOINPUT) with the reason",
            p.returncode == 66 and p.stderr.strip(), (p.returncode, p.stderr))
    time.sleep(0.3)
    C.check("bad input refused: nothing queued (no pickup log line)",
            not pickup_lines(d, mark), log_since(d, mark))


# ------------------------------------------------------------------ -bs
def bs_dialogue(sender, rcpts, subj, extra=""):
    return ("EHLO client.example\r\nMAIL FROM:<%s>\r\n%s"
            "DATA\r\nSubject: %s\r\n%s\r\nbody line\r\n..leading dot\r\n"
            ".\r\nQUIT\r\n" % (sender, "".join("RCPT TO:<%s>\r\n" % r
                                                for r in rcpts), subj, extra))


def reply_codes(out):
    """The codes of the last lines of each reply in an SMTP transcript."""
    return [int(ln[:3]) for ln in out.replace("\r\n", "\n").split("\n")
            if re.match(r"\d{3} ", ln)]


def t_bs(d):
    section("-bs: an SMTP session on standard input and output")
    conf = d.conf_path
    # -bs keeps a private queue under $TMPDIR: one of this test's own.
    tmp = mkdir(os.path.join(BASE, "bstmp"), 0o1777)
    benv = {"TMPDIR": tmp}
    subj = "bs session"
    mark = log_mark(d)
    r = sm(["-bs"], bs_dialogue("root@%s" % HOST, ["bsbox@localhost"], subj),
           conf, env=benv)
    codes = reply_codes(r.stdout)
    C.check("-bs (root): exit 0; replies 220 250 250 250 354 250 221",
            r.returncode == 0 and
            codes == [220, 250, 250, 250, 354, 250, 221], show(r))
    C.check("-bs: replies end in CR LF",
            r.stdout.endswith("\r\n") and "\n" not in
            r.stdout.replace("\r\n", ""), repr(r.stdout[-200:]))
    m, raw = wait_one("-bs (root)", "bsbox", subj)
    if m is not None:
        C.check("-bs: Return-Path from MAIL FROM, dot-unstuffed body",
                rpath(m) == ["<root@%s>" % HOST] and
                body_of(raw) == b"body line\n.leading dot\n", raw[-300:])
        # RFC 5322 3.6 requires Date: and From:; sendmail(1) says -bs
        # queues each message "as by -bm", which adds them.
        C.check("-bs: From, Date and Message-ID added, as with -bm",
                len(m.get_all("From") or []) == 1 and
                len(m.get_all("Date") or []) == 1 and
                len(m.get_all("Message-ID") or []) == 1, m.items())
    C.check("-bs (root): pickup log uid=0",
            ("0", "root@%s" % HOST) in
            [(u, s) for _, u, s in pickup_lines(d, mark)], log_since(d, mark))

    subj = "bs two messages"
    dia = (bs_dialogue("a@example.org", ["bsbox@localhost"], subj + " 1")
           .replace("QUIT\r\n", "") +
           bs_dialogue("b@example.org", ["bsbox@localhost"], subj + " 2")
           .replace("EHLO client.example\r\n", "RSET\r\n"))
    r = sm(["-bs"], dia, conf, env=benv)
    C.check("-bs: two messages in one session, both 250",
            r.returncode == 0 and reply_codes(r.stdout).count(250) >= 6,
            show(r))
    wait_one("-bs first of two", "bsbox", subj + " 1")
    wait_one("-bs second of two", "bsbox", subj + " 2")

    r = sm(["-bs"], bs_dialogue("root@%s" % HOST, ["nosuchuser@localhost"],
                                "bs unknown"), conf, env=benv)
    codes = reply_codes(r.stdout)
    C.check("-bs: an unknown local recipient gets 550 at RCPT",
            len(codes) > 3 and codes[3] == 550, show(r))

    # A user's MAIL FROM is a -f: kept, with the warning.
    subj = "bs user"
    mark = log_mark(d)
    uid1 = USERS["smalts1"].pw_uid
    r = sm(["-bs"], bs_dialogue("ceo@bank.example", ["bsbox@localhost"],
                                subj), conf, user="smalts1", env=benv)
    C.check("-bs (smalts1): exit 0, message accepted",
            r.returncode == 0 and reply_codes(r.stdout)[-2:] == [250, 221],
            show(r))
    m, raw = wait_one("-bs (smalts1)", "bsbox", subj)
    if m is not None:
        C.check("-bs (smalts1): MAIL FROM kept, X-Authentication-Warning "
                "added", rpath(m) == ["<ceo@bank.example>"] and
                [w.strip() for w in
                 m.get_all("X-Authentication-Warning") or []] ==
                ["%s: smalts1 set sender to ceo@bank.example using -f"
                 % HOST], m.items())
    C.check("-bs (smalts1): pickup log uid=%d" % uid1,
            (str(uid1), "ceo@bank.example") in
            [(u, s) for _, u, s in pickup_lines(d, mark)], log_since(d, mark))
    left = os.listdir(tmp)
    C.check("-bs: no private queue folder left behind in $TMPDIR", not left,
            left)


# ----------------------------------------------------------------- burst
def t_burst(d):
    section("a burst of sendmail processes at once (root and a user)")
    subj = "burst %d"
    n = 40
    procs = []
    for i in range(n):
        cmd = [SM, "-C", d.conf_path, "-i", "burst@localhost"]
        if i % 4 == 3:
            cmd = ["runuser", "-u", "smalts2", "--", SGID, "-C", d.conf_path,
                   "-i", "burst@localhost"]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE))
    for i, p in enumerate(procs):
        p.stdin.write(("Subject: %s\n\nmessage %d\n" % (subj % i, i))
                      .encode())
        p.stdin.close()
    rcs = [p.wait(60) for p in procs]
    errs = [p.stderr.read() for p in procs]
    C.check("burst: %d sendmail processes at once all exit 0" % n,
            rcs == [0] * n, [(rc, e) for rc, e in zip(rcs, errs) if rc][:3])
    H.wait_for(lambda: len(mbox_entries(box("burst"))) >= n, 30, 0.2)
    time.sleep(0.3)
    subjects = [m.get("Subject") for m, _ in mbox_entries(box("burst"))]
    want = [subj % i for i in range(n)]
    C.check("burst: every message delivered exactly once",
            sorted(subjects) == sorted(want),
            "missing %s, extra %s" % (sorted(set(want) - set(subjects))[:5],
                                      len(subjects) - len(set(subjects))))
    ids = [q for q, _, _ in pickup_lines(d)]
    C.check("burst: queue ids unique", len(ids) == len(set(ids)))

    # Without the setgid bit a user cannot write into maildrop/: 75,
    # with the reason, nothing half-written left behind.
    r = sm(["burst@localhost"], "Subject: plain\n\nb\n", d.conf_path,
           user="smalts2", exe=os.path.join(BASE, "bin", "sendmail-plain"))
    C.check("a user without the setgid bit: exit 75 (EX_TEMPFAIL), "
            "stderr names maildrop", r.returncode == 75 and
            "maildrop" in r.stderr, show(r))


# ------------------------------------------------- stopped, then running
def t_stopped():
    section("daemon stopped: queued in maildrop; delivered at start")
    d = daemon("stopped", start=False)
    # mailq before anything ever ran must not make the spool (as root,
    # it would be root's, and users could not drop mail into it).
    r = sm(["-bp"], "", d.conf_path)
    print("# mailq with no spool yet: %s" % show(r))
    subj = "while stopped (no spool yet)"
    r = sm(["stop1@localhost"], "Subject: %s\n\nbody\n" % subj, d.conf_path)
    C.check("stopped, no spool yet: exit 0 as root", r.returncode == 0,
            show(r))
    drop = d.list_dir("maildrop")
    C.check("stopped: one file in spool/maildrop, named by a queue id",
            len(drop) == 1 and re.fullmatch(QID, drop[0]), drop)
    if drop:
        data = read(d.spool_path("maildrop", drop[0]), "rb") or b""
        C.check("stopped: the maildrop file starts 'smalt-maildrop\\t1\\n'",
                data.startswith(b"smalt-maildrop\t1\n"), data[:200])
    st = os.stat(d.spool_path("maildrop"))
    C.check("stopped: sendmail made maildrop/ 1730 smalt:smaltdrop",
            stat.S_IMODE(st.st_mode) == 0o1730 and
            st.st_uid == pwd.getpwnam("smalt").pw_uid and
            st.st_gid == grp.getgrnam("smaltdrop").gr_gid,
            (oct(st.st_mode), st.st_uid, st.st_gid))
    # mailq lists what waits in maildrop/, as Postfix's mailq does: the
    # message is queued (sendmail said so), not gone.
    r = sm(["-bp"], "", d.conf_path)
    C.check("stopped: mailq does not say 'Mail queue is empty' while a "
            "message waits in maildrop/",
            r.returncode == 0 and "Mail queue is empty" not in r.stdout and
            re.search(r"^-- \d+ Kbytes in 1 Request\.$", r.stdout, re.M),
            show(r))
    time.sleep(0.3)
    C.check("stopped: nothing delivered yet", not os.path.exists(box("stop1")))
    d.start()
    wait_one("stopped -> started: the start-up scan", "stop1", subj)
    H.wait_for(lambda: not d.list_dir("maildrop"), 10)
    C.check("started: maildrop/ is empty again", not d.list_dir("maildrop"),
            d.list_dir("maildrop"))

    # Running: inotify takes it at once.
    subj = "while running"
    r = sm(["stop1@localhost"], "Subject: %s\n\nbody\n" % subj, d.conf_path)
    t = time.monotonic()
    got = wait_mbox(box("stop1"), subj, 1, 10)
    took = time.monotonic() - t
    C.check("running: delivered within 10 s (took %.2f s)" % took,
            r.returncode == 0 and len(got) == 1, show(r))

    # Stopped again, and a user who is not root sends: the spool is the
    # daemon's, maildrop/ writable through the group only.
    d.stop()
    subj = "while stopped (user)"
    r = sm(["stop2@localhost"], "Subject: %s\n\nbody\n" % subj, d.conf_path,
           user="smalts1")
    C.check("stopped: smalts1 (setgid smaltdrop copy): exit 0",
            r.returncode == 0, show(r))
    drop = d.list_dir("maildrop")
    C.check("stopped: smalts1's file in maildrop, owned by smalts1",
            len(drop) == 1 and
            os.stat(d.spool_path("maildrop", drop[0])).st_uid ==
            USERS["smalts1"].pw_uid, drop)
    r2 = subprocess.run(["runuser", "-u", "smalts1", "--", "ls",
                         d.spool_path("maildrop")], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    C.check("stopped: smalts1 cannot list maildrop/", r2.returncode != 0,
            r2.stdout)

    # newaliases with the daemon stopped: smaltd.pid is stale, and its
    # pid may belong to another process by now. That process must not
    # get a SIGHUP (its default action ends it); smaltd holds a lock on
    # the file while it runs, as smaltctl status knows.
    pidfile = d.spool_path("smaltd.pid")
    old_pid = read(pidfile)
    victim = subprocess.Popen(["sleep", "60"])
    try:
        write(pidfile, "%d\n" % victim.pid)
        r = sm([], "", None, exe=os.path.join(BASE, "bin", "newaliases"),
               env={"SMALT_CONF": d.conf_path})
        died = H.wait_for(lambda: victim.poll() is not None, 0.5)
        C.check("newaliases, daemon stopped, stale smaltd.pid naming another "
                "process: exit 0, that process not signalled",
                r.returncode == 0 and not died,
                "%s; the process %s" % (show(r), "was killed by signal %d" %
                                        -victim.returncode if died else
                                        "lives"))
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()
        if old_pid is not None:
            write(pidfile, old_pid)
    d.start()
    m, _ = wait_one("stopped -> started (user)", "stop2", subj)
    if m is not None:
        C.check("stopped (user): Return-Path <smalts1@%s>" % HOST,
                rpath(m) == ["<smalts1@%s>" % HOST], rpath(m))
    return d


# ------------------------------------------------------------- mailq -bp
def mailq_outputs(conf):
    """(name, CompletedProcess) for sendmail -bp, mailq (argv[0]) with
    -C and with SMALT_CONF."""
    mq = os.path.join(BASE, "bin", "mailq")
    return [("sendmail -bp", sm(["-bp"], "", conf)),
            ("mailq -C", sm([], "", conf, exe=mq)),
            ("mailq SMALT_CONF", sm([], "", None, exe=mq,
                                    env={"SMALT_CONF": conf}))]


def parse_mailq(out):
    """[{id, held, size, date, sender, rcpts: [(address, reason)]}] and
    the summary line, from Postfix-layout mailq output."""
    entries, summary = [], None
    lines = out.split("\n")
    reason = None
    for ln in lines[1:]:
        mm = re.fullmatch(r"(%s)([*! ]?)\s+(\d+)\s+((?:%s) (?:%s) [ \d]\d "
                          r"\d\d:\d\d:\d\d)\s+(\S+)" % (QID, DAYS, MONTHS), ln)
        if mm:
            entries.append({"id": mm.group(1), "mark": mm.group(2),
                            "size": int(mm.group(3)), "date": mm.group(4),
                            "sender": mm.group(5), "rcpts": []})
            reason = None
        elif re.fullmatch(r" *\(.*\)", ln) and entries:
            reason = ln.strip()[1:-1]
        elif re.fullmatch(r" {8,}\S+", ln) and entries:
            entries[-1]["rcpts"].append((ln.strip(), reason))
            reason = None
        elif ln.startswith("-- "):
            summary = ln
    return entries, summary


def t_mailq():
    section("mailq / -bp with an empty queue and held mail; bare LF")
    d = daemon("held", delivery_concurrency=0)
    for name, r in mailq_outputs(d.conf_path):
        C.check("%s, empty queue: exactly 'Mail queue is empty'" % name,
                r.returncode == 0 and r.stdout == "Mail queue is empty\n",
                show(r))

    # A bare-LF message and a mixed one, held in the queue.
    mark = log_mark(d)
    r1 = sm(["held1@localhost", "held2@%s" % HOST],
            b"Subject: bare lf\n\nline 1\nline 2\n", d.conf_path)
    r2 = sm(["-f", "sender@example.org", "held3@localhost"],
            b"Subject: mixed\r\nX-A: 1\n\r\nbody 1\nbody 2\r\nbody 3\n",
            d.conf_path)
    C.check("held: both queued (exit 0)",
            r1.returncode == 0 and r2.returncode == 0, show(r1) + show(r2))
    H.wait_for(lambda: len(pickup_lines(d, mark)) >= 2 and
               d.count_incoming() >= 2, 10)
    picked = pickup_lines(d, mark)
    ids = [p[0] for p in picked]
    C.check("held: picked up, two queue ids in incoming/",
            len(ids) == 2 and sorted(ids) == d.incoming_ids(),
            (picked, d.incoming_ids()))
    for qid, what in zip(ids, ("bare LF", "mixed CRLF/LF")):
        try:
            data = d.read_msg(qid)
        except OSError as e:
            C.error("held %s: msg/ file" % what, e)
            continue
        C.check("held %s: every line of the queued msg/ file ends in "
                "CR LF" % what, data.endswith(b"\r\n") and
                not re.search(rb"(?<!\r)\n", data) and
                b"\r\r" not in data, data)
    if len(ids) == 2:
        C.check("held bare LF: queued body is 'line 1\\r\\nline 2\\r\\n'",
                d.read_msg(ids[0]).endswith(b"\r\n\r\nline 1\r\nline 2\r\n"),
                d.read_msg(ids[0])[-80:])
        C.check("held mixed: queued body is CR LF throughout",
                d.read_msg(ids[1]).endswith(
                    b"\r\n\r\nbody 1\r\nbody 2\r\nbody 3\r\n"),
                d.read_msg(ids[1])[-80:])
    sizes = {}
    for qid in ids:
        try:
            sizes[qid] = os.path.getsize(d.spool_path("msg", qid))
        except OSError:
            pass

    for name, r in mailq_outputs(d.conf_path):
        out = r.stdout
        lines = out.split("\n")
        C.check("%s: exit 0, first line is the Postfix header" % name,
                r.returncode == 0 and lines[0] == MAILQ_HEADER, show(r))
        entries, summary = parse_mailq(out)
        byid = {e["id"]: e for e in entries}
        C.check("%s: both messages listed, nothing else" % name,
                sorted(byid) == sorted(ids) and len(entries) == 2, out)
        if len(ids) == 2 and sorted(byid) == sorted(ids):
            e1, e2 = byid[ids[0]], byid[ids[1]]
            C.check("%s: sizes are the queued message sizes" % name,
                    e1["size"] == sizes.get(ids[0]) and
                    e2["size"] == sizes.get(ids[1]),
                    (e1["size"], e2["size"], sizes))
            C.check("%s: senders" % name,
                    e1["sender"] == "root@%s" % HOST and
                    e2["sender"] == "sender@example.org", out)
            C.check("%s: recipients indented below their message" % name,
                    [a for a, _ in e1["rcpts"]] ==
                    ["held1@localhost", "held2@%s" % HOST] and
                    [a for a, _ in e2["rcpts"]] == ["held3@localhost"], out)
            days = [time.localtime(time.time() - k) for k in (0, 600)]
            C.check("%s: arrival time is the local time now" % name,
                    any(e1["date"].startswith(time.strftime("%a %b", t)) and
                        int(e1["date"].split()[2]) == t.tm_mday and
                        abs(int(e1["date"].split()[3][:2]) - t.tm_hour)
                        in (0, 1, 23) for t in days), e1["date"])
            kb = (sum(sizes.values()) + 1023) // 1024
            C.check("%s: last line '-- %d Kbytes in 2 Requests.'" % (name, kb),
                    summary == "-- %d Kbytes in 2 Requests." % kb and
                    out.endswith(summary + "\n"), out[-200:])
        C.check("%s: a blank line after each message" % name,
                out.count("\n\n") == 2, out)
    # A user's mailq (the setgid smaltdrop copy), as with Postfix.
    r = sm(["-bp"], "", d.conf_path, user="smalts1")
    root_out = sm(["-bp"], "", d.conf_path).stdout
    if r.returncode == 0:
        C.check("mailq as smalts1: the same listing as root's",
                r.stdout == root_out, show(r))
    else:
        C.check("mailq as smalts1: refused with 77 (EX_NOPERM) and a reason, "
                "not 75 (try again later)",
                r.returncode == 77 and r.stderr.strip(), show(r))
    time.sleep(0.5)
    C.check("held: delivery_concurrency=0 delivered nothing",
            not os.path.exists(box("held1")) and d.count_incoming() == 2)
    return d


# ---------------------------------------------- deferred mail and -q
def t_deferred_flush():
    section("deferred reason in mailq; routes fixed, SIGHUP, sendmail -q")
    routes = write(os.path.join(BASE, "routes.retry"),
                   "tempfail.example  pipe:/bin/sh -c \"exit 75\"\n")
    d = daemon("retry", routes=routes, retry_min="1h", retry_max="2h")
    mark = log_mark(d)
    subj = "deferred then flushed"
    r = sm(["-f", "someone@example.org", "rcpt@tempfail.example"],
           "Subject: %s\n\nbody\n" % subj, d.conf_path)
    C.check("deferred: exit 0", r.returncode == 0, show(r))
    H.wait_for(lambda: re.search(r"to=<rcpt@tempfail\.example>.*"
                                 r"status=deferred", log_since(d, mark)), 15)
    ids = [p[0] for p in pickup_lines(d, mark)]
    qid = ids[0] if ids else "X"
    C.check("deferred: the pipe exiting 75 defers it (log status=deferred)",
            re.search(r"%s: to=<rcpt@tempfail\.example>.*status=deferred"
                      % qid, d.log()), log_since(d, mark)[-1500:])
    # The envelope moves to deferred/ first, then gets its new content:
    # wait for the reason.
    def deferred_reason():
        try:
            e = d.read_env(qid, "deferred")
        except OSError:
            return False
        return e["complete"] and e["rcpts"] and e["rcpts"][0]["reason"]
    H.wait_for(deferred_reason, 10)
    for name, r in mailq_outputs(d.conf_path)[:2]:
        entries, summary = parse_mailq(r.stdout)
        e = entries[0] if entries else {"rcpts": [], "id": None}
        C.check("%s: the deferred message with its reason in parentheses "
                "on the line before the recipient" % name,
                r.returncode == 0 and e["id"] == qid and
                len(e["rcpts"]) == 1 and
                e["rcpts"][0][0] == "rcpt@tempfail.example" and
                e["rcpts"][0][1] and
                re.search(r"^ *\(.+\)\n {8,}rcpt@tempfail\.example\n",
                          r.stdout, re.M), r.stdout)
        C.check("%s: '-- N Kbytes in 1 Request.'" % name,
                summary is not None and
                re.fullmatch(r"-- \d+ Kbytes in 1 Request\.", summary),
                summary)

    # Fix the route; reload; the retry is an hour away until -q.
    out = os.path.join(BASE, "pipeout")
    write(routes, "tempfail.example  pipe:%s %s %%r\n" %
          (os.path.join(BASE, "bin", "catto.sh"), out))
    nreload = len(re.findall("reloaded configuration", d.log()))
    os.kill(d.pid, 1)
    C.check("-q: SIGHUP reload logged",
            d.wait_log("reloaded configuration", 10, nreload + 1))
    time.sleep(0.5)  # the qmgr takes its SIGHUP beside smtpd
    target = os.path.join(out, "rcpt@tempfail.example")
    C.check("-q: not retried by the reload alone (retry_min 1h)",
            not os.path.exists(target) and qid in d.list_dir("deferred"),
            d.list_dir("deferred"))
    mark = log_mark(d)
    r = sm(["-q"], "", d.conf_path)
    t = time.monotonic()
    C.check("sendmail -q: exit 0", r.returncode == 0, show(r))
    ok = H.wait_for(lambda: re.search(r"%s: to=<rcpt@tempfail\.example>, "
                                      r"relay=pipe.*status=sent" % qid,
                                      log_since(d, mark)), 10)
    C.check("sendmail -q: delivered now through the fixed route (took "
            "%.2f s)" % (time.monotonic() - t), ok,
            log_since(d, mark)[-1500:])
    C.check("sendmail -q: the pipe got the message",
            H.wait_for(lambda: subj.encode() in (read(target, "rb") or b""),
                       5), read(target, "rb"))
    H.wait_for(lambda: removed(d, qid), 10)
    r = sm(["-bp"], "", d.conf_path)
    C.check("after -q: mailq says 'Mail queue is empty'",
            r.stdout == "Mail queue is empty\n", show(r))
    return d


# ----------------------------------------------------- newaliases / -bi
def smtp_rcpt(d, rcpt):
    with smtplib.SMTP("127.0.0.1", d.port, "client.example", 20) as s:
        s.ehlo()
        s.mail("someone@example.org")
        code, _ = s.rcpt(rcpt)
        s.rset()
        return code


def t_newaliases(d, aliases):
    section("newaliases / -bi with a running daemon")
    conf = d.conf_path
    C.check("newaliases: before, smtpd refuses newalias@localhost (550)",
            smtp_rcpt(d, "newalias@localhost") == 550)
    write(aliases, "# test aliases\nold1: alias1\nnewalias: alias2\n")
    nreload = len(re.findall("reloaded configuration", d.log()))
    na = os.path.join(BASE, "bin", "newaliases")
    r = sm([], "", None, exe=na, env={"SMALT_CONF": conf})
    C.check("newaliases (argv[0]): exit 0", r.returncode == 0, show(r))
    C.check("newaliases: the running daemon reloads",
            d.wait_log("reloaded configuration", 10, nreload + 1),
            d.log()[-800:])
    subj = "to the new alias"
    r = sm(["newalias@localhost"], "Subject: %s\n\nbody\n" % subj, conf)
    C.check("newaliases: mail to the new alias accepted (exit 0)",
            r.returncode == 0, show(r))
    m, _ = wait_one("newaliases: the new alias", "alias2", subj)
    if m is not None:
        C.check("newaliases: Delivered-To names the alias target",
                "alias2" in (m.get("Delivered-To") or "") or
                "newalias" in (m.get("Delivered-To") or ""),
                m.get_all("Delivered-To"))
    C.check("newaliases: smtpd now takes newalias@localhost (250)",
            smtp_rcpt(d, "newalias@localhost") == 250)

    write(aliases, "old1: alias1\nnewalias: alias2\nthird: alias1\n")
    nreload = len(re.findall("reloaded configuration", d.log()))
    r = sm(["-bi"], "", conf)
    C.check("sendmail -bi: exit 0", r.returncode == 0, show(r))
    C.check("sendmail -bi: the daemon reloads",
            d.wait_log("reloaded configuration", 10, nreload + 1))
    subj = "to the third alias"
    sm(["third@localhost"], "Subject: %s\n\nbody\n" % subj, conf)
    wait_one("-bi: the third alias", "alias1", subj)

    good = read(aliases)
    write(aliases, "old1: alias1\nbroken: |\nthird: alias1\n")
    nreload = len(re.findall("reloaded configuration", d.log()))
    r = sm([], "", None, exe=na, env={"SMALT_CONF": conf})
    C.check("newaliases, bad aliases file: exit 78, stderr names file:2",
            r.returncode == 78 and "%s:2" % aliases in r.stderr, show(r))
    r = sm(["-bi"], "", conf)
    C.check("sendmail -bi, bad aliases file: exit 78, file:2 on stderr",
            r.returncode == 78 and "%s:2" % aliases in r.stderr, show(r))
    write(aliases, good)
    subj = "after the bad aliases"
    sm(["newalias@localhost"], "Subject: %s\n\nbody\n" % subj, conf)
    wait_one("bad newaliases: the daemon still delivers the alias",
             "alias2", subj)
    C.check("bad newaliases: the daemon was not told to reload",
            len(re.findall("reloaded configuration", d.log())) == nreload)


# ----------------------------------------------------------------- trust
def t_trust(d):
    section("trusted and untrusted senders (§9)")
    conf = d.conf_path
    uid1 = USERS["smalts1"].pw_uid
    warn_rx = r"%s: smalts1 set sender to %s using -f"

    subj = "root -f"
    mark = log_mark(d)
    r = sm(["-f", "boss@example.org", "rootf@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf)
    m, _ = wait_one("root -f", "rootf", subj)
    if m is not None:
        C.check("root -f: taken silently (no X-Authentication-Warning)",
                m.get_all("X-Authentication-Warning") is None and
                rpath(m) == ["<boss@example.org>"], m.items())
    C.check("root -f: pickup log uid=0 from=<boss@example.org>",
            ("0", "boss@example.org") in
            [(u, s) for _, u, s in pickup_lines(d, mark)],
            log_since(d, mark))

    for flag, b in (("-f", "userf"), ("-r", "userr")):
        subj = "user %s" % flag
        mark = log_mark(d)
        r = sm([flag, "ceo@bank.example", "%s@localhost" % b],
               "Subject: %s\n\nbody\n" % subj, conf, user="smalts1")
        C.check("smalts1 %s: exit 0" % flag, r.returncode == 0, show(r))
        m, _ = wait_one("smalts1 %s" % flag, b, subj)
        if m is None:
            continue
        C.check("smalts1 %s: the envelope sender is still set" % flag,
                rpath(m) == ["<ceo@bank.example>"], rpath(m))
        w = m.get_all("X-Authentication-Warning") or []
        C.check("smalts1 %s: X-Authentication-Warning: %s: smalts1 set "
                "sender to ceo@bank.example using -f" % (flag, HOST),
                len(w) == 1 and re.fullmatch(warn_rx % (re.escape(HOST),
                                                        r"ceo@bank\.example"),
                                             w[0].strip()), w)
        C.check("smalts1 %s: pickup log names uid=%d" % (flag, uid1),
                (str(uid1), "ceo@bank.example") in
                [(u, s) for _, u, s in pickup_lines(d, mark)],
                log_since(d, mark))

    subj = "user no -f"
    mark = log_mark(d)
    r = sm(["usernof@localhost"], "Subject: %s\n\nbody\n" % subj, conf,
           user="smalts1")
    C.check("smalts1 without -f: exit 0", r.returncode == 0, show(r))
    m, _ = wait_one("smalts1 without -f", "usernof", subj)
    if m is not None:
        C.check("smalts1 without -f: sender smalts1@%s (Return-Path, From)"
                % HOST, rpath(m) == ["<smalts1@%s>" % HOST] and
                addr(m.get("From")) == "smalts1@%s" % HOST,
                (rpath(m), m.get("From")))
        C.check("smalts1 without -f: no X-Authentication-Warning",
                m.get_all("X-Authentication-Warning") is None, m.items())
        C.check("smalts1 without -f: Received names userid %d" % uid1,
                "userid %d" % uid1 in (m.get("Received") or ""),
                m.get_all("Received"))
    C.check("smalts1 without -f: pickup log uid=%d" % uid1,
            (str(uid1), "smalts1@%s" % HOST) in
            [(u, s) for _, u, s in pickup_lines(d, mark)],
            log_since(d, mark))

    # A -F name or From: header a user writes is theirs to write; a
    # forged envelope sender with a CR LF must not add header fields.
    subj = "user -f with newline"
    r = sm(["-f", "x@example.org\r\nX-Injected: yes", "usernof@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf, user="smalts1")
    if r.returncode == 0:
        got = wait_mbox(box("usernof"), subj, 1, 10)
        C.check("smalts1 -f with CR LF inside: no header injected",
                got and got[0][0].get("X-Injected") is None,
                got and got[0][1][:600])
    else:
        C.check("smalts1 -f with CR LF inside: refused (exit 64/65)",
                r.returncode in (64, 65), show(r))

    # The null sender from a user: kept (bounces need it), but warned.
    subj = "user null sender"
    r = sm(["-f", "<>", "usernof@localhost"], "Subject: %s\n\nbody\n" % subj,
           conf, user="smalts1")
    m, _ = wait_one("smalts1 -f '<>'", "usernof", subj)
    if m is not None:
        C.check("smalts1 -f '<>': Return-Path <> and X-Authentication-Warning "
                "naming <>", rpath(m) == ["<>"] and
                [w.strip() for w in
                 m.get_all("X-Authentication-Warning") or []] ==
                ["%s: smalts1 set sender to <> using -f" % HOST], m.items())

    # The daemon's own user is trusted too.
    subj = "smalt -f"
    r = sm(["-f", "list-bounces@example.org", "smaltf@localhost"],
           "Subject: %s\n\nbody\n" % subj, conf, user="smalt")
    C.check("user smalt -f: exit 0", r.returncode == 0, show(r))
    m, _ = wait_one("user smalt -f", "smaltf", subj)
    if m is not None:
        C.check("user smalt -f: trusted (no warning, sender kept)",
                m.get_all("X-Authentication-Warning") is None and
                rpath(m) == ["<list-bounces@example.org>"], m.items())


# ------------------------------------------------------ hostile maildrop
def envelope_text(sender, rcpts, qid="0000000000000001"):
    """queue/envelope.c's text form, as sendmail writes it."""
    s = ("smalt-envelope\t1\nid\t%s\narrival\t0\nsize\t0\nsender\t%s\n"
         "attempts\t0\nwarned\t0\nuid\t-1\nclient\t\t\t\t\t\n" %
         (qid, sender))
    for r in rcpts:
        s += "rcpt\tpending\t0\t-\t%s\t\n" % r
    return s + "end\n"


def maildrop_bytes(sender, rcpts, msg):
    env = envelope_text(sender, rcpts).encode()
    return b"smalt-maildrop\t1\nenvelope\t%d\n" % len(env) + env + msg


class Dropper:
    """Puts files into maildrop/ the way an attacker in group smaltdrop
    (or a buggy program) could: written under a temporary name, then
    renamed to a queue-id name so that inotify sees it."""

    def __init__(self, d):
        self.d = d
        self.n = 0

    def name(self):
        self.n += 1
        return "%016X" % (0xDEAD000000000000 + self.n)

    def drop(self, make, owner=0):
        """make(tmp_path) creates the object; returns its final name."""
        name = self.name()
        tmp = self.d.spool_path("maildrop", "t.hostile.%d" % self.n)
        make(tmp)
        if owner:
            os.chown(tmp, owner, -1, follow_symlinks=False)
        os.rename(tmp, self.d.spool_path("maildrop", name))
        return name

    def drop_bytes(self, data, owner=0, mode=0o644):
        def make(p):
            write(p, data, mode)
        return self.drop(make, owner)


def quarantined(d, name, timeout=10.0):
    """Waits until maildrop/NAME is in corrupt/ (gone from maildrop/) and
    the log says so with a reason (its wording is the daemon's). The log
    line comes before the rename: wait for both."""
    rx = re.compile(r"%s: moved maildrop/%s to corrupt/: \S" % (name, name))
    return H.wait_for(lambda: rx.search(d.log()) and
                      os.path.lexists(d.spool_path("corrupt", name)) and
                      not os.path.lexists(d.spool_path("maildrop", name)),
                      timeout)


def t_hostile():
    section("hostile maildrop files")
    d = daemon("hostile", max_message_size="64k")
    dr = Dropper(d)
    uid1 = USERS["smalts1"].pw_uid
    good_msg = b"Subject: %s\r\n\r\nbody\r\n"
    outside = os.path.join(BASE, "outside")
    mkdir(outside)

    # Found by the start-up scan (the daemon was down), and by root's
    # mailq meanwhile, which reads maildrop/ too.
    d.stop()
    early = [("garbage", dr.drop_bytes(b"\x00\xff garbage " * 50)),
             ("FIFO", dr.drop(lambda p: os.mkfifo(p, 0o644))),
             ("symlink", dr.drop(lambda p: os.symlink("/etc/passwd", p))),
             ("unknown request", dr.drop_bytes(
                 b"smalt-maildrop\t1\nrequest\treboot\n"))]

    def sparse(p):
        with open(p, "wb") as f:
            f.write(b"smalt-maildrop\t1\n")
            f.truncate(40 * 1024 * 1024)
    early.append(("huge sparse file", dr.drop(sparse)))
    t = time.monotonic()
    r = sm(["-bp"], "", d.conf_path, timeout=30)
    C.check("hostile, daemon down: root's mailq copes (exit 0, in %.1f s)"
            % (time.monotonic() - t), r.returncode == 0, show(r))
    d.start()
    for what, name in early:
        C.check("hostile at start-up, %s: moved to corrupt/ by the start-up "
                "scan" % what, quarantined(d, name),
                re.findall(r"^.*%s.*$" % name, d.log(), re.M))
    # A file that would be a trusted (root-owned) message with a forged
    # sender: what a symlink or a second link would smuggle in.
    evil = maildrop_bytes("ceo@bank.example", ["hostbox@localhost"],
                          good_msg % b"smuggled")

    cases = []

    def case(what, name, why):
        """why: the reason this version gives (shown, not required)."""
        cases.append((what, name, why))

    case("truncated", dr.drop_bytes(b"smalt-maildrop\t1\nenvel"),
         "truncated")
    case("truncated envelope", dr.drop_bytes(
        maildrop_bytes("a@example.org", ["hostbox@localhost"],
                       b"")[:60]), "")
    case("garbage", dr.drop_bytes(os.urandom(3000)), "not a maildrop file")
    case("empty", dr.drop_bytes(b""), "not a maildrop file")
    case("wrong magic", dr.drop_bytes(b"smalt-maildrop\t2\n" + evil[17:]),
         "not a maildrop file")
    big_len = evil.replace(b"envelope\t%d\n" % len(envelope_text(
        "ceo@bank.example", ["hostbox@localhost"])), b"envelope\t99999\n")
    case("envelope length beyond the file", dr.drop_bytes(big_len),
         "bad envelope length")
    huge_len = evil.replace(b"envelope\t%d\n" % len(envelope_text(
        "ceo@bank.example", ["hostbox@localhost"])),
        b"envelope\t99999999999999999999999999\n")
    case("envelope length overflowing", dr.drop_bytes(huge_len),
         "bad envelope length")
    case("no recipients", dr.drop_bytes(maildrop_bytes(
        "a@example.org", [], good_msg % b"x")), "")
    case("bad recipient address", dr.drop_bytes(maildrop_bytes(
        "a@example.org", ["not an address"], good_msg % b"x")), "")
    case("unknown request", dr.drop_bytes(
        b"smalt-maildrop\t1\nrequest\tdestroy\n"), "unknown request")
    case("request with trailing data", dr.drop_bytes(
        b"smalt-maildrop\t1\nrequest\tflush\nmore\n"), "unknown request")
    # Bigger than max_message_size (64k), otherwise well-formed.
    case("message bigger than max_message_size", dr.drop_bytes(
        maildrop_bytes("a@example.org", ["hostbox@localhost"],
                       b"Subject: big\r\n\r\n" + b"x" * 78 + b"\r\n" * 1)
        + (b"y" * 78 + b"\r\n") * 1200), "")

    case("huge sparse file (40 MiB)", dr.drop(sparse), "")

    evil_path = write(os.path.join(outside, "evil"), evil)
    case("symlink to a good-looking file",
         dr.drop(lambda p: os.symlink(evil_path, p)), "")
    case("dangling symlink",
         dr.drop(lambda p: os.symlink("/nonexistent/x", p)), "")
    case("FIFO", dr.drop(lambda p: os.mkfifo(p, 0o644)), "")
    # A directory (root's own, mode 0755) cannot be renamed by the
    # daemon's user: refused and left where it is.
    dirname = dr.drop(lambda p: os.mkdir(p))

    def hardlink(p):
        write(p, evil)
        os.link(p, os.path.join(outside, "second-link"))
    case("two hard links", dr.drop(hardlink), "more than one link")

    # Forged sender in a file owned by an untrusted user: kept, warned.
    forged = dr.drop_bytes(maildrop_bytes(
        "ceo@bank.example", ["hostbox@localhost"],
        good_msg % b"forged owner"), owner=uid1)
    noname = dr.drop_bytes(maildrop_bytes(
        "ceo@bank.example", ["hostbox@localhost"],
        good_msg % b"forged unnamed owner"), owner=54321)

    for what, name, why in cases:
        C.check("hostile %s: moved to corrupt/ with a log line" % what,
                quarantined(d, name),
                "expected a reason like %r; log: %s; corrupt: %s" % (
                    why, re.findall(r"^.*%s.*$" % name, d.log(), re.M),
                    d.list_dir("corrupt")))
    C.check("hostile directory: refused (moved to corrupt/ or left in "
            "maildrop/), logged",
            d.wait_log(r"%s: .*maildrop/%s" % (dirname, dirname), 10) and
            (os.path.isdir(d.spool_path("corrupt", dirname)) or
             os.path.isdir(d.spool_path("maildrop", dirname))),
            re.findall(r"^.*%s.*$" % dirname, d.log(), re.M))
    if os.path.isdir(d.spool_path("maildrop", dirname)):
        said = re.findall(r"^.*%s.*$" % dirname, d.log(), re.M)
        print("# NOTE: the directory is still in maildrop/ although the log "
              "says: %s" % said)
        os.rmdir(d.spool_path("maildrop", dirname))
    C.check("hostile: the symlink's target is untouched",
            read(evil_path, "rb") == evil)
    C.check("hostile: the second hard link is untouched",
            read(os.path.join(outside, "second-link"), "rb") == evil)

    m, _ = wait_one("hostile forged sender (owner smalts1)", "hostbox",
                    "forged owner")
    if m is not None:
        C.check("hostile forged sender: X-Authentication-Warning: %s: "
                "smalts1 set sender to ceo@bank.example using -f" % HOST,
                [w.strip() for w in
                 m.get_all("X-Authentication-Warning") or []] ==
                ["%s: smalts1 set sender to ceo@bank.example using -f"
                 % HOST], m.items())
        C.check("hostile forged sender: pickup log uid=%d" % uid1,
                re.search(r"smalt/pickup\[\d+\]: %s: uid=%d "
                          r"from=<ceo@bank\.example>" % (QID, uid1),
                          d.log()), d.log()[-1000:])
    m, _ = wait_one("hostile forged sender (owner uid 54321, no name)",
                    "hostbox", "forged unnamed owner")
    if m is not None:
        C.check("hostile forged sender, unnamed uid: warned, log uid=54321",
                len(m.get_all("X-Authentication-Warning") or []) == 1 and
                re.search(r"uid=54321 from=<ceo@bank\.example>", d.log()),
                m.items())
    C.check("hostile: forged files left maildrop/",
            not os.path.lexists(d.spool_path("maildrop", forged)) and
            not os.path.lexists(d.spool_path("maildrop", noname)))

    # sendmail itself refuses a message over max_message_size.
    r = sm(["hostbox@localhost"], b"Subject: too big\n\n" +
           (b"z" * 99 + b"\n") * 800, d.conf_path)
    C.check("sendmail: a message over max_message_size is refused "
            "(non-zero exit, reason on stderr)",
            r.returncode not in (0, 75) and "max_message_size" in r.stderr,
            show(r))

    subj = "good after hostile"
    r = sm(["good@localhost"], "Subject: %s\n\nbody\n" % subj, d.conf_path)
    wait_one("hostile: a good message afterwards", "good", subj)
    C.check("hostile: nothing smuggled was delivered",
            not with_subject(mbox_entries(box("hostbox")), "smuggled") and
            not with_subject(mbox_entries(box("hostbox")), "big"))
    C.check("hostile: the daemon is still running, no child died",
            d.alive() and no_crash(d), d.log()[-2000:])
    left = d.list_dir("maildrop")
    C.check("hostile: maildrop/ is empty", not left, left)
    # A restart's start-up scan finds nothing more to complain about.
    d.stop()
    mark = log_mark(d)
    d.start()
    subj = "good after restart"
    sm(["good@localhost"], "Subject: %s\n\nbody\n" % subj, d.conf_path)
    wait_one("hostile: after a restart", "good", subj)
    C.check("hostile: the restart quarantined nothing more",
            "moved maildrop/" not in log_since(d, mark),
            log_since(d, mark)[-1000:])
    return d


# ------------------------------------------------------------------ main
def main():
    global BASE, SM
    if not H.SMALT_BUILD:
        print("SMALT_BUILD must name the build directory")
        return 2
    if not ROOT:
        skip("test_sendmail needs root (test users, a setgid copy, "
             "runuser)")
        return 77
    SM = os.path.join(H.SMALT_BUILD, "cli", "sendmail")
    if not os.access(SM, os.X_OK):
        print("no sendmail in the build tree: %s" % SM)
        return 1
    BASE = H.make_tmp_base("smalt-sendmail.")
    run("setup", setup)
    aliases = write(os.path.join(BASE, "aliases"), "old1: alias1\n")
    main_d = run("main daemon", lambda: daemon("main", aliases=aliases))
    if main_d is not None:
        run("invocations", t_invocations, main_d)
        run("headers", t_headers, main_d)
        run("exit codes", t_exit_codes, main_d)
        run("-bs", t_bs, main_d)
        run("newaliases", t_newaliases, main_d, aliases)
        run("trust", t_trust, main_d)
    if main_d is not None:
        run("burst", t_burst, main_d)
    run("stopped", t_stopped)
    run("mailq", t_mailq)
    run("deferred and -q", t_deferred_flush)
    run("hostile", t_hostile)

    section("shutdown")
    H.check_stop_all(C, ALL_DAEMONS)
    san = []
    for d in ALL_DAEMONS:
        if not no_crash(d):
            log = d.log()
            m = re.search(CRASH_RX, log)
            san.append((os.path.basename(d.dir),
                        log[max(0, m.start() - 300):m.start() + 1000]))
    C.check("no child died and no sanitizer report in any daemon log",
            not san, san[:2])
    return H.finish_run(C, T0)


if __name__ == "__main__":
    sys.exit(main())
