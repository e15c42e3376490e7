"""A hand-made WebSocket server for wsncat's tests (standard library only), one connection:
  headers  sends the request's head back as one text message, then closes cleanly with 1000;
  code     closes cleanly with 4000 "custom";
  drop     closes the TCP connection without a Close frame.
Prints "port N" on stdout once it listens; exits after the connection (60 s at most)."""

import base64
import hashlib
import socket
import struct
import sys

mode = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
srv.settimeout(60)
print("port", srv.getsockname()[1], flush=True)
c, _ = srv.accept()
c.settimeout(30)
head = b""
while b"\r\n\r\n" not in head:
    chunk = c.recv(4096)
    if not chunk:
        sys.exit(1)
    head += chunk
text = head.split(b"\r\n\r\n")[0].decode()
key = next(line.split(":", 1)[1].strip() for line in text.split("\r\n") if line.lower().startswith("sec-websocket-key:"))
accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
proto = next((line.split(":", 1)[1].split(",")[0].strip() for line in text.split("\r\n")
              if line.lower().startswith("sec-websocket-protocol:")), None)
resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
resp += f"Sec-WebSocket-Accept: {accept}\r\n"
if proto:
    resp += f"Sec-WebSocket-Protocol: {proto}\r\n"
c.sendall((resp + "\r\n").encode())


def frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes([0x80 | opcode, n]) + payload
    return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload


if mode == "drop":
    c.close()
    sys.exit(0)
if mode == "headers":
    c.sendall(frame(1, text.encode()))
    close = struct.pack("!H", 1000)
else:
    close = struct.pack("!H", 4000) + b"custom"
c.sendall(frame(8, close))
# Wait for the client's Close (or its end), then end the TCP connection.
try:
    while c.recv(4096):
        pass
except OSError:
    pass
c.close()
