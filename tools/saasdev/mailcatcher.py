"""A loopback SMTP server for ./dev run: every mail Odoo sends is kept, none leaves.

Run with the project's virtualenv (it has aiosmtpd)::

    python mailcatcher.py FOLDER PORT

Each message is written to FOLDER as ``<time>-<n>.eml`` and announced on stdout
with its recipients, subject and the links it carries (a sign-up's verification
link, a welcome link), so a developer can follow them in a browser.
"""

import email
import email.policy
import re
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller

LINK_RE = re.compile(r'href="(https?://[^"]+)"')


class Keep:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # the name aiosmtpd calls
        self.count += 1
        path = self.folder / ("%s-%d.eml" % (time.strftime("%Y%m%d-%H%M%S"), self.count))
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(("html", "plain"))
        links = sorted(set(LINK_RE.findall(body.get_content() if body else "")))
        print("[mail] to %s: %s (%s)%s" % (", ".join(envelope.rcpt_tos), message["subject"],
                                             path, "".join("\n[mail]   " + link
                                                           for link in links)), flush=True)
        return "250 OK"


def main(folder, port):
    Path(folder).mkdir(parents=True, exist_ok=True)
    controller = Controller(Keep(folder), hostname="127.0.0.1", port=int(port))
    controller.start()
    print("[mail] listening on 127.0.0.1:%s" % port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        controller.stop()


if __name__ == "__main__":
    main(*sys.argv[1:3])
