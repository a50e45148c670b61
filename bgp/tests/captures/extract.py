#!/usr/bin/env python3
"""Extracts BGP messages from pcap files (Ethernet, IPv4/IPv6, TCP port 179): reassembles each
direction of each connection by sequence number and splits it at BGP message boundaries.
Prints one line per message: `<session>#<connection> <from>-><to> <TYPE> <hex>`."""
import datetime, struct, sys

NAMES = {"10.0.12.1": "frr", "fd00:12::1": "frr", "10.0.13.1": "frr",
         "10.0.12.2": "bird", "fd00:12::2": "bird", "10.0.13.3": "gobgp"}
SESSIONS = {frozenset(["10.0.12.1", "10.0.12.2"]): "frr-bird4",
            frozenset(["fd00:12::1", "fd00:12::2"]): "frr-bird6",
            frozenset(["10.0.13.1", "10.0.13.3"]): "frr-gobgp"}
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}

def ip6(b):
    import ipaddress
    return str(ipaddress.IPv6Address(b))

def packets(path):
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: linktype {linktype}, expected Ethernet"
    off = 24
    while off + 16 <= len(data):
        ts, tsu, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        yield ts + tsu / 1e6, data[off:off + incl]
        off += incl

def tcp_segments(path):
    for ts, frame in packets(path):
        etype = struct.unpack(">H", frame[12:14])[0]
        p = frame[14:]
        if etype == 0x0800:
            ihl = (p[0] & 0xF) * 4
            if p[9] != 6:
                continue
            src, dst = ".".join(map(str, p[12:16])), ".".join(map(str, p[16:20]))
            total = struct.unpack(">H", p[2:4])[0]
            t = p[ihl:total]
        elif etype == 0x86DD:
            if p[6] != 6:
                continue
            src, dst = ip6(p[8:24]), ip6(p[24:40])
            plen = struct.unpack(">H", p[4:6])[0]
            t = p[40:40 + plen]
        else:
            continue
        sport, dport, seq = struct.unpack(">HHI", t[:8])
        doff = (t[12] >> 4) * 4
        flags = t[13]
        payload = t[doff:]
        yield ts, (src, sport, dst, dport), seq, flags, payload

def main(paths):
    streams = {}
    for path in paths:
        for ts, key, seq, flags, payload in tcp_segments(path):
            s = streams.setdefault(key, {"isn": None, "segs": {}, "first": ts})
            if flags & 0x02:  # SYN
                s["isn"] = seq + 1
            if payload:
                s["segs"].setdefault(seq, (ts, payload))
    # Number each TCP connection of a session in the order it started.
    conns = {}
    for (src, sport, dst, dport), s in sorted(streams.items(), key=lambda kv: kv[1]["first"]):
        conn = frozenset([(src, sport), (dst, dport)])
        session = SESSIONS[frozenset([src, dst])]
        if conn not in conns:
            conns[conn] = f"{session}#{sum(1 for c in conns.values() if c.startswith(session)) + 1}"
    out = []
    for (src, sport, dst, dport), s in streams.items():
        if not s["segs"]:
            continue
        segs = sorted(s["segs"].items(), key=lambda kv: (kv[0] - (s["isn"] or min(s["segs"]))) % 2**32)
        buf, ts0 = b"", None
        expect = None
        for seq, (ts, payload) in segs:
            if expect is not None and seq != expect:
                overlap = (expect - seq) % 2**32
                if overlap < len(payload):
                    payload = payload[overlap:]
                else:
                    continue
            buf += payload
            expect = (seq + len(payload)) % 2**32
            ts0 = ts0 or ts
        i = 0
        while i + 19 <= len(buf):
            length = struct.unpack(">H", buf[i + 16:i + 18])[0]
            msg = buf[i:i + length]
            session = conns[frozenset([(src, sport), (dst, dport)])]
            out.append((ts0, i, session, f"{NAMES[src]}->{NAMES[dst]}", TYPES.get(msg[18], str(msg[18])), msg.hex()))
            i += length
    print("# BGP messages captured by capture.sh between FRR 8.4.4, BIRD 2.0.12 and GoBGP 3.10.0")
    print(f"# on {datetime.date.today()}; one message per line: session#connection, direction, type, bytes.")
    for _, _, session, direction, kind, h in sorted(out, key=lambda r: (r[2], r[3], r[0], r[1])):
        print(session, direction, kind, h)

main(sys.argv[1:])
