"""Holds N idle TCP connections to 127.0.0.1:PORT, reopening each one the
server closes (request deadline), until killed. Connections come from source
addresses 127.0.0.2, .3, ... 30 each, under the server's per-address limit.
Usage: idle_connections.py PORT N"""
import select
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])


def open_one(i):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i // 30), 0))
    s.connect(("127.0.0.1", port))
    return s


socks = [open_one(i) for i in range(n)]
while True:
    ready, _, _ = select.select(socks, [], [], 1.0)
    for s in ready:
        i = socks.index(s)
        s.close()
        socks[i] = open_one(i)
