#!/usr/bin/env python3
"""audit-verify.py — a second, independent verifier of a phifs integrity log.

Written from docs/AUDIT.md alone (no code shared with phifsctl), with
Python's standard library and python3-cryptography (Debian) for Ed25519.
Usage: audit-verify.py [--pubkey FILE] [--anchor FILE] DIR

Exit codes as `phifsctl audit verify`: 0 intact and sealed, 3 intact with
unsealed records at the end, 1 a fault (printed as "DIR/SEGMENT line N:
reason" on stderr), 2 bad usage.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import struct
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

OPS = ["mount", "unmount", "open", "read", "write", "create", "unlink",
       "rename", "mkdir", "rmdir", "link", "symlink", "truncate", "setattr",
       "deny", "integrity-error", "policy-reload", "key-rotate", "recovery",
       "checkpoint", "gap"]
# (field, kind, ops that carry it or None for all), in the canonical order.
FIELDS = [
    ("seq", "seq", None), ("ts", "ts", None), ("op", "op", None),
    ("uid", "u32", None), ("gid", "u32", None), ("pid", "i32", None),
    ("comm", "comm", None), ("path", "bytes", None),
    ("path2", "bytes", {"rename", "link", "symlink"}),
    ("req", "op", {"deny"}), ("rule", "bytes", {"deny"}),
    ("off", "u63", {"read", "write", "truncate"}),
    ("len", "u63", {"read", "write", "gap"}), ("sha256", "hex32", {"read", "write"}),
    ("block", "u63", {"integrity-error"}), ("version", "u32", {"key-rotate"}),
    ("result", "i64", None), ("sig", "hex64", {"checkpoint"}),
    ("prev", "hex32", None), ("hash", "hex32", None),
]
BYTE_FIELDS = {"comm", "path", "path2", "rule"}
SEG_RE = re.compile(rb"^seg-([0-9]{20})\.jsonl$")
HASH_KEY = b',"hash":"'
ZERO = bytes(32)


class Fault(Exception):
    pass


def esc(s):
    """A string as docs/AUDIT.md escapes it (upper-case \\u00XX)."""
    out = ['"']
    named = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f',
             '\n': '\\n', '\r': '\\r', '\t': '\\t'}
    for ch in s:
        if ch in named:
            out.append(named[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def is_int(v, lo, hi):
    return type(v) is int and lo <= v <= hi


def is_hex(v, n):
    return isinstance(v, str) and re.fullmatch("[0-9a-f]{%d}" % (2 * n), v)


def take_bytes(obj, name):
    """The field's bytes, plain or _b64, and how it was spelled."""
    if name in obj and name + "_b64" in obj:
        raise Fault("field '%s' twice" % name)
    if name in obj:
        v = obj[name]
        if not isinstance(v, str):
            raise Fault("bad value of field '%s'" % name)
        b = v.encode("utf-8", "surrogatepass")
    elif name + "_b64" in obj:
        v = obj[name + "_b64"]
        try:
            b = base64.b64decode(v, validate=True)
        except Exception:
            raise Fault("bad value of field '%s_b64'" % name)
    else:
        raise Fault("a field is missing")
    if b"\0" in b:
        raise Fault("bad value of field '%s'" % name)
    return b


def spell_bytes(name, b):
    try:
        s = b.decode("utf-8")	# strict: no surrogates, shortest form
        return '"%s":%s' % (name, esc(s))
    except UnicodeDecodeError:
        return '"%s_b64":"%s"' % (name, base64.b64encode(b).decode())


def check_value(kind, name, v):
    ok = {
        "seq": lambda: is_int(v, 1, 2**63 - 1),
        "u32": lambda: is_int(v, 0, 2**32 - 1),
        "i32": lambda: is_int(v, -2**31, 2**31 - 1),
        "u63": lambda: is_int(v, 0, 2**63 - 1),
        "i64": lambda: is_int(v, -2**63, 2**63 - 1),
        "op": lambda: v in OPS,
        "hex32": lambda: is_hex(v, 32),
        "hex64": lambda: is_hex(v, 64),
        "ts": lambda: isinstance(v, str) and re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", v) and valid_ts(v),
    }[kind]()
    if not ok:
        raise Fault("bad value of field '%s'" % name)


def valid_ts(v):
    try:
        time.strptime(v[:19], "%Y-%m-%dT%H:%M:%S")
        return v[17:19] != "60"
    except ValueError:
        return False


def no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Fault("not a JSON object")
        d[k] = v
    return d


def parse(line):
    """One line without its newline: the record as a dict, checked."""
    if len(line) > 65536 or b"\0" in line:
        raise Fault("not a JSON object")
    try:
        obj = json.loads(line.decode("utf-8"), object_pairs_hook=no_dups,
                         parse_constant=lambda c: 1 / 0)
    except Fault:
        raise
    except Exception:
        raise Fault("not a JSON object")
    if not isinstance(obj, dict):
        raise Fault("not a JSON object")
    op = obj.get("op")
    if op not in OPS:
        raise Fault("no known op")
    want = [f for f in FIELDS if f[2] is None or op in f[2]]
    names = {f[0] for f in want}
    for k in obj:
        base = k[:-4] if k.endswith("_b64") and k[:-4] in BYTE_FIELDS else k
        if base not in names:
            raise Fault("unknown field for op %s" % op)
    rec, parts = {}, []
    for name, kind, _ in want:
        if kind in ("bytes", "comm"):
            b = take_bytes(obj, name)
            if kind == "comm" and len(b) >= 16:
                raise Fault("bad value of field 'comm'")
            rec[name] = b
            parts.append(spell_bytes(name, b))
            continue
        if name not in obj:
            raise Fault("a field of op %s is missing" % op)
        check_value(kind, name, obj[name])
        rec[name] = obj[name]
        v = obj[name]
        parts.append('"%s":%s' % (name, esc(v) if isinstance(v, str)
                                  else str(v)))
    canon = ("{" + ",".join(parts) + "}").encode()
    if canon != line:
        raise Fault("not in canonical form")
    body = line[:line.rfind(HASH_KEY)]
    if hashlib.sha256(body).hexdigest() != rec["hash"]:
        raise Fault("bad hash")
    return rec


def sig_ok(pub, rec):
    msg = (b"phifs-audit-checkpoint-1" + struct.pack(">Q", rec["seq"]) +
           bytes.fromhex(rec["prev"]))
    try:
        pub.verify(bytes.fromhex(rec["sig"]), msg)
        return True
    except InvalidSignature:
        return False


def read_pub(path):
    with open(path, "rb") as f:
        t = f.read()
    if t.endswith(b"\n"):
        t = t[:-1]
    m = re.fullmatch(rb"ed25519 ([0-9a-f]{64})", t)
    if not m:
        raise Fault("%s: not an audit key" % path)
    return bytes.fromhex(m.group(1).decode())


def load_key(args):
    beside = os.path.join(args.dir, "audit.pub")
    if not args.pubkey:
        return read_pub(beside)
    pub = read_pub(args.pubkey)
    if os.path.exists(beside) and read_pub(beside) != pub:
        raise Fault("%s: not the key --pubkey pins: replaced?" % beside)
    return pub


def verify(args):
    raw = load_key(args)
    pub = Ed25519PublicKey.from_public_bytes(raw)
    anchor = None
    if args.anchor:
        with open(args.anchor, "rb") as f:
            a = f.read()
        try:
            anchor = parse(a[:-1] if a.endswith(b"\n") else a)
        except Fault as e:
            raise Fault("anchor: %s" % e)
        if anchor["op"] != "checkpoint":
            raise Fault("anchor: not a checkpoint")
        if not sig_ok(pub, anchor):
            raise Fault("anchor: bad signature")
    names = sorted(n for n in os.listdir(os.fsencode(args.dir))
                   if SEG_RE.match(n))
    if not names:
        raise Fault("no segments")
    seq, head, sealed, ckpts, anchored = 0, ZERO, 0, 0, False
    for name in names:
        where = os.path.join(args.dir, os.fsdecode(name))
        if int(SEG_RE.match(name).group(1)) != seq + 1:
            raise Fault("%s line 0: gap in sequence" % where)
        with open(os.path.join(os.fsencode(args.dir), name), "rb") as f:
            data = f.read()
        if not data:
            raise Fault("%s line 0: empty segment" % where)
        lines = data.split(b"\n")
        for i, line in enumerate(lines[:-1], 1):
            try:
                rec = parse(line)
                if rec["seq"] != seq + 1:
                    raise Fault("gap in sequence")
                if bytes.fromhex(rec["prev"]) != head:
                    raise Fault("bad link")
                if rec["op"] == "checkpoint":
                    if not sig_ok(pub, rec):
                        raise Fault("bad signature")
                    sealed, ckpts = rec["seq"], ckpts + 1
                if anchor and rec["seq"] == anchor["seq"]:
                    if rec["hash"] != anchor["hash"]:
                        raise Fault("history rewritten")
                    anchored = True
            except Fault as e:
                raise Fault("%s line %d: %s" % (where, i, e))
            seq, head = rec["seq"], bytes.fromhex(rec["hash"])
        if lines[-1]:
            raise Fault("%s line %d: truncated segment" % (where, len(lines)))
    if anchor and not anchored:
        raise Fault("%s line 0: its tail was cut" %
                    os.path.join(args.dir, os.fsdecode(names[-1])))
    return seq, ckpts, sealed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pubkey")
    ap.add_argument("--anchor")
    ap.add_argument("dir")
    args = ap.parse_args()
    try:
        last, ckpts, sealed = verify(args)
    except (Fault, OSError) as e:
        print("audit-verify: %s" % e, file=sys.stderr)
        return 1
    print("intact: %d records, %d checkpoint(s)" % (last, ckpts))
    if last > sealed:
        print("UNSEALED: %d record(s) after seq %d" % (last - sealed, sealed))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
