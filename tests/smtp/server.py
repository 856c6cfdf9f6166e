"""A real SMTP server on loopback for the mail tests (aiosmtpd), speaking STARTTLS.

Started by the test harness (tests/api/common/smtp.rs), never by hand:

    python3 tests/smtp/server.py --cert CERT --key KEY --dir MAILDIR [--port N]

It binds 127.0.0.1 (port N, or a free one), prints `LISTENING <port>` on stdout, refuses
MAIL before STARTTLS, writes each received message as `<n>.eml` in MAILDIR (atomically:
written aside, then renamed), and exits when its standard input closes (so it dies with the
test process that started it).
"""

import argparse
import asyncio
import itertools
import os
import socket
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Maildir:
    def __init__(self, folder):
        self.folder = folder
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        name = f"{os.getpid()}-{next(self.counter):05d}.eml"
        partial = os.path.join(self.folder, "." + name + ".partial")
        with open(partial, "wb") as out:
            out.write(envelope.original_content or envelope.content)
        os.rename(partial, os.path.join(self.folder, name))
        return "250 Message accepted for delivery"


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    handler = Maildir(args.dir)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(16)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="localhost",
            tls_context=context,
            require_starttls=True,
        ),
        sock=sock,
    )
    print(f"LISTENING {sock.getsockname()[1]}", flush=True)

    # Exit when the parent closes our stdin (or dies).
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(1024):
        pass
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
