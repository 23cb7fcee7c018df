/* The local channel's mailbox writers: mbox (From_ line, mboxrd quoting,
 * appending, the empty line between messages), Maildir, CRLF -> LF across
 * chunk boundaries, dot-lock and fcntl locking with their timeouts,
 * refusal of symlinks and other strange files, no partial message after
 * a failure (a full tmpfs as root), and count_delivered_to. What was
 * written is read back with Python's mailbox module, as a mail client
 * would, and compared byte for byte with a whole-buffer model. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "deliver/mailbox.h"
#include "tests/lib/testutil.h"
#include "tests/unit/check.h"

/* Sun Nov 29 06:51:56 2026 UTC; the test runs with TZ=UTC. */
#define NOW	 ((time_t)1795935116)
#define NOW_TEXT "Sun Nov 29 06:51:56 2026"
#define SENDER	 "alice@example.com"
#define HEADERS                                                                \
	"Return-Path: <alice@example.com>\nDelivered-To: bob@example.org\n"
#define NOBODY_ID 65534

static char *dir;
static char *pyscript; /* NULL: no python3 with mailbox here */
static int as_root;

/* --- helpers ---------------------------------------------------------- */

static char *
tpath(const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static char *
crlf(const char *lf)
{
	struct strbuf b = {0};
	for (const char *p = lf; *p != '\0'; p++) {
		if (*p == '\n')
			strbuf_add(&b, "\r", 1);
		strbuf_add(&b, p, 1);
	}
	return b.s != NULL ? b.s : xstrdup("");
}

/* A queue-style message file holding exactly len octets; returns an
 * O_RDONLY descriptor. */
static int
msg_file(const char *name, const char *text, size_t len)
{
	char *p = tpath(name);
	CHECK(test_write_file(p, text, len) == 0);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	free(p);
	return fd;
}

/* The whole-buffer model of what the writers must produce for a message:
 * CRLF -> LF with a lone CR kept; with quote, every line matching
 * ^>*From_ gets one more '>'; with final, a missing last LF is added. */
static char *
model(const char *in, size_t len, int quote, int final, size_t *outlen)
{
	char *lf = xmalloc(len + 1);
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (!(in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
			lf[n++] = in[i];
	char *out = xmalloc(2 * n + 2);
	size_t m = 0, i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && lf[j] == '>')
			j++;
		if (quote && n - j >= 5 && memcmp(lf + j, "From ", 5) == 0)
			out[m++] = '>';
		const char *nl = memchr(lf + i, '\n', n - i);
		size_t e = nl != NULL ? (size_t)(nl - lf) + 1 : n;
		memcpy(out + m, lf + i, e - i);
		m += e - i;
		i = e;
	}
	if (final && m > 0 && out[m - 1] != '\n')
		out[m++] = '\n';
	out[m] = '\0';
	free(lf);
	*outlen = m;
	return out;
}

/* "From SENDER NOW\n" HEADERS model "\n": one message as mbox_deliver
 * must append it to a file that ends in an empty line. */
static char *
mbox_entry(const char *from, const char *headers, const char *msg, size_t len,
	   size_t *outlen)
{
	size_t blen;
	char *body = model(msg, len, 1, 1, &blen);
	struct strbuf b = {0};
	strbuf_addf(&b, "From %s %s\n%s", from, NOW_TEXT,
		    headers ? headers : "");
	strbuf_add(&b, body, blen);
	strbuf_add(&b, "\n", 1);
	free(body);
	*outlen = b.len;
	return b.s;
}

static int
file_equals(const char *path, const char *want, size_t wantlen)
{
	size_t len;
	char *got = test_read_file(path, &len);
	int ok = got != NULL && len == wantlen && memcmp(got, want, len) == 0;
	if (!ok && got != NULL)
		fprintf(stderr, "%s: %zu octets, want %zu\n", path, len,
			wantlen);
	free(got);
	return ok;
}

static off_t
file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

static int
exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
deliver(const char *mbox, const char *sender, const char *msg,
	const char *headers, struct deliver_result *res)
{
	int fd = msg_file("msg", msg, strlen(msg));
	memset(res, 0, sizeof(*res));
	mbox_deliver(mbox, sender, NOW, fd, headers, res);
	close(fd);
}

#define CHECK_OK(res)                                                          \
	do {                                                                   \
		CHECK((res).status == DELIVER_OK);                             \
		CHECK_STR((res).dsn, "2.0.0");                                 \
		if ((res).status != DELIVER_OK)                                \
			fprintf(stderr, "  reason: %s\n", (res).reason);       \
	} while (0)

/* --- Python's view ---------------------------------------------------- */

static const char pysrc[] =
    "import mailbox, os, sys\n"
    "kind, path, out = sys.argv[1:4]\n"
    "if kind == 'mbox':\n"
    "    mb = mailbox.mbox(path, create=False)\n"
    "    keys = list(mb.keys())\n"
    "else:\n"
    "    mb = mailbox.Maildir(path, create=False)\n"
    "    keys = sorted(mb.keys())\n"
    "print('count=%d' % len(keys))\n"
    "for i, k in enumerate(keys):\n"
    "    m = mb.get_message(k)\n"
    "    with open(os.path.join(out, str(i)), 'wb') as f:\n"
    "        f.write(mb.get_bytes(k))\n"
    "    print('from=%s' % (m.get_from() if kind == 'mbox' else ''))\n"
    "    print('rp=%s' % m['Return-Path'])\n"
    "    print('dt=%s' % m['Delivered-To'])\n";

#define PY_MAX 4
struct py_facts {
	int count;
	char from[PY_MAX][160], rp[PY_MAX][160], dt[PY_MAX][160];
	char *bytes[PY_MAX];
	size_t len[PY_MAX];
};

static void
py_free(struct py_facts *f)
{
	for (int i = 0; i < PY_MAX; i++)
		free(f->bytes[i]);
}

static void
py_field(char dst[160], const char *line, const char *key)
{
	size_t n = strlen(key);
	if (strncmp(line, key, n) == 0) {
		smalt_strlcpy(dst, line + n, 160);
		dst[strcspn(dst, "\n")] = '\0';
	}
}

/* Reads a mailbox with Python's mailbox module. 0, or -1 when Python is
 * not usable here (then the caller skips its checks). */
static int
py_read(const char *kind, const char *path, struct py_facts *f)
{
	static int runs;
	memset(f, 0, sizeof(*f));
	f->count = -1;
	if (pyscript == NULL)
		return -1;
	char *out = xasprintf("%s/py.%d", dir, ++runs);
	mkdir(out, 0700);
	char *cmd =
	    xasprintf("python3 '%s' %s '%s' '%s'", pyscript, kind, path, out);
	FILE *p = popen(cmd, "r");
	CHECK(p != NULL);
	char line[512];
	int i = -1;
	while (p != NULL && fgets(line, sizeof(line), p) != NULL) {
		if (strncmp(line, "count=", 6) == 0)
			f->count = atoi(line + 6);
		if (strncmp(line, "from=", 5) == 0)
			i++;
		if (i < 0 || i >= PY_MAX)
			continue;
		py_field(f->from[i], line, "from=");
		py_field(f->rp[i], line, "rp=");
		py_field(f->dt[i], line, "dt=");
	}
	CHECK(p != NULL && pclose(p) == 0);
	for (i = 0; i < PY_MAX && i < f->count; i++) {
		char *file = xasprintf("%s/%d", out, i);
		f->bytes[i] = test_read_file(file, &f->len[i]);
		free(file);
	}
	free(cmd);
	free(out);
	return 0;
}

static void
py_setup(void)
{
	if (system("python3 -c 'import mailbox' 2>/dev/null") != 0) {
		printf("note: no python3 with mailbox; skipping the reader "
		       "checks\n");
		return;
	}
	pyscript = tpath("read_mailbox.py");
	CHECK(test_write_file(pyscript, pysrc, strlen(pysrc)) == 0);
}

/* --- mbox ----------------------------------------------------------- */

static const char simple_lf[] =
    "Received: from client.example.com ([192.0.2.1])\n"
    "From: Alice <alice@example.com>\n"
    "Subject: hello\n"
    "\n"
    "Hello Bob,\n"
    "From the start.\n"
    "\n"
    "Alice\n";

static void
test_new_mbox(void)
{
	char *mbox = tpath("new.mbox"), *lock = tpath("new.mbox.lock");
	char *msg = crlf(simple_lf);
	struct deliver_result res;
	deliver(mbox, SENDER, msg, HEADERS, &res);
	CHECK_OK(res);
	CHECK_STR(res.reason, "delivered to mailbox");

	struct stat st;
	CHECK(lstat(mbox, &st) == 0 && S_ISREG(st.st_mode));
	CHECK((st.st_mode & 07777) == 0600);
	CHECK(!exists(lock));

	const char *want =
	    "From alice@example.com Sun Nov 29 06:51:56 2026\n" HEADERS
	    "Received: from client.example.com ([192.0.2.1])\n"
	    "From: Alice <alice@example.com>\n"
	    "Subject: hello\n"
	    "\n"
	    "Hello Bob,\n"
	    ">From the start.\n"
	    "\n"
	    "Alice\n"
	    "\n";
	CHECK(file_equals(mbox, want, strlen(want)));

	struct py_facts f;
	if (py_read("mbox", mbox, &f) == 0) {
		CHECK(f.count == 1);
		CHECK_STR(f.from[0], SENDER " " NOW_TEXT);
		CHECK_STR(f.rp[0], "<alice@example.com>");
		CHECK_STR(f.dt[0], "bob@example.org");
		size_t hl = strlen("From alice@example.com " NOW_TEXT "\n");
		CHECK(f.bytes[0] != NULL && f.len[0] == strlen(want) - hl - 1 &&
		      memcmp(f.bytes[0], want + hl, f.len[0]) == 0);
		py_free(&f);
	}
	free(msg);
	free(lock);
	free(mbox);
}

/* Earlier content stays byte for byte; our From_ line always follows an
 * empty line, whatever the file ended with. */
static void
test_append(void)
{
	static const char *const olds[] = {
	    "From old@example.com Mon Jan  1 00:00:00 2024\nSubject: old\n\n"
	    "old body\n\n",
	    "From old@example.com Mon Jan  1 00:00:00 2024\nSubject: old\n\n"
	    "old body\n",
	    "From old@example.com Mon Jan  1 00:00:00 2024\nSubject: old\n\n"
	    "old body",
	};
	static const char *const seps[] = {"", "\n", "\n\n"};
	char *msg = crlf(simple_lf);
	for (size_t i = 0; i < SMALT_NELEM(olds); i++) {
		char *mbox = tpath("append.mbox");
		unlink(mbox);
		CHECK(test_write_file(mbox, olds[i], strlen(olds[i])) == 0);
		struct deliver_result res;
		deliver(mbox, SENDER, msg, HEADERS, &res);
		CHECK_OK(res);

		size_t elen;
		char *entry =
		    mbox_entry(SENDER, HEADERS, msg, strlen(msg), &elen);
		struct strbuf want = {0};
		strbuf_adds(&want, olds[i]);
		strbuf_adds(&want, seps[i]);
		strbuf_add(&want, entry, elen);
		CHECK(file_equals(mbox, want.s, want.len));

		/* A third message after ours needs no separator. */
		deliver(mbox, "carol@example.net", msg, NULL, &res);
		CHECK_OK(res);
		free(entry);
		entry = mbox_entry("carol@example.net", NULL, msg, strlen(msg),
				   &elen);
		strbuf_add(&want, entry, elen);
		CHECK(file_equals(mbox, want.s, want.len));

		struct py_facts f;
		if (py_read("mbox", mbox, &f) == 0) {
			CHECK(f.count == 3);
			CHECK_STR(f.from[0],
				  "old@example.com Mon Jan  1 00:00:00 2024");
			CHECK_STR(f.from[1], SENDER " " NOW_TEXT);
			CHECK_STR(f.from[2], "carol@example.net " NOW_TEXT);
			CHECK_STR(f.rp[1], "<alice@example.com>");
			CHECK_STR(f.rp[2], "None");
			CHECK(f.bytes[0] != NULL &&
			      strncmp(f.bytes[0], "Subject: old\n\nold body",
				      22) == 0);
			py_free(&f);
		}
		free(entry);
		free(want.s);
		free(mbox);
	}
	free(msg);
}

static void
test_quoting(void)
{
	const char *msg = "Subject: quoting\r\n"
			  "\r\n"
			  "From here\r\n"
			  ">From there\r\n"
			  ">>>From far\r\n"
			  "From\r\n"
			  "Fromage\r\n"
			  " From indented\r\n"
			  ">From\r\n"
			  "> From spaced\r\n"
			  ">x From not\r\n"
			  "From: a body line\r\n"
			  "a\rFrom after a lone CR\r\n"
			  "\r\n"
			  "From the end";
	const char *want_body = "Subject: quoting\n"
				"\n"
				">From here\n"
				">>From there\n"
				">>>>From far\n"
				"From\n"
				"Fromage\n"
				" From indented\n"
				">From\n"
				"> From spaced\n"
				">x From not\n"
				"From: a body line\n"
				"a\rFrom after a lone CR\n"
				"\n"
				">From the end\n";
	char *mbox = tpath("quote.mbox");
	struct deliver_result res;
	deliver(mbox, SENDER, msg, NULL, &res);
	CHECK_OK(res);
	struct strbuf want = {0};
	strbuf_addf(&want, "From %s %s\n%s\n", SENDER, NOW_TEXT, want_body);
	CHECK(file_equals(mbox, want.s, want.len));
	/* The model agrees with the literal expectation. */
	size_t mlen;
	char *m = model(msg, strlen(msg), 1, 1, &mlen);
	CHECK(mlen == strlen(want_body) && memcmp(m, want_body, mlen) == 0);
	free(m);

	struct py_facts f;
	if (py_read("mbox", mbox, &f) == 0) {
		CHECK(f.count == 1);
		CHECK(f.bytes[0] != NULL && f.len[0] == strlen(want_body) &&
		      memcmp(f.bytes[0], want_body, f.len[0]) == 0);
		py_free(&f);
	}
	free(want.s);
	free(mbox);
}

static void
test_no_final_newline(void)
{
	char *mbox = tpath("nonl.mbox");
	struct deliver_result res;
	deliver(mbox, SENDER, "Subject: x\r\n\r\nno newline", HEADERS, &res);
	CHECK_OK(res);
	deliver(mbox, SENDER, "Subject: y\r\n\r\nends in CR\r", HEADERS, &res);
	CHECK_OK(res);
	/* Headers without their last LF still end their line. */
	deliver(mbox, SENDER, "Subject: z\r\n\r\nz\r\n", "X-Trace: t", &res);
	CHECK_OK(res);
	struct strbuf want = {0};
	strbuf_addf(&want, "From %s %s\n%sSubject: x\n\nno newline\n\n", SENDER,
		    NOW_TEXT, HEADERS);
	strbuf_addf(&want, "From %s %s\n%sSubject: y\n\nends in CR\r\n\n",
		    SENDER, NOW_TEXT, HEADERS);
	strbuf_addf(&want, "From %s %s\nX-Trace: t\nSubject: z\n\nz\n\n",
		    SENDER, NOW_TEXT);
	CHECK(file_equals(mbox, want.s, want.len));

	struct py_facts f;
	if (py_read("mbox", mbox, &f) == 0) {
		CHECK(f.count == 3);
		const char *b0 = HEADERS "Subject: x\n\nno newline\n";
		CHECK(f.bytes[0] != NULL && f.len[0] == strlen(b0) &&
		      memcmp(f.bytes[0], b0, f.len[0]) == 0);
		py_free(&f);
	}
	free(want.s);
	free(mbox);
}

static void
test_null_sender(void)
{
	char *mbox = tpath("null.mbox");
	struct deliver_result res;
	deliver(mbox, "", "Subject: bounce\r\n\r\nx\r\n", NULL, &res);
	CHECK_OK(res);
	deliver(mbox, NULL, "Subject: bounce\r\n\r\nx\r\n", NULL, &res);
	CHECK_OK(res);
	/* A From_ line is one word for the sender. */
	deliver(mbox, "\"john doe\"@example.com", "Subject: s\r\n\r\nx\r\n",
		NULL, &res);
	CHECK_OK(res);
	struct strbuf want = {0};
	for (int i = 0; i < 2; i++)
		strbuf_addf(&want,
			    "From MAILER-DAEMON %s\nSubject: bounce\n\nx\n\n",
			    NOW_TEXT);
	strbuf_addf(&want,
		    "From \"john_doe\"@example.com %s\nSubject: s\n\nx\n\n",
		    NOW_TEXT);
	CHECK(file_equals(mbox, want.s, want.len));
	struct py_facts f;
	if (py_read("mbox", mbox, &f) == 0) {
		CHECK(f.count == 3);
		CHECK_STR(f.from[0], "MAILER-DAEMON " NOW_TEXT);
		CHECK_STR(f.from[2], "\"john_doe\"@example.com " NOW_TEXT);
		py_free(&f);
	}
	free(want.s);
	free(mbox);
}

/* Appends text until the buffer is exactly at, then a CRLF. */
static void
pad_line_to(struct strbuf *b, size_t at)
{
	while (b->len + 2 < at)
		strbuf_add(b, "x", 1);
	strbuf_add(b, "\r\n", 2);
}

/* 200 KiB with a 100 KiB line that starts with "From ", a CRLF split
 * across the first chunk boundary after it, and ">From " split across
 * the next. */
static char *
big_message(size_t *len)
{
	struct strbuf b = {0};
	strbuf_adds(&b, "Received: from big\r\nSubject: big\r\n\r\n");
	strbuf_adds(&b, "From the long line ");
	while (b.len < 100 * 1024)
		strbuf_adds(&b, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ");
	strbuf_adds(&b, "\r\nFrom after the long line\r\n");
	pad_line_to(&b, 131073); /* CR at 131071, its LF opens chunk 3 */
	strbuf_adds(&b, "From straddle\r\n");
	pad_line_to(&b, 196605);
	strbuf_adds(&b, ">From split\r\n"); /* '>' 196605, "om " at 196608 */
	while (b.len < 200 * 1024)
		pad_line_to(&b,
			    b.len + 80 < 200 * 1024 ? b.len + 80 : 200 * 1024);
	*len = b.len;
	return b.s;
}

static void
test_large(void)
{
	size_t len;
	char *msg = big_message(&len);
	CHECK(len == 200 * 1024);
	CHECK(msg[131071] == '\r' && msg[131072] == '\n');
	CHECK(memcmp(msg + 196605, ">Fr", 3) == 0);
	char *mbox = tpath("big.mbox");
	int fd = msg_file("big", msg, len);
	struct deliver_result res;
	mbox_deliver(mbox, SENDER, NOW, fd, HEADERS, &res);
	CHECK_OK(res);
	size_t elen;
	char *entry = mbox_entry(SENDER, HEADERS, msg, len, &elen);
	CHECK(file_equals(mbox, entry, elen));
	CHECK(strstr(entry, "\n>From the long line ") != NULL);
	CHECK(strstr(entry, "\n>From straddle\n") != NULL);
	CHECK(strstr(entry, "\n>>From split\n") != NULL);

	struct py_facts f;
	if (py_read("mbox", mbox, &f) == 0) {
		CHECK(f.count == 1);
		size_t hl = strlen("From " SENDER " " NOW_TEXT "\n");
		CHECK(f.bytes[0] != NULL && f.len[0] == elen - hl - 1 &&
		      memcmp(f.bytes[0], entry + hl, f.len[0]) == 0);
		py_free(&f);
	}

	/* The same into a Maildir: LF endings, nothing quoted. */
	char *md = tpath("big.maildir");
	/* The descriptor's offset does not matter: pread from 0. */
	CHECK(lseek(fd, 0, SEEK_END) == (off_t)len);
	maildir_deliver(md, fd, HEADERS, &res);
	CHECK_OK(res);
	size_t blen;
	char *body = model(msg, len, 0, 0, &blen);
	struct strbuf want = {0};
	strbuf_adds(&want, HEADERS);
	strbuf_add(&want, body, blen);
	if (py_read("maildir", md, &f) == 0) {
		CHECK(f.count == 1);
		CHECK(f.bytes[0] != NULL && f.len[0] == want.len &&
		      memcmp(f.bytes[0], want.s, want.len) == 0);
		py_free(&f);
	}
	close(fd);
	free(want.s);
	free(body);
	free(md);
	free(entry);
	free(mbox);
	free(msg);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* Random text made of the octets that matter (CR, LF, '>', "From ") and
 * long enough to cross chunk boundaries, against the model. */
static void
test_random_against_model(void)
{
	static const char *const pieces[] = {"\r\n",  "\r",  "\n", ">",
					     "From ", "Fro", "m ", "x",
					     "From",  " ",   ">>>"};
	char *mbox = tpath("random.mbox"), *md = tpath("random.maildir");
	int bad = 0;
	for (int round = 0; round < 12 && !bad; round++) {
		struct strbuf b = {0};
		size_t target = rnd(3) == 0 ? rnd(100) : 60000 + rnd(150000);
		while (b.len < target)
			strbuf_adds(&b, pieces[rnd(SMALT_NELEM(pieces))]);
		if (b.s == NULL)
			strbuf_adds(&b, "");
		unlink(mbox);
		test_rm_rf(md);
		int fd = msg_file("random", b.s, b.len);
		struct deliver_result res;
		mbox_deliver(mbox, SENDER, NOW, fd, NULL, &res);
		CHECK_OK(res);
		size_t elen;
		char *entry = mbox_entry(SENDER, NULL, b.s, b.len, &elen);
		if (!file_equals(mbox, entry, elen)) {
			fprintf(stderr,
				"round %d: mbox differs (%zu octets "
				"in)\n",
				round, b.len);
			bad = 1;
		}
		maildir_deliver(md, fd, NULL, &res);
		CHECK_OK(res);
		char *newdir = xasprintf("%s/new", md);
		CHECK(test_count_dir(newdir) == 1);
		size_t mlen;
		char *m = model(b.s, b.len, 0, 0, &mlen);
		struct py_facts f;
		if (round < 3 && py_read("maildir", md, &f) == 0) {
			CHECK(f.count == 1 && f.len[0] == mlen &&
			      memcmp(f.bytes[0], m, mlen) == 0);
			py_free(&f);
		}
		free(m);
		free(newdir);
		free(entry);
		close(fd);
		free(b.s);
	}
	CHECK(!bad);
	free(md);
	free(mbox);
}

/* --- Maildir ---------------------------------------------------------- */

static char *
only_entry(const char *folder)
{
	DIR *d = opendir(folder);
	char *name = NULL;
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			name = xasprintf("%s/%s", folder, de->d_name);
	if (d != NULL)
		closedir(d);
	return name;
}

static void
test_maildir(void)
{
	char *md = tpath("Maildir");
	char *msg = crlf(simple_lf);
	int fd = msg_file("md", msg, strlen(msg));
	struct deliver_result res;
	maildir_deliver(md, fd, HEADERS, &res);
	CHECK_OK(res);
	CHECK_STR(res.reason, "delivered to maildir");

	const char *subs[] = {"", "/tmp", "/new", "/cur"};
	for (size_t i = 0; i < SMALT_NELEM(subs); i++) {
		char *p = xasprintf("%s%s", md, subs[i]);
		struct stat st;
		CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
		      (st.st_mode & 07777) == 0700);
		free(p);
	}
	char *tmp = xasprintf("%s/tmp", md), *new = xasprintf("%s/new", md);
	char *cur = xasprintf("%s/cur", md);
	CHECK(test_count_dir(tmp) == 0);
	CHECK(test_count_dir(new) == 1);
	CHECK(test_count_dir(cur) == 0);

	char *file = only_entry(new);
	CHECK(file != NULL);
	struct stat st;
	CHECK(file != NULL && stat(file, &st) == 0 &&
	      (st.st_mode & 07777) == 0600);
	/* SECONDS.MusecPpidQn..., one name component, no info part. */
	char pidpart[32];
	snprintf(pidpart, sizeof(pidpart), "P%ldQ", (long)getpid());
	const char *base = file != NULL ? strrchr(file, '/') + 1 : "";
	CHECK_CONTAINS(base, ".M");
	CHECK_CONTAINS(base, pidpart);
	CHECK(strchr(base, ':') == NULL);

	size_t blen;
	char *body = model(msg, strlen(msg), 0, 0, &blen);
	struct strbuf want = {0};
	strbuf_adds(&want, HEADERS);
	strbuf_add(&want, body, blen);
	CHECK(file != NULL && file_equals(file, want.s, want.len));
	/* Maildir does not quote: "From the start." stays. */
	CHECK(strstr(want.s, "\nFrom the start.\n") != NULL);

	maildir_deliver(md, fd, HEADERS, &res);
	CHECK_OK(res);
	CHECK(test_count_dir(new) == 2);
	CHECK(test_count_dir(tmp) == 0);

	struct py_facts f;
	if (py_read("maildir", md, &f) == 0) {
		CHECK(f.count == 2);
		CHECK_STR(f.rp[0], "<alice@example.com>");
		CHECK_STR(f.dt[0], "bob@example.org");
		CHECK_STR(f.dt[1], "bob@example.org");
		CHECK(f.bytes[0] != NULL && f.len[0] == want.len &&
		      memcmp(f.bytes[0], want.s, want.len) == 0);
		py_free(&f);
	}

	/* Structural problems bounce, a missing parent defers. */
	char *plain = tpath("not-a-maildir");
	CHECK(test_write_file(plain, "x", 1) == 0);
	maildir_deliver(plain, fd, HEADERS, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.2.0");
	char *orphan = tpath("no/such/Maildir");
	maildir_deliver(orphan, fd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.0");
	CHECK_CONTAINS(res.reason, "No such file");

	/* A message file that cannot be read leaves nothing behind. */
	char *wo = tpath("md");
	int wfd = open(wo, O_WRONLY);
	maildir_deliver(md, wfd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK(test_count_dir(tmp) == 0);
	CHECK(test_count_dir(new) == 2);
	close(wfd);

	free(wo);
	free(orphan);
	free(plain);
	free(want.s);
	free(body);
	free(file);
	free(cur);
	free(new);
	free(tmp);
	close(fd);
	free(msg);
	free(md);
}

/* --- refusals --------------------------------------------------------- */

static void
test_refused(void)
{
	struct deliver_result res;
	const char *msg = "Subject: s\r\n\r\nbody\r\n";

	char *target = tpath("target"), *slink = tpath("link.mbox");
	CHECK(test_write_file(target, "keep", 4) == 0);
	CHECK(symlink(target, slink) == 0);
	deliver(slink, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_STR(res.dsn, "5.2.0");
	CHECK_CONTAINS(res.reason, "symbolic link");
	CHECK(file_equals(target, "keep", 4));

	char *dangling = tpath("dangling.mbox"), *nowhere = tpath("nowhere");
	CHECK(symlink(nowhere, dangling) == 0);
	deliver(dangling, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK(!exists(nowhere));

	char *d = tpath("dir.mbox");
	CHECK(mkdir(d, 0700) == 0);
	deliver(d, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_CONTAINS(res.reason, "not a regular file");

	char *fifo = tpath("fifo.mbox");
	CHECK(mkfifo(fifo, 0600) == 0);
	deliver(fifo, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);

	char *hard = tpath("hard.mbox");
	CHECK(link(target, hard) == 0);
	deliver(hard, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);
	CHECK_CONTAINS(res.reason, "hard links");
	CHECK(file_equals(target, "keep", 4));

	char *under_file = xasprintf("%s/x.mbox", target);
	deliver(under_file, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_BOUNCE);

	char *missing = tpath("no-such-dir/x.mbox");
	deliver(missing, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.0");

	free(missing);
	free(under_file);
	free(hard);
	free(fifo);
	free(d);
	free(nowhere);
	free(dangling);
	free(slink);
	free(target);
}

/* A message file we cannot read: the mbox is as it was. */
static void
test_read_error_rollback(void)
{
	char *mbox = tpath("rerr.mbox"), *fresh = tpath("rerr-new.mbox");
	const char *old = "From x@y Mon Jan  1 00:00:00 2024\n\nold\n\n";
	CHECK(test_write_file(mbox, old, strlen(old)) == 0);
	char *name = tpath("rerr");
	CHECK(test_write_file(name, "Subject: s\r\n\r\nb\r\n", 16) == 0);
	int wfd = open(name, O_WRONLY);
	struct deliver_result res;
	mbox_deliver(mbox, SENDER, NOW, wfd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.3.0");
	CHECK_CONTAINS(res.reason, "message file");
	CHECK(file_equals(mbox, old, strlen(old)));
	/* A mailbox made for this message goes again. */
	mbox_deliver(fresh, SENDER, NOW, wfd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK(!exists(fresh));
	close(wfd);
	free(name);
	free(fresh);
	free(mbox);
}

/* --- locking ---------------------------------------------------------- */

static void
test_dotlock(void)
{
	char *mbox = tpath("locked.mbox"), *lock = tpath("locked.mbox.lock");
	const char *old = "From x@y Mon Jan  1 00:00:00 2024\n\nold\n\n";
	const char *msg = "Subject: s\r\n\r\nbody\r\n";
	CHECK(test_write_file(mbox, old, strlen(old)) == 0);

	/* A fresh dot-lock: wait, then defer. */
	CHECK(test_write_file(lock, "4242\n", 5) == 0);
	mailbox_set_lock_timeout(1000);
	struct deliver_result res;
	long long t0 = mono_ms();
	deliver(mbox, SENDER, msg, NULL, &res);
	long long took = mono_ms() - t0;
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.0");
	CHECK_CONTAINS(res.reason, "mailbox locked");
	CHECK(took >= 900 && took < 4000);
	CHECK(file_equals(mbox, old, strlen(old)));
	CHECK(exists(lock)); /* not ours to remove */

	/* Four minutes old is not stale yet. */
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 240;
	tv[1] = tv[0];
	CHECK(utimes(lock, tv) == 0);
	mailbox_set_lock_timeout(300);
	deliver(mbox, SENDER, msg, NULL, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK(file_equals(mbox, old, strlen(old)));

	/* Over five minutes: a crashed writer's; removed, delivered. */
	tv[0].tv_sec -= 120;
	tv[1] = tv[0];
	CHECK(utimes(lock, tv) == 0);
	t0 = mono_ms();
	deliver(mbox, SENDER, msg, NULL, &res);
	CHECK_OK(res);
	CHECK(mono_ms() - t0 < 1000);
	CHECK(!exists(lock));
	CHECK(file_size(mbox) > (off_t)strlen(old));

	mailbox_set_lock_timeout(MAILBOX_LOCK_TIMEOUT_MS);
	free(lock);
	free(mbox);
}

/* A child holds an fcntl lock on path for hold_ms (or until killed when
 * 0); returns its pid once the lock is held. */
static pid_t
hold_fcntl(const char *path, int hold_ms)
{
	int p[2];
	CHECK(pipe(p) == 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		int fd = open(path, O_RDWR);
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		if (fd < 0 || fcntl(fd, F_SETLKW, &fl) < 0)
			_exit(1);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		if (hold_ms == 0)
			for (;;)
				pause();
		struct timespec ts = {hold_ms / 1000,
				      (hold_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		_exit(0);
	}
	close(p[1]);
	char c;
	CHECK(pid > 0 && read(p[0], &c, 1) == 1);
	close(p[0]);
	return pid;
}

static void
test_fcntl_lock(void)
{
	char *mbox = tpath("fcntl.mbox"), *lock = tpath("fcntl.mbox.lock");
	const char *old = "From x@y Mon Jan  1 00:00:00 2024\n\nold\n\n";
	const char *msg = "Subject: s\r\n\r\nbody\r\n";
	CHECK(test_write_file(mbox, old, strlen(old)) == 0);

	/* Released after 700 ms: we wait for it and deliver. */
	mailbox_set_lock_timeout(5000);
	pid_t pid = hold_fcntl(mbox, 700);
	long long t0 = mono_ms();
	struct deliver_result res;
	deliver(mbox, SENDER, msg, NULL, &res);
	long long took = mono_ms() - t0;
	CHECK_OK(res);
	CHECK(took >= 500 && took < 4000);
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	      WEXITSTATUS(status) == 0);
	off_t after = file_size(mbox);
	CHECK(after > (off_t)strlen(old));
	CHECK(!exists(lock));

	/* Held past our timeout: defer, nothing written, dot-lock gone. */
	mailbox_set_lock_timeout(400);
	pid = hold_fcntl(mbox, 0);
	t0 = mono_ms();
	deliver(mbox, SENDER, msg, NULL, &res);
	took = mono_ms() - t0;
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.0");
	CHECK_CONTAINS(res.reason, "fcntl");
	CHECK(took >= 350 && took < 3000);
	CHECK(file_size(mbox) == after);
	CHECK(!exists(lock));
	CHECK(kill(pid, SIGTERM) == 0);
	CHECK(waitpid(pid, &status, 0) == pid);

	mailbox_set_lock_timeout(MAILBOX_LOCK_TIMEOUT_MS);
	free(lock);
	free(mbox);
}

/* As root: a recipient who may not create files in the mailbox folder
 * (Debian's /var/mail) still gets mail in an existing mbox, under the
 * fcntl lock alone; a missing mbox there defers. */
static void
test_dotlock_not_permitted(void)
{
	if (!as_root) {
		printf("note: not root; skipping the unprivileged dot-lock "
		       "test\n");
		return;
	}
	char tmpl[] = "/tmp/smalt-mailbox.XXXXXX";
	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(chmod(tmpl, 0755) == 0);
	char *mbox = xasprintf("%s/nobody", tmpl);
	char *missing = xasprintf("%s/other", tmpl);
	CHECK(test_write_file(mbox, "", 0) == 0);
	CHECK(chown(mbox, NOBODY_ID, NOBODY_ID) == 0);
	char *msgpath = xasprintf("%s/msg", tmpl);
	CHECK(test_write_file(msgpath, "Subject: s\r\n\r\nb\r\n", 16) == 0);
	CHECK(chmod(msgpath, 0644) == 0);

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY_ID) < 0 ||
		    setuid(NOBODY_ID) < 0)
			_exit(10);
		int fd = open(msgpath, O_RDONLY);
		struct deliver_result r1, r2;
		mbox_deliver(mbox, SENDER, NOW, fd, NULL, &r1);
		mbox_deliver(missing, SENDER, NOW, fd, NULL, &r2);
		if (r1.status != DELIVER_OK) {
			fprintf(stderr, "nobody: %s\n", r1.reason);
			_exit(11);
		}
		if (r2.status != DELIVER_DEFER || strcmp(r2.dsn, "4.2.0"))
			_exit(12);
		_exit(0);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
	CHECK(WEXITSTATUS(status) == 0);
	CHECK(file_size(mbox) > 0);
	CHECK(!exists(missing));
	char *lock = xasprintf("%s.lock", mbox);
	CHECK(!exists(lock));
	test_rm_rf(tmpl);
	free(lock);
	free(msgpath);
	free(missing);
	free(mbox);
}

/* --- a full file system ----------------------------------------------- */

static void
test_disk_full(void)
{
	if (!as_root) {
		printf("note: not root; skipping the full tmpfs test\n");
		return;
	}
	char *mnt = tpath("small");
	CHECK(mkdir(mnt, 0700) == 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k,mode=0700") < 0) {
		printf("note: cannot mount a tmpfs (%s); skipping the full "
		       "disk test\n",
		       strerror(errno));
		free(mnt);
		return;
	}
	size_t len;
	char *big = big_message(&len);
	int fd = msg_file("full", big, len);

	/* An mbox with earlier mail: exactly as before. */
	char *mbox = xasprintf("%s/mbox", mnt);
	struct strbuf old = {0};
	for (int i = 0; i < 100; i++)
		strbuf_addf(&old,
			    "From x@y Mon Jan  1 00:00:00 2024\nSubject: "
			    "%d\n\nold body %d\n\n",
			    i, i);
	CHECK(test_write_file(mbox, old.s, old.len) == 0);
	struct deliver_result res;
	mbox_deliver(mbox, SENDER, NOW, fd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.2");
	CHECK_CONTAINS(res.reason, "mailbox full");
	CHECK(file_size(mbox) == (off_t)old.len);
	CHECK(file_equals(mbox, old.s, old.len));
	char *lock = xasprintf("%s.lock", mbox);
	CHECK(!exists(lock));

	/* A new mbox: not left behind. */
	char *fresh = xasprintf("%s/fresh", mnt);
	mbox_deliver(fresh, SENDER, NOW, fd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.2");
	CHECK(!exists(fresh));

	/* Maildir: nothing in tmp/ or new/. */
	char *md = xasprintf("%s/Maildir", mnt);
	maildir_deliver(md, fd, HEADERS, &res);
	CHECK(res.status == DELIVER_DEFER);
	CHECK_STR(res.dsn, "4.2.2");
	char *tmp = xasprintf("%s/tmp", md), *new = xasprintf("%s/new", md);
	CHECK(test_count_dir(tmp) == 0);
	CHECK(test_count_dir(new) == 0);

	/* Once there is room again, the same message goes in whole. */
	CHECK(unlink(mbox) == 0);
	const char *small = "Subject: s\r\n\r\nsmall\r\n";
	deliver(fresh, SENDER, small, HEADERS, &res);
	CHECK_OK(res);

	close(fd);
	CHECK(umount2(mnt, MNT_DETACH) == 0);
	free(new);
	free(tmp);
	free(md);
	free(fresh);
	free(lock);
	free(old.s);
	free(mbox);
	free(big);
	free(mnt);
}

/* --- Delivered-To ----------------------------------------------------- */

static int
count(const char *text, size_t len)
{
	int fd = msg_file("dt", text, len);
	int n = count_delivered_to(fd, "bob@example.org");
	close(fd);
	return n;
}

#define COUNT(s) count((s), strlen(s))

static void
test_count_delivered_to(void)
{
	CHECK(COUNT("Received: from x\r\n"
		    "Delivered-To: bob@example.org\r\n"
		    "Delivered-To: BOB@Example.ORG\r\n"
		    "delivered-to:bob@example.org\r\n"
		    "DELIVERED-TO :  bob@example.org  \r\n"
		    "Delivered-To: <bob@example.org>\r\n"
		    "Subject: s\r\n"
		    "\r\n"
		    "Delivered-To: bob@example.org\r\n") == 5);
	/* Folded values are unfolded: CRLF goes, the white space stays. */
	CHECK(COUNT("Delivered-To:\r\n bob@example.org\r\n"
		    "Delivered-To: bob@example.org\r\n\t\r\n"
		    "Delivered-To: bob@exa\r\n mple.org\r\n"
		    "X: y\r\n\r\n") == 2);
	CHECK(COUNT("Delivered-To: bob@example.org.evil\r\n"
		    "X-Delivered-To: bob@example.org\r\n"
		    "Delivered-To-X: bob@example.org\r\n"
		    "Delivered-To: alice@example.org\r\n"
		    "Delivered-To: bob@example.org, carol@example.org\r\n"
		    "Delivered-To bob@example.org\r\n"
		    "Delivered-To:\r\n"
		    " \r\n"
		    "Subject: bob@example.org\r\n"
		    "\r\n") == 0);
	/* LF endings, the body not counted. */
	CHECK(COUNT("Delivered-To: bob@example.org\n"
		    "Delivered-To: bob@example.org\n\n"
		    "Delivered-To: bob@example.org\n") == 2);
	/* Starts with its body: nothing is a header. */
	CHECK(COUNT("\r\nDelivered-To: bob@example.org\r\n") == 0);
	/* No empty line, no final line break. */
	CHECK(COUNT("Delivered-To: bob@example.org") == 1);
	CHECK(COUNT("Delivered-To: bob@example.org\r") == 1);
	CHECK(COUNT("Delivered-To: bob@example.org\r\n"
		    "Delivered-To: bob@example.org") == 2);
	CHECK(COUNT("") == 0);

	/* A big header section: a field across the chunk boundary, one
	 * folded across it, and one far too long to be an address. */
	struct strbuf b = {0};
	strbuf_adds(&b, "Delivered-To: ");
	for (int i = 0; i < 3000; i++)
		strbuf_adds(&b, "x");
	strbuf_adds(&b, "\r\n");
	while (b.len < 65536 - 10)
		strbuf_adds(&b, "X-Filler: ........................\r\n");
	b.len = 65536 - 10;
	b.s[b.len - 2] = '\r';
	b.s[b.len - 1] = '\n';
	strbuf_adds(&b, "Delivered-To: bob@example.org\r\n");
	while (b.len < 131072 - 3)
		strbuf_adds(&b, "X-Filler: ........................\r\n");
	b.len = 131072 - 3;
	b.s[b.len - 2] = '\r';
	b.s[b.len - 1] = '\n';
	strbuf_adds(&b, "Delivered-To:\r\n  bob@example.org\r\n\r\n");
	strbuf_adds(&b, "Delivered-To: bob@example.org\r\n");
	CHECK(count(b.s, b.len) == 2);
	free(b.s);

	CHECK(count_delivered_to(-1, "bob@example.org") == -1);
	CHECK(errno == EBADF);
}

int
main(void)
{
	setenv("TZ", "UTC", 1);
	tzset();
	as_root = geteuid() == 0;
	dir = test_mkdtemp("mailbox");
	py_setup();

	test_new_mbox();
	test_append();
	test_quoting();
	test_no_final_newline();
	test_null_sender();
	test_large();
	test_random_against_model();
	test_maildir();
	test_refused();
	test_read_error_rollback();
	test_dotlock();
	test_fcntl_lock();
	test_dotlock_not_permitted();
	test_disk_full();
	test_count_delivered_to();

	int rc = check_done();
	if (rc == 0)
		test_rm_rf(dir);
	free(pyscript);
	free(dir);
	return rc;
}
