#!/usr/bin/env python3
"""Echo server: sends every message back as it came.

    python echo_server.py [PORT]        (default 9001, listens on 127.0.0.1; Ctrl-C stops it)
"""

import sys

import wsnative


def echo(conn: wsnative.Connection) -> None:
    # One thread per connection; iteration ends when the client closes normally.
    for message in conn:
        conn.send(message)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    with wsnative.serve("127.0.0.1", port, echo) as server:
        print(f"echo server on ws://127.0.0.1:{server.port}/ (Ctrl-C to stop)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass  # leaving the block closes every connection with 1001


if __name__ == "__main__":
    main()
