"""A real IMAP server for the tests: Debian's Dovecot, started on a free port with a
configuration of the test's own, and the helpers that put mail in it and read its state."""

import imaplib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.browser import IN_CI
from tests.mail import free_port

SUPPORT = "support@desk.example"  # a tenant's support address, and the mailbox's user
DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "mb:secret/1"  # a colon and a slash: the URL must quote them
CONFIG = """
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
log_path = {root}/log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@pytest.fixture
def dovecot():
    if not Path(DOVECOT).exists() or os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI must run the IMAP test, and dovecot (dovecot-imapd) is not installed")
        pytest.skip("needs Debian's dovecot-imapd, run as root")
    # Its own folder under /tmp, readable by the unprivileged user the mail processes run
    # as (pytest's folders are private to root).
    root = Path(tempfile.mkdtemp(prefix="ledgerdesk-dovecot-"))
    root.chmod(0o755)
    (root / "mail").mkdir()
    (root / "mail").chmod(0o777)
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(CONFIG.format(root=root, port=port, password=PASSWORD))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(10)
    shutil.rmtree(root, ignore_errors=True)


def mailbox_client(port: int) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(SUPPORT, PASSWORD)
    client.select("INBOX")
    return client


def put(port: int, message: EmailMessage | bytes) -> None:
    with mailbox_client(port) as client:
        client.append("INBOX", None, None, message if isinstance(message, bytes) else bytes(message))


def unread(port: int) -> list[bytes]:
    with mailbox_client(port) as client:
        return client.uid("SEARCH", None, "UNSEEN")[1][0].split()
