"""Finding a cluster's replicas by domain name: ``dns://DOMAIN[@server[:port]]``.

A minimal stub resolver, standard library only: it asks SRV at
``_concoord._tcp.DOMAIN`` (targets' addresses from the additional section, else A
and AAAA queries), then falls back to A and AAAA at DOMAIN with the default replica
port 14000. IPv6 addresses come out as ``[ip]:port``. The server is the one named
after ``@``, else the first ``nameserver`` of /etc/resolv.conf. It is not a general
resolver: no cache, no search list, no DNSSEC.
"""

import ipaddress
import os
import socket
import struct
import threading

from .exception import BadAddress

SCHEME = "dns://"
DEFAULT_REPLICA_PORT = 14000
TYPE_A, TYPE_AAAA, TYPE_SRV = 1, 28, 33
ADDRESS_TYPES = (TYPE_A, TYPE_AAAA)
_rotation = {}
_rotation_lock = threading.Lock()


def is_dns(entry):
    return entry.strip().startswith(SCHEME)


def parse_url(entry):
    """``(domain, (server_ip, port) or None)`` of a ``dns://`` entry; raises
    ``BadAddress`` with what to write instead."""
    rest = entry.strip()[len(SCHEME):]
    domain, _, server = rest.partition("@")
    domain = domain.rstrip(".").lower()
    labels = domain.split(".")
    if not domain or any(not 0 < len(label) < 64 for label in labels) or len(domain) > 253:
        raise BadAddress("%r: not a valid domain name (write dns://DOMAIN[@server[:port]])" % entry)
    if not server:
        return domain, None
    host, port = server, 53
    if server.startswith("["):
        host, _, tail = server[1:].partition("]")
        if tail:
            port = tail.lstrip(":")
    elif server.count(":") == 1:
        host, port = server.split(":")
    try:
        ipaddress.ip_address(host)
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise BadAddress("%r: the server must be an IP address with an optional :port" % entry)
    return domain, (host, port)


def _system_server():
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return parts[1], 53
    except OSError:
        pass
    raise OSError("no name server to ask: /etc/resolv.conf names none; write dns://DOMAIN@server")


def _encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        data = label.encode("ascii")
        out += bytes([len(data)]) + data
    return out + b"\0"


def _read_name(packet, at):
    """The name at ``at`` (following compression pointers) and the offset after it."""
    labels, end, jumps = [], None, 0
    while True:
        length = packet[at]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = at + 2
            at = ((length & 0x3F) << 8) | packet[at + 1]
            jumps += 1
            if jumps > 64:
                raise ValueError("a compression loop")
            continue
        at += 1
        if length == 0:
            return ".".join(labels).lower(), end if end is not None else at
        labels.append(packet[at:at + length].decode("ascii", "replace"))
        at += length


def _exchange(server, packet, timeout):
    qid = packet[:2]
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout / 2)
        for _ in range(2):
            sock.sendto(packet, server)
            try:
                while True:
                    reply, source = sock.recvfrom(65535)
                    if reply[:2] == qid and len(reply) >= 12 and reply[2] & 0x80:
                        break
            except socket.timeout:
                continue
            if not reply[2] & 0x02:
                return reply
            # Truncated: ask again over TCP.
            with socket.create_connection(server, timeout=timeout) as tcp:
                tcp.sendall(struct.pack(">H", len(packet)) + packet)
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
                    chunk = tcp.recv(65535)
                    if not chunk:
                        raise OSError("the name server closed the TCP connection")
                    data += chunk
                return data[2:2 + struct.unpack(">H", data[:2])[0]]
    raise OSError("no answer from the name server %s:%d" % server)


def query(server, name, qtype, timeout=1.5):
    """The answer and additional records of one query, as lists of
    ``(name, type, data)`` with data an IP string (A, AAAA) or ``(priority,
    weight, port, target)`` (SRV); other types are skipped."""
    qid = os.urandom(2)
    packet = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    packet += _encode_name(name) + struct.pack(">HH", qtype, 1)
    reply = _exchange(server, packet, timeout)
    try:
        rcode = reply[3] & 0x0F
        if rcode not in (0, 3):
            raise OSError("the name server answered %s %d with rcode %d" % (name, qtype, rcode))
        qd, an, ns, ar = struct.unpack(">HHHH", reply[4:12])
        at = 12
        for _ in range(qd):
            _, at = _read_name(reply, at)
            at += 4
        sections = []
        for _ in range(an + ns + ar):
            owner, at = _read_name(reply, at)
            rtype, _, _, length = struct.unpack(">HHIH", reply[at:at + 10])
            at += 10
            data = reply[at:at + length]
            if rtype == TYPE_A and length == 4:
                sections.append((owner, rtype, socket.inet_ntoa(data)))
            elif rtype == TYPE_AAAA and length == 16:
                sections.append((owner, rtype, socket.inet_ntop(socket.AF_INET6, data)))
            elif rtype == TYPE_SRV and length > 6:
                priority, weight, port = struct.unpack(">HHH", data[:6])
                target, _ = _read_name(reply, at + 6)
                sections.append((owner, rtype, (priority, weight, port, target)))
            else:
                sections.append(None)
            at += length
    except (IndexError, struct.error, ValueError) as e:
        raise OSError("a malformed answer from the name server: %s" % e)
    return [r for r in sections[:an] if r], [r for r in sections[an + ns:] if r]


def _addresses(server, name, timeout):
    """The A and then the AAAA addresses of ``name``."""
    ips = []
    for qtype in ADDRESS_TYPES:
        ips += [d for _, t, d in query(server, name, qtype, timeout)[0] if t == qtype]
    return ips


def _host_port(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def resolve(entry, timeout=1.5):
    """The replicas of a ``dns://`` entry as ``host:port`` strings (``[ip]:port``
    for IPv6), SRV priority order."""
    domain, server = parse_url(entry)
    server = server or _system_server()
    answers, additionals = query(server, "_concoord._tcp." + domain, TYPE_SRV, timeout)
    srvs = sorted((d for _, t, d in answers if t == TYPE_SRV), key=lambda s: (s[0], -s[1]))
    out = []
    for _, _, port, target in srvs:
        ips = [d for n, t, d in additionals if t in ADDRESS_TYPES and n == target]
        if not ips:
            ips = _addresses(server, target, timeout)
        for host in ips or [target]:
            addr = _host_port(host, port)
            if addr not in out:
                out.append(addr)
    if not out:
        for ip in _addresses(server, domain, timeout):
            addr = _host_port(ip, DEFAULT_REPLICA_PORT)
            if addr not in out:
                out.append(addr)
    if not out:
        raise OSError("%s has neither SRV records at _concoord._tcp nor A/AAAA records" % domain)
    return out


def pick(entry, timeout=1.5):
    """A ``host:port`` for one connection attempt to a ``dns://`` entry: looked up
    again on every attempt (so a failover sees the current members), and the next
    replica each time, so that repeated attempts go round them all."""
    addrs = resolve(entry, timeout)
    with _rotation_lock:
        turn = _rotation.get(entry, 0)
        _rotation[entry] = turn + 1
    return addrs[turn % len(addrs)]
