#!/usr/bin/env python3
"""A chat room with asyncio: every message a client sends goes to all the others.

    python chat_asyncio.py server [PORT]           (default 9002)
    python chat_asyncio.py client NAME [URL]       (type lines; Ctrl-D leaves)
"""

import asyncio
import sys

import wsnative
import wsnative.asyncio as wsa

clients: set = set()


async def room(conn: wsa.Connection) -> None:
    clients.add(conn)
    try:
        async for message in conn:
            for other in list(clients):
                if other is not conn:
                    try:
                        await other.send(message)
                    except wsnative.ConnectionClosed:
                        pass  # that one just left
    finally:
        clients.discard(conn)


async def server(port: int) -> None:
    async with wsa.serve("127.0.0.1", port, room) as srv:
        print(f"chat on ws://127.0.0.1:{srv.port}/", flush=True)
        await srv.serve_forever()


async def client(name: str, url: str) -> None:
    async with wsa.connect(url) as ws:

        async def show() -> None:
            async for message in ws:
                print(message, flush=True)

        printer = asyncio.create_task(show())
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            await ws.send(f"{name}: {line.rstrip()}")
        printer.cancel()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("server", "client"):
        sys.exit(__doc__)
    try:
        if sys.argv[1] == "server":
            asyncio.run(server(int(sys.argv[2]) if len(sys.argv) > 2 else 9002))
        else:
            name = sys.argv[2] if len(sys.argv) > 2 else "anon"
            asyncio.run(client(name, sys.argv[3] if len(sys.argv) > 3 else "ws://127.0.0.1:9002/"))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
