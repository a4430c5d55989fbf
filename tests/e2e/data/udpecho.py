"""A pod's UDP echo server for the proxy tests: replies "<hostname> <payload>" to every datagram.

    python3 udpecho.py PORT
"""

import os
import socket
import sys

name = (os.environ.get("HOSTNAME") or socket.gethostname()).encode()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = sock.recvfrom(2048)
    sock.sendto(name + b" " + data, peer)
