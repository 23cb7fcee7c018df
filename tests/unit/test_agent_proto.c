/* The qmgr <-> delivery agent datagrams: round trips, and every kind of
 * malformed request refused (the agent is root; the qmgr is not). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deliver/agent.h"
#include "deliver/delivery_log.h"

static int
parse_req(const char *text, struct agent_request *req, char *buf)
{
	strcpy(buf, text);
	return agent_request_parse(buf, strlen(buf), req);
}

static void
test_request_round_trip(void)
{
	char buf[AGENT_MSG_MAX], copy[AGENT_MSG_MAX];
	struct agent_request req = {
	    .job = 42,
	    .channel = CHANNEL_PIPE,
	    .id = "661661B32BBF2000",
	    .arrival_us = 1,
	    .active_us = 2,
	    .sent_us = 3,
	    .sender = "",
	    .rcpt = "bob@example.org",
	    .argv = {"/bin/sh", "-c", "exit 75", NULL},
	};
	int n = agent_request_format(&req, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_STR(buf, "R1\t42\tpipe\t661661B32BBF2000\t1\t2\t3\t\t"
		       "bob@example.org\t/bin/sh\t-c\texit 75");
	struct agent_request back;
	memcpy(copy, buf, (size_t)n + 1);
	CHECK(agent_request_parse(copy, (size_t)n, &back) == 0);
	CHECK(back.job == 42 && back.channel == CHANNEL_PIPE);
	CHECK_STR(back.id, "661661B32BBF2000");
	CHECK(back.arrival_us == 1 && back.active_us == 2 && back.sent_us == 3);
	CHECK_STR(back.sender, "");
	CHECK_STR(back.rcpt, "bob@example.org");
	CHECK_STR(back.argv[2], "exit 75");
	CHECK(back.argv[3] == NULL);

	req.channel = CHANNEL_LOCAL;
	n = agent_request_format(&req, buf, sizeof(buf));
	CHECK(n > 0 && strstr(buf, "/bin/sh") == NULL);
	CHECK(agent_request_parse(buf, (size_t)n, &back) == 0 &&
	      back.channel == CHANNEL_LOCAL && back.argv[0] == NULL);
}

static void
test_request_refused(void)
{
	char buf[AGENT_MSG_MAX];
	struct agent_request req = {
	    .job = 1,
	    .channel = CHANNEL_LOCAL,
	    .id = "661661B32BBF2000",
	    .sender = "a\tb@x",
	    .rcpt = "bob@example.org",
	};
	CHECK(agent_request_format(&req, buf, sizeof(buf)) < 0);
	req.sender = "a@x";
	req.rcpt = "bob\n@x";
	CHECK(agent_request_format(&req, buf, sizeof(buf)) < 0);
	req.rcpt = "bob@x";
	req.channel = CHANNEL_SMTP;
	CHECK(agent_request_format(&req, buf, sizeof(buf)) < 0);
	req.channel = CHANNEL_LOCAL;
	CHECK(agent_request_format(&req, buf, 20) < 0);

	static const char *const bad[] = {
	    "",
	    "R1",
	    "R2\t1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x",
	    "R1\t-1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x",
	    "R1\t1\tsmtp\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x",
	    "R1\t1\tlocal\t../../etc/passwd\t1\t2\t3\ta@x\tb@x",
	    "R1\t1\tlocal\t661661b32bbf2000\t1\t2\t3\ta@x\tb@x",
	    "R1\t1\tlocal\t661661B32BBF2000\tx\t2\t3\ta@x\tb@x",
	    "R1\t1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\t",
	    "R1\t1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x\t/bin/x",
	    "R1\t1\tpipe\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x",
	    "R1\t1\tpipe\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x\tsh",
	    "R1\t1\tpipe\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x\t/bin/sh\t",
	    "R1\t1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x\r",
	    ("R1\t99999999999999999999999\tlocal\t661661B32BBF2000\t1\t2"
	     "\t3\ta@x\tb@x"),
	};
	struct agent_request r;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_req(bad[i], &r, buf);
		if (rc == 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CHECK(rc != 0);
	}
	/* A NUL inside the datagram. */
	memcpy(buf, "R1\t1\tlocal\t661661B32BBF2000\t1\t2\t3\ta@x\tb\0x", 41);
	CHECK(agent_request_parse(buf, 41, &r) != 0);
	/* More arguments than AGENT_ARGV_MAX. */
	char *p = buf;
	p += sprintf(p, "R1\t1\tpipe\t661661B32BBF2000\t1\t2\t3\ta@x\tb@x\t/x");
	for (int i = 0; i < AGENT_ARGV_MAX; i++)
		p += sprintf(p, "\ta");
	CHECK(agent_request_parse(buf, strlen(buf), &r) != 0);
}

static void
test_result(void)
{
	char buf[AGENT_MSG_MAX];
	struct agent_result res = {
	    .job = 9, .r = {DELIVER_DEFER, "4.3.0", "line one\nline\ttwo"}};
	int n = agent_result_format(&res, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK_STR(buf, "A1\t9\tdefer\t4.3.0\tline one line two");
	struct agent_result back;
	CHECK(agent_result_parse(buf, (size_t)n, &back) == 0);
	CHECK(back.job == 9 && back.r.status == DELIVER_DEFER);
	CHECK_STR(back.r.dsn, "4.3.0");
	CHECK_STR(back.r.reason, "line one line two");

	static const char *const bad[] = {
	    "A1\t9\tmaybe\t4.3.0\tx", "A1\t9\tok\t2.0.0", "A1\tx\tok\t2.0.0\tx",
	    "A1\t9\tok\t2.0.0.0.0.0.0.0.0.0.0\tx", "B1\t9\tok\t2.0.0\tx"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(buf, bad[i]);
		CHECK(agent_result_parse(buf, strlen(buf), &back) != 0);
	}
}

static void
test_seconds(void)
{
	char b[16];
	CHECK_STR(delivery_seconds(0, 0, b, sizeof(b)), "0");
	CHECK_STR(delivery_seconds(0, 4000, b, sizeof(b)), "0");
	CHECK_STR(delivery_seconds(0, 100000, b, sizeof(b)), "0.1");
	CHECK_STR(delivery_seconds(0, 123456, b, sizeof(b)), "0.12");
	CHECK_STR(delivery_seconds(0, 3400000, b, sizeof(b)), "3.4");
	CHECK_STR(delivery_seconds(0, 57200000, b, sizeof(b)), "57");
	CHECK_STR(delivery_seconds(10, 5, b, sizeof(b)), "0");
}

int
main(void)
{
	test_request_round_trip();
	test_request_refused();
	test_result();
	test_seconds();
	return check_done();
}
