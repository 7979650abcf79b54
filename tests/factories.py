"""Build small RFC 5322 messages for tests: headers that matter, a short body."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime


def mail(
    *,
    sender: str,
    to: str = "Support <support@acme.example>",
    subject: str = "Help",
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra: dict[str, str] | None = None,
    body: str = "Hello,\r\n\r\nplease help.\r\n",
) -> bytes:
    headers = {
        "From": sender,
        "To": to,
        "Subject": subject,
        "Date": format_datetime(date),
        "Message-ID": f"<{message_id}>",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=utf-8",
    }
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        headers["References"] = references
    headers.update(extra or {})
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n" + body).encode("utf-8")
