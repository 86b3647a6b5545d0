"""What a file really is, judged by its bytes: the evidence types we accept."""

import email.parser
import re

import filetype

# Detected type -> the extension we store and serve it under.
ALLOWED = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "audio/mpeg": "mp3",
    "audio/x-wav": "wav",
    "audio/mp4": "m4a",
    "message/rfc822": "eml",
    "text/plain": "txt",
}
# For file inputs' ``accept``: a hint to the browser; the bytes still decide.
ACCEPTED_FILES = ",".join(sorted({f".{extension}" for extension in ALLOWED.values()} | {".jpeg"}))
_FILETYPE_ALIASES = {"audio/wav": "audio/x-wav", "audio/x-m4a": "audio/mp4", "video/mp4": None}
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]", re.MULTILINE)
_MAIL_HEADERS = {"from", "to", "subject", "date", "message-id", "received", "mime-version"}


def detect(content: bytes) -> str | None:
    """The MIME type of ``content`` if it is one we accept, else None."""
    kind = filetype.guess(content[:8192])
    if kind is not None:
        mime = _FILETYPE_ALIASES.get(kind.mime, kind.mime)
        return mime if mime in ALLOWED else None
    if not _is_text(content):
        return None
    return "message/rfc822" if _looks_like_email(content) else "text/plain"


TEXT_ENCODINGS = ("utf-8", "gb18030")


def text_encoding(content: bytes) -> str | None:
    """The encoding text is written in (UTF-8, else GB18030, which covers GBK and
    GB2312), or None when it is neither."""
    for encoding in TEXT_ENCODINGS:
        try:
            content.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return None


def _is_text(content: bytes) -> bool:
    return b"\x00" not in content and text_encoding(content) is not None


def _looks_like_email(content: bytes) -> bool:
    head = content[:16384].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if not _HEADER_LINE.match(head):
        return False
    message = email.parser.BytesHeaderParser().parsebytes(head)
    return len({key.lower() for key in message} & _MAIL_HEADERS) >= 2
