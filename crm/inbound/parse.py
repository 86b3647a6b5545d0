"""Reading an inbound email as the desk needs it: who sent it, what it answers, the
customer's own words (quoted history and signature trimmed for display, the whole
message kept as evidence), its files, and whether a machine sent it.

Chinese mail is often labelled GB2312 or GBK but written in their superset GB18030, and
Big5 mail in Big5-HKSCS: each is decoded as the superset, so no character is lost.
HTML-only mail is turned into text by an allow-nothing sanitiser (nh3), never rendered.
"""

import email
import email.policy
import html
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import nh3

SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
}
# Where quoted history begins in the replies of common mail programs: Gmail and Apple Mail
# ("On … wrote:"), Outlook ("-----Original Message-----", or a rule then "From:"), QQ
# Mail ("------------------ 原始邮件 ------------------"), Foxmail and NetEase ("发件人："),
# and their traditional-Chinese forms.
QUOTE_STARTS = re.compile(
    r"^\s*(?:On .{4,200} wrote:|在\s?.{4,200}[写寫]道[:：]|-{2,}\s*(?:Original Message|原始[邮郵]件)\s*-{2,}"
    r"|_{10,}|(?:发件人|發件人|寄件者)[:：].*|From:\s.+@.+"
    r"|-{5,}\s*(?:Forwarded message|[转轉]发的[邮郵]件)\s*-{5,})\s*$",
    re.IGNORECASE,
)
SIGNATURE = re.compile(r"^-- ?$")
AUTO_SUBJECTS = re.compile(r"^\s*(?:auto(?:matic)?[ -]?reply|out of (?:the )?office|自动回复|自動回覆)", re.I)
MACHINE_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|no-?reply)@", re.I)


@dataclass
class Parsed:
    sender_name: str
    sender_address: str
    subject: str
    message_id: str | None
    answers: list[str]  # the Message-IDs it replies to (In-Reply-To, References)
    recipients: list[str]  # every address it was sent to (To, Cc, Delivered-To, X-Original-To)
    text: str  # the whole text, decoded
    trimmed: str  # the new words: quoted history and signature cut
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    machine: str | None = None  # why a machine sent it (an auto-reply, a bounce), else None


def _decoded(part: EmailMessage) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = (part.get_content_charset() or "utf-8").lower()
    try:
        return payload.decode(SUPERSETS.get(charset, charset), errors="replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", errors="replace")


def _html_text(markup: str) -> str:
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</li>", "\n", markup)
    return html.unescape(
        nh3.clean(markup, tags=set(), clean_content_tags={"script", "style", "head", "title"})
    )


def trim(text: str) -> str:
    """The new part of a reply: up to where the quoted history or the signature starts,
    without quoted (">") lines."""
    kept = []
    for line in text.splitlines():
        if QUOTE_STARTS.match(line) or SIGNATURE.match(line):
            break
        if not line.lstrip().startswith(">"):
            kept.append(line.rstrip())
    trimmed = "\n".join(kept).strip()
    return trimmed or text.strip()


def _machine(message: EmailMessage, sender: str, subject: str) -> str | None:
    auto = (message.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (message.get("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "X-Auto-Response"):
        if message.get(header):
            return header
    if message.get_content_type() == "multipart/report" or (message.get("Return-Path") or "").strip() == "<>":
        return "a delivery report"
    if MACHINE_SENDERS.match(sender):
        return f"sent by {sender}"
    if AUTO_SUBJECTS.match(subject):
        return "an automatic reply"
    return None


def parse(raw: bytes) -> Parsed:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    name, address = parseaddr(str(message.get("From", "")))
    subject = str(message.get("Subject", "") or "").strip()
    text_parts, html_parts, attachments = [], [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition == "attachment" or (filename and disposition != "inline"):
            attachments.append((filename or "attachment", part.get_payload(decode=True) or b""))
        elif part.get_content_type() == "text/plain":
            text_parts.append(_decoded(part))
        elif part.get_content_type() == "text/html":
            html_parts.append(_decoded(part))
    text = "\n".join(text_parts) if text_parts else "\n".join(_html_text(part) for part in html_parts)
    answers = " ".join(str(message.get(header, "")) for header in ("In-Reply-To", "References"))
    recipients = [
        found.lower()
        for header in ("To", "Cc", "Delivered-To", "X-Original-To")
        for _name, found in getaddresses([str(value) for value in message.get_all(header, [])])
        if found
    ]
    return Parsed(
        sender_name=name.strip(),
        sender_address=address.strip().lower(),
        subject=subject,
        message_id=(str(message.get("Message-ID", "")).strip() or None),
        answers=re.findall(r"<[^<>\s]+>", answers),
        recipients=recipients,
        text=text.strip(),
        trimmed=trim(text),
        attachments=attachments,
        machine=_machine(message, address.strip().lower(), subject),
    )
