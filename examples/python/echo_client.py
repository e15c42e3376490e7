#!/usr/bin/env python3
"""Echo client: sends each argument (or stdin lines) and prints what comes back.

    python echo_client.py [URL] [MESSAGE...]     (default URL ws://127.0.0.1:9001/)
"""

import sys

import wsnative


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:9001/"
    messages = sys.argv[2:] or (line.rstrip("\n") for line in sys.stdin)
    try:
        with wsnative.connect(url, open_timeout=5) as ws:
            for text in messages:
                ws.send(text)
                print(ws.recv(timeout=5))
    except wsnative.HandshakeError as e:
        print(f"refused with HTTP {e.status}: {e}", file=sys.stderr)
        return 1
    except (wsnative.WebSocketError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
