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

Every daemon started here is SIGKILLed at exit if still running.
"""

import atexit
import os
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
        with open(self.conf_path, "w") as f:
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        os.chmod(self.conf_path, 0o644)

    # -- life cycle

    def start(self, timeout=20.0):
        """Starts smaltd -d -f CONF and waits until it listens. Raises
        RuntimeError (with the log) when it does not come up."""
        self.stopped_by_term = False
        logf = open(self.log_path, "ab")
        self.log_offset_at_start = logf.tell()
        self.proc = subprocess.Popen(
            [smaltd_path(), "-d", "-f", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
            close_fds=True)
        logf.close()
        _daemons.append(self)
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
    with open(d.conf_path, "w") as f:
        for k, v in d.conf.items():
            f.write("%s = %s\n" % (k, v))
    os.chmod(d.conf_path, 0o644)


def daemon_start_nowait(d):
    """Starts a Daemon's smaltd as Daemon.start does, but returns at once
    without waiting for it to serve (for a test that must act within the
    first milliseconds, e.g. kill it while it delivers what was queued).
    The caller waits on the log itself."""
    d.stopped_by_term = False
    logf = open(d.log_path, "ab")
    d.log_offset_at_start = logf.tell()
    d.proc = subprocess.Popen(
        [smaltd_path(), "-d", "-f", d.conf_path],
        stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
        close_fds=True)
    logf.close()
    _daemons.append(d)
    return d
