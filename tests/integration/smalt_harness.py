"""Helpers for smalt's Python integration tests (stdlib only).

- Daemon: runs the smaltd of the build tree (SMALT_BUILD) in the
  foreground (-d) on a loopback high port with a temporary spool and a
  generated config, its log (log = stderr) captured to a file; start, wait,
  stop, kill, and look at the spool (incoming/ envelopes, msg/ files).
- Client: a raw-socket SMTP client that reads whole (multi-line) replies
  with timeouts, for what smtplib cannot do (pipelining, bad input,
  half-closes).
- Checker: counts passes and failures, one line per check, and prints the
  final "N passed, N failed" line.
- Helpers several scripts share: files and folders with a mode and an
  owner, mbox files, a test CA and certificates (openssl), Postfix's
  smtp-sink, a python3 with aiosmtpd, a scripted server's DATA, and the
  end-of-run checks (SIGTERM exits 0, sanitizer reports).

Every daemon started here is SIGKILLed at exit if still running.
"""

import atexit
import mailbox
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

SMALT_BUILD = os.environ.get("SMALT_BUILD")
SMALT_SRC = os.environ.get("SMALT_SRC")
HOSTNAME = "mx.smalt-test.example"

_daemons = []
_tmp_bases = []


def smaltd_path():
    if not SMALT_BUILD:
        sys.stderr.write("SMALT_BUILD must name the build directory\n")
        sys.exit(2)
    return os.path.join(SMALT_BUILD, "cli", "smaltd")


def make_tmp_base(prefix="smalt-pyit."):
    """A temp dir the unprivileged daemon user can traverse (0755)."""
    base = tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("TMPDIR", "/tmp"))
    os.chmod(base, 0o755)
    _tmp_bases.append(base)
    return base


def keep_or_remove_tmp(keep):
    """Removes the temp bases made here, unless keep (then names them)."""
    for base in _tmp_bases:
        if keep:
            print("kept %s" % base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    del _tmp_bases[:]


def finish_run(checker, t0=None):
    """The end of a script's main(): "# took N s" since t0 (a
    time.monotonic(), when given), the final "N passed, N failed" line,
    and the temp bases removed unless a check failed. Returns the exit
    code."""
    if t0 is not None:
        print("# took %.1f s" % (time.monotonic() - t0))
    rc = checker.finish()
    keep_or_remove_tmp(rc != 0)
    return rc


_used_ports = set()


def free_port():
    """A free TCP port on 127.0.0.1, random and high, below the usual
    ephemeral range (so client sockets never take it meanwhile)."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        if port in _used_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise RuntimeError("no free port found")


def wait_for(pred, timeout=10.0, interval=0.05):
    """Polls pred() until it is true or the deadline passes; returns its
    last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _kill_all():
    for d in list(_daemons):
        d.kill()


atexit.register(_kill_all)


def _on_term(signum, frame):
    # ctest's timeout sends SIGTERM: exit through atexit so that the
    # daemons started here do not outlive the test.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


class Daemon:
    """One smaltd with its own config, spool and log under base/name."""

    def __init__(self, base, name, aliases="/dev/null", port=None, **extra):
        self.dir = os.path.join(base, name)
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        self.spool = os.path.join(self.dir, "spool")
        self.conf_path = os.path.join(self.dir, "smalt.conf")
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.stopped_by_term = False
        self.log_offset_at_start = 0
        conf = {
            "hostname": HOSTNAME,
            # No outside DNS: a dead local port fails fast; 127.0.0.1's
            # name still comes from /etc/hosts.
            "resolver": "127.0.0.1:%d" % free_port(),
            "listen": "127.0.0.1:%d" % self.port,
            "spool_dir": self.spool,
            "log": "stderr",
            "aliases": aliases,
        }
        conf.update({k: str(v) for k, v in extra.items()})
        self.conf = conf
        self.write_conf()

    def write_conf(self):
        """Writes self.conf to the config file (0644)."""
        with open(self.conf_path, "w") as f:
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf_path, 0o644)

    # -- life cycle

    def spawn(self):
        """Starts smaltd -d -f CONF, its output appended to the log, and
        returns at once (start() then waits for it to serve)."""
        self.stopped_by_term = False
        logf = open(self.log_path, "ab")
        self.log_offset_at_start = logf.tell()
        self.proc = subprocess.Popen(
            [smaltd_path(), "-d", "-f", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            close_fds=True)
        logf.close()
        _daemons.append(self)
        return self

    def start(self, timeout=20.0):
        """Starts smaltd -d -f CONF and waits until it listens. Raises
        RuntimeError (with the log) when it does not come up."""
        self.spawn()
        ok = wait_for(lambda: self.proc.poll() is not None or
                      "daemon started" in self.log_since_start(), timeout)
        if self.proc.poll() is not None or not ok:
            self.kill()
            raise RuntimeError("smaltd did not start (exit %s):\n%s" %
                               (self.proc.returncode, self.log()))
        # The listener is bound before "daemon started" is logged; make
        # sure the port takes connections without opening a session.
        if not wait_for(self._port_listening, timeout):
            self.kill()
            raise RuntimeError("smaltd does not listen on %d:\n%s" %
                               (self.port, self.log()))
        return self

    def _port_listening(self):
        try:
            with open("/proc/net/tcp") as f:
                lines = f.readlines()[1:]
        except OSError:
            return True  # no procfs: trust the log line
        want = ":%04X" % self.port
        for line in lines:
            fields = line.split()
            # local address 0100007F:PORT, state 0A = LISTEN
            if fields[1].endswith(want) and fields[3] == "0A":
                return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=15.0):
        """SIGTERM, then SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.stopped_by_term = True
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _daemons:
            _daemons.remove(self)
        return self.proc.returncode

    def kill(self):
        """SIGKILL now (no clean-up by the daemon)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()
        if self in _daemons:
            _daemons.remove(self)
        return self.proc.returncode

    # -- the log

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_since_start(self):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset_at_start)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Waits until regex pattern matches count times in the log."""
        rx = re.compile(pattern, re.M)
        return wait_for(lambda: len(rx.findall(self.log())) >= count,
                        timeout)

    # -- the spool

    def spool_path(self, *parts):
        return os.path.join(self.spool, *parts)

    def list_dir(self, d):
        try:
            return sorted(n for n in os.listdir(self.spool_path(d)))
        except FileNotFoundError:
            return []

    def incoming_ids(self):
        return self.list_dir("incoming")

    def count_incoming(self):
        return len(self.incoming_ids())

    def read_msg(self, qid):
        with open(self.spool_path("msg", qid), "rb") as f:
            return f.read()

    def read_env(self, qid, d="incoming"):
        with open(self.spool_path(d, qid), "rb") as f:
            return parse_envelope(f.read().decode("utf-8", "replace"))

    def wait_incoming(self, n, timeout=10.0):
        return wait_for(lambda: self.count_incoming() >= n, timeout)


def parse_envelope(text):
    """Parses queue/envelope.c's format: a magic line, then records of
    tab-separated fields, one per line, ending with "end". Returns a dict
    with the header fields, "rcpts" (a list of dicts) and "complete"."""
    env = {"rcpts": [], "complete": False, "magic": None}
    lines = text.split("\n")
    if lines:
        env["magic"] = lines[0]
    for line in lines[1:]:
        if line == "end":
            env["complete"] = True
            break
        f = line.split("\t")
        key = f[0]
        if key == "rcpt" and len(f) >= 5:
            env["rcpts"].append({"state": f[1], "next_attempt": f[2],
                                 "dsn": f[3], "address": f[4],
                                 "reason": f[5] if len(f) > 5 else ""})
        elif key == "client" and len(f) >= 5:
            env["client_name"], env["client_addr"], env["helo"], \
                env["protocol"] = f[1:5]
            env["auth_user"] = f[5] if len(f) > 5 else ""
        elif len(f) >= 2:
            env[key] = f[1]
    return env


def split_received(msg):
    """Splits a stored message (bytes) into its first header field (with
    continuation lines) and the rest."""
    i = msg.find(b"\r\n")
    while i >= 0 and msg[i + 2:i + 3] in (b" ", b"\t"):
        i = msg.find(b"\r\n", i + 2)
    if i < 0:
        return msg, b""
    return msg[:i + 2], msg[i + 2:]


class Reply:
    def __init__(self, lines):
        self.lines = lines                      # without CR LF
        self.code = int(lines[-1][:3]) if lines and \
            lines[-1][:3].isdigit() else None
        self.text = "\n".join(lines)

    def __repr__(self):
        return "Reply(%r)" % (self.text,)


class Closed(Exception):
    pass


class Client:
    """A raw SMTP client over a TCP socket, reading replies as lines.
    Every reply any Client reads is also kept in Client.all_replies."""

    all_replies = []

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None,
                 greeting=True):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout,
                                             source_address=source)
        self.buf = b""
        self.eof = False
        self.greeting = self.read_reply() if greeting else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def cmd(self, line, timeout=None):
        """Sends one command line (CR LF added) and reads its reply."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply(timeout)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("no reply in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed("connection closed by the server")
        self.buf += chunk

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            if self.eof:
                raise Closed("connection closed by the server")
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("latin-1")

    def read_reply(self, timeout=None):
        """One whole reply: lines "DDD-text" up to "DDD text"."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            line = self.read_line(max(0.01, deadline - time.monotonic()))
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                r = Reply(lines)
                Client.all_replies.append(r)
                return r

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def read_all_replies(self, timeout=None):
        """Replies until the server closes (or the timeout)."""
        out = []
        try:
            while True:
                out.append(self.read_reply(timeout))
        except (Closed, socket.timeout, OSError):
            pass
        return out

    def wait_closed(self, timeout=10.0):
        """True when the server closes the connection within timeout
        (data arriving meanwhile is discarded)."""
        deadline = time.monotonic() + timeout
        if self.eof:
            return True
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, OSError):
                self.eof = True
                return True
            if not chunk:
                self.eof = True
                return True
            self.buf += chunk
        return False

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Checker:
    """Counts checks; prints "ok - NAME" or "FAIL - NAME: detail"."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.t0 = time.monotonic()

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            msg = "FAIL - %s" % name
            if detail:
                d = str(detail)
                if len(d) > 2000:
                    d = d[:2000] + "...(cut)"
                msg += ": " + d
            print(msg, flush=True)
        return bool(cond)

    def error(self, name, exc):
        """A section that raised: one failed check naming the exception."""
        return self.check(name, False, "%s: %s" % (type(exc).__name__, exc))

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1

    # Sections of a test script: a title, a skip note, and a runner for
    # which an exception is one failed check, not the end of the script.
    def section(self, title):
        print("# %s (at %.1f s)" % (title, time.monotonic() - self.t0),
              flush=True)

    def skip(self, what):
        print("SKIP - %s" % what, flush=True)

    def run(self, name, fn, *args):
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            self.error("%s: section ran to its end" % name, e)
            return None


# ---------------------------------------------------------------------
# Helpers added for test_deliver.py (nothing above depends on them).

def _proc_children():
    """{ppid: [pid, ...]} for every process in /proc."""
    kids = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parens.
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 2:
            continue
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def proc_state(pid):
    """The one-letter state of pid ("R", "S", "T", "Z"...), None when it
    is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return rest[0] if rest else None


def descendants(pid):
    """Every live descendant of pid (children, grandchildren...)."""
    kids = _proc_children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def kill_tree(pid, timeout=10.0):
    """SIGKILLs pid and all its descendants, wherever they are in their
    work, so that none survives to reparent or fork meanwhile: first
    SIGSTOP the whole tree (rescanning until no new process shows up),
    then SIGKILL every process of it. Returns the pids killed. Processes
    in other sessions or process groups (setsid children) are found
    through the parent links all the same."""
    stopped = []

    def stop(p):
        try:
            os.kill(p, signal.SIGSTOP)
        except ProcessLookupError:
            return
        stopped.append(p)

    def all_stopped():
        return all(proc_state(p) in (None, "T", "t", "Z", "X")
                   for p in stopped)

    # The tree as it is now, at once (then whatever forked meanwhile).
    stop(pid)
    for p in descendants(pid):
        stop(p)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # A process caught in fork() has its child show up only once it
        # has stopped: wait for that, then look for new ones.
        wait_for(all_stopped, 2.0, 0.01)
        kids = _proc_children()
        new = [c for p in stopped for c in kids.get(p, [])
               if c not in stopped]
        if not new:
            break
        for p in new:
            stop(p)
    for p in stopped:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: all(proc_state(p) in (None, "Z", "X") for p in stopped),
             timeout, 0.02)
    return stopped


def daemon_kill_all(d, timeout=10.0):
    """SIGKILLs a Daemon's master and every process under it (smtpd,
    qmgr, delivery agent, delivery children, commands) at once, reaps
    the master and forgets the daemon. Returns the pids killed."""
    if d.proc is None or d.proc.poll() is not None:
        return []
    pids = kill_tree(d.proc.pid, timeout)
    d.proc.wait()
    if d in _daemons:
        _daemons.remove(d)
    return pids


def procs_using(path):
    """Live processes whose cwd, root, executable or an open descriptor
    lies under path (zombies hold none)."""
    path = os.path.realpath(path).rstrip("/") + "/"
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        links = []
        for ln in ("cwd", "exe"):
            links.append("/proc/%s/%s" % (name, ln))
        try:
            links += ["/proc/%s/fd/%s" % (name, fd)
                      for fd in os.listdir("/proc/%s/fd" % name)]
        except OSError:
            pass
        for ln in links:
            try:
                target = os.readlink(ln)
            except OSError:
                continue
            if (target + "/").startswith(path):
                out.append(int(name))
                break
    return out


def daemon_set_conf(d, **changes):
    """Rewrites a Daemon's config file with some keys changed (a value
    of None removes the key: the built-in default applies). Takes effect
    at the next start, or at a reload."""
    for k, v in changes.items():
        if v is None:
            d.conf.pop(k, None)
        else:
            d.conf[k] = str(v)
    d.write_conf()


def daemon_start_nowait(d):
    """Starts a Daemon's smaltd as Daemon.start does, but returns at once
    without waiting for it to serve (for a test that must act within the
    first milliseconds, e.g. kill it while it delivers what was queued).
    The caller waits on the log itself."""
    return d.spawn()


# ---------------------------------------------------------------------
# Helpers shared by several test scripts (nothing above depends on them).

def _chown(path, owner):
    """Gives path to the user owner (and its group): only when owner is
    given and this runs as root."""
    if owner is not None and os.geteuid() == 0:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def make_dir(path, mode=0o755, owner=None):
    """Makes path (and its parents) with mode, owned by owner when given
    and running as root. Returns path."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    _chown(path, owner)
    return path


def write_file(path, text, mode=0o644, owner=None):
    """Writes text (str, or bytes as they are) to path with mode, owned
    by owner when given and running as root. Returns path."""
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.chmod(path, mode)
    _chown(path, owner)
    return path


def read_file(path, mode="r"):
    """What path holds (mode "rb": bytes), None when it cannot be read."""
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def mbox_messages(path):
    """The messages of an mbox file (a list, [] when it does not exist)."""
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return list(box)
    finally:
        box.close()


# -- certificates

def openssl(cwd, *args):
    """Runs openssl with args in the folder cwd; raises when it fails."""
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True,
                   cwd=cwd)


def make_self_signed(d, name, cn, *exts):
    """NAME.key and NAME.pem (0644) in the folder d: a self-signed
    certificate for CN cn (RSA 2048, 2 days) with the -addext extensions
    exts."""
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=" + cn, "-keyout", name + ".key", "-out",
            name + ".pem"]
    for e in exts:
        args += ["-addext", e]
    openssl(d, *args)
    os.chmod(os.path.join(d, name + ".pem"), 0o644)


def make_test_ca_and_cert(d, ca_cn="smalt test CA",
                          san="DNS:localhost,IP:127.0.0.1"):
    """In the folder d: a test CA (ca.key, ca.pem, CN ca_cn) and a server
    certificate it signed (srv.key, srv.pem: CN localhost, subjectAltName
    san), valid 2 days; the .pem files 0644 (a daemon that dropped its
    privileges reads them)."""
    make_self_signed(d, "ca", ca_cn, "basicConstraints=critical,CA:TRUE",
                     "keyUsage=critical,keyCertSign,cRLSign")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj",
            "/CN=localhost", "-keyout", "srv.key", "-out", "srv.csr")
    write_file(os.path.join(d, "ext.cnf"), "subjectAltName=%s\n" % san)
    openssl(d, "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-out", "srv.pem",
            "-extfile", "ext.cnf")
    os.chmod(os.path.join(d, "srv.pem"), 0o644)


# -- outside SMTP servers

# Postfix's smtp-sink: from the postfix package, or SMALT_SMTP_SINK naming
# one extracted from it (dpkg-deb -x, beside its ../lib/postfix).
SMTP_SINK = (os.environ.get("SMALT_SMTP_SINK") or shutil.which("smtp-sink") or
             "/usr/sbin/smtp-sink")
SMTP_SINK_LIBS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(SMTP_SINK))), "lib", "postfix")


def start_smtp_sink(args, **popen):
    """Starts SMTP_SINK with args (options, then address and backlog), as
    nobody when running as root, with the libraries of an extracted copy.
    popen goes to subprocess.Popen (stdin, stdout...). Returns the
    Popen; the caller waits for the port."""
    env = dict(os.environ)
    if os.path.isdir(SMTP_SINK_LIBS):
        env["LD_LIBRARY_PATH"] = SMTP_SINK_LIBS
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    return subprocess.Popen([SMTP_SINK] + user + list(args), env=env, **popen)


def aiosmtpd_python():
    """A python3 that imports aiosmtpd, None when there is none. Debian's
    python3-aiosmtpd serves /usr/bin/python3, which may not be the python3
    running the test."""
    for cand in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([cand, "-c", "import aiosmtpd"],
                          capture_output=True).returncode == 0:
            return cand
    return None


def read_smtp_data(f, unstuff=False):
    """For a scripted server after its 354: the lines read from f (the
    connection's binary file) up to the lone "." line, as bytes, the
    leading dot of each line removed when unstuff. None when the client
    closed first."""
    buf = b""
    while True:
        ln = f.readline()
        if not ln:
            return None
        if ln == b".\r\n":
            return buf
        buf += ln[1:] if unstuff and ln.startswith(b".") else ln


# -- the end of a run

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")


def check_stop_all(checker, daemons, every=False):
    """Stops (SIGTERM) each Daemon of daemons still running, with a check
    "NAME: SIGTERM exits 0" for it; with every, that check for each
    daemon of the list, also one stopped before."""
    for d in daemons:
        running = d.proc is not None and d.proc.returncode is None
        if running:
            d.stop()
        if running or every:
            checker.check("%s: SIGTERM exits 0" % os.path.basename(d.dir),
                          d.stopped_by_term and d.proc.returncode == 0,
                          d.proc.returncode)


def sanitizer_reports(daemons):
    """(daemon name, excerpt) for each sanitizer mark found in the log of
    a Daemon of daemons: [] when there is none."""
    out = []
    for d in daemons:
        log = d.log()
        for pat in SANITIZER_MARKS:
            if pat in log:
                i = log.index(pat)
                out.append((os.path.basename(d.dir),
                            log[max(0, i - 200):i + 1500]))
    return out
