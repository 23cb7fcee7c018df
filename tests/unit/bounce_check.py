"""Reads a delivery status notification written by bounce_write and prints
what a mail client would see in it, one key=value per line, for
test_bounce.c to check. Folded header values are unfolded."""

import email
import email.policy
import email.utils
import re
import sys


def put(key, value):
    value = "" if value is None else str(value)
    print(f"{key}={value.replace(chr(13), '').replace(chr(10), ' ')}")


def unfold(value):
    return None if value is None else re.sub(r"\r?\n", "", str(value))


def date_ok(value):
    try:
        return int(email.utils.parsedate_to_datetime(unfold(value)) is not None)
    except (TypeError, ValueError):
        return 0


def check_lines(raw, boundary):
    # Every line break is CRLF: no bare LF, no bare CR.
    put("all_crlf", int(raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")))
    # Parts 1 and 2 (and the headers) end where part 3's delimiter starts.
    delim = b"\r\n--" + boundary.encode() + b"\r\n"
    pos = -1
    for _ in range(3):
        pos = raw.find(delim, pos + 1)
    head = raw[: pos if pos >= 0 else len(raw)]
    put("max_line_12", max(len(line) for line in head.split(b"\r\n")))
    put("closed", int(raw.endswith(b"\r\n--" + boundary.encode() + b"--\r\n")))


def check_status(part):
    blocks = part.get_payload()
    put("status_blocks", len(blocks))
    first = blocks[0]
    put("reporting_mta", unfold(first["Reporting-MTA"]))
    put("queue_id", unfold(first["X-Smalt-Queue-ID"]))
    put("arrival_date_ok", date_ok(first["Arrival-Date"]))
    for i, block in enumerate(blocks[1:]):
        put(f"rcpt{i}_final", unfold(block["Final-Recipient"]))
        put(f"rcpt{i}_action", unfold(block["Action"]))
        put(f"rcpt{i}_status", unfold(block["Status"]))
        put(f"rcpt{i}_diag", unfold(block["Diagnostic-Code"]))
        put(f"rcpt{i}_last_attempt_ok", date_ok(block["Last-Attempt-Date"]))
        put(f"rcpt{i}_retry_ok", date_ok(block["Will-Retry-Until"]))


def check_original(part):
    put("part3_type", part.get_content_type())
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0)
        put("orig_subject", unfold(inner["Subject"]))
        put("orig_body_len", len(inner.get_payload()))
    else:
        text = part.get_payload()
        headers = email.message_from_string(text)
        put("orig_subject", unfold(headers["Subject"]))
        # Only a header section: no empty line before its end.
        put("orig_has_body", int("\n\n" in text.replace("\r\n", "\n").rstrip("\n")))


def main():
    raw = open(sys.argv[1], "rb").read()
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    put("content_type", msg.get_content_type())
    put("report_type", msg.get_param("report-type"))
    put("boundary", msg.get_boundary())
    for name in ("From", "To", "Subject", "Auto-Submitted", "Message-ID", "MIME-Version"):
        put(name.lower(), unfold(msg[name]))
    put("date_ok", date_ok(msg["Date"]))
    put("defects", sum(len(p.defects) for p in msg.walk()))
    parts = msg.get_payload() if msg.is_multipart() else []
    put("nparts", len(parts))
    for i, part in enumerate(parts):
        put(f"part{i + 1}_type", part.get_content_type())
    if len(parts) >= 1:
        text = parts[0].get_payload(decode=True).decode("ascii", "replace")
        put("text", re.sub(r"\r\n {4}", " ", text).replace("\r\n", " | "))
    if len(parts) >= 2 and parts[1].get_content_type() == "message/delivery-status":
        check_status(parts[1])
    if len(parts) >= 3:
        check_original(parts[2])
    if msg.get_boundary():
        check_lines(raw, msg.get_boundary())


main()
