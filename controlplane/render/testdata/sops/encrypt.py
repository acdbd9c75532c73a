#!/usr/bin/env python3
"""Writes a SOPS-encrypted file as SOPS 3 does, for gitfleet's tests.

usage: encrypt.py RECIPIENT IN OUT [--encrypted-regex=R] [--unencrypted-suffix=S]
                  [--mac-only-encrypted] [--json | --dotenv | --binary]
                  [--key-groups=RECIPIENT,... [--shamir-threshold=N]]

With --key-groups the data key is split across key groups, one for RECIPIENT and one for
each recipient listed, with Shamir's secret sharing as SOPS splits it (HashiCorp Vault's
scheme: GF(2^8) modulo x^8+x^4+x^3+x+1, random distinct points 1-255, each share its values
followed by its point), any N of which (default: all) give it back (YAML only).

IN is YAML, or with --dotenv KEY=VALUE lines, or with --binary any bytes (kept as the one
value "data", as SOPS keeps a binary file).

The data key goes to the age command (age -r RECIPIENT -a); values are encrypted with
AES-256-GCM (32-byte IVs) bound to their key path, and the MAC is SHA-512 over the values
in order, as SOPS's Tree.Encrypt computes it. Only what the tests need: maps, lists,
strings, ints, floats that print without an exponent, booleans and nulls.
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAC_ONLY_INIT = hashlib.sha256(b"sops").digest()


def to_bytes(value):
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode()


def type_of(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def gf_multiply(a, b):
    out = 0
    for _ in range(8):
        if b & 1:
            out ^= a
        carry = a & 0x80
        a = (a << 1) & 0xFF
        if carry:
            a ^= 0x1B
        b >>= 1
    return out


def shamir_split(secret, parts, threshold):
    """Vault's shamir.Split: a random polynomial of degree threshold-1 per byte."""
    xs = list(range(1, 256))
    for i in range(len(xs) - 1, 0, -1):  # Fisher-Yates, from os.urandom
        j = int.from_bytes(os.urandom(2), "big") % (i + 1)
        xs[i], xs[j] = xs[j], xs[i]
    xs = xs[:parts]
    shares = [bytearray() for _ in range(parts)]
    for byte in secret:
        coefficients = [byte] + list(os.urandom(threshold - 1))
        for share, x in zip(shares, xs):
            value = 0
            for c in reversed(coefficients):  # Horner
                value = gf_multiply(value, x) ^ c
            share.append(value)
    for share, x in zip(shares, xs):
        share.append(x)
    return [bytes(s) for s in shares]


def main():
    recipient, src, out = sys.argv[1:4]
    options = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[4:])
    regex = options.get("--encrypted-regex")
    suffix = options.get("--unencrypted-suffix", "_unencrypted")
    mac_only = "--mac-only-encrypted" in options
    key = os.urandom(32)
    hashed = bytearray(MAC_ONLY_INIT if mac_only else b"")

    def encrypted(path):
        result = True
        if suffix and any(k.endswith(suffix) for k in path):
            result = False
        if regex is not None:
            result = any(re.search(regex, k) for k in path)
        return result

    def encrypt(value, path):
        data = to_bytes(value)
        iv = os.urandom(32)
        sealed = AESGCM(key).encrypt(iv, data, (":".join(path) + ":").encode())
        b64 = lambda b: base64.b64encode(b).decode()
        return "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:%s]" % (
            b64(sealed[:-16]), b64(iv), b64(sealed[-16:]), type_of(value))

    def walk(node, path):
        if isinstance(node, dict):
            return {k: walk(v, path + [str(k)]) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]
        if node is None:
            return None
        enc = encrypted(path)
        if not mac_only or enc:
            hashed.extend(to_bytes(node))
        if enc and node != "":
            return encrypt(node, path)
        return node

    if "--dotenv" in options:
        with open(src) as f:
            docs = [dict(l.split("=", 1) for l in f.read().splitlines() if l and l[0] != "#")]
    elif "--binary" in options:
        with open(src) as f:
            docs = [{"data": f.read()}]
    else:
        with open(src) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    if "--json" in options:
        docs = docs[:1]  # a JSON file is one document
    docs = [walk(d, []) for d in docs]
    armored = subprocess.run(["age", "-r", recipient, "-a"], input=key, capture_output=True,
                             check=True).stdout.decode()
    lastmodified = "2026-12-04T06:00:00Z"
    mac_iv = os.urandom(32)
    mac_plain = hashlib.sha512(bytes(hashed)).hexdigest().upper().encode()
    sealed = AESGCM(key).encrypt(mac_iv, mac_plain, lastmodified.encode())
    mac = "ENC[AES256_GCM,data:%s,iv:%s,tag:%s,type:str]" % (
        base64.b64encode(sealed[:-16]).decode(), base64.b64encode(mac_iv).decode(),
        base64.b64encode(sealed[-16:]).decode())
    meta = {"age": [{"recipient": recipient, "enc": armored}], "lastmodified": lastmodified,
            "mac": mac}
    if "--key-groups" in options:
        recipients = [recipient] + options["--key-groups"].split(",")
        threshold = int(options.get("--shamir-threshold", len(recipients)))
        shares = shamir_split(key, len(recipients), threshold)
        groups = []
        for r, share in zip(recipients, shares):
            enc = subprocess.run(["age", "-r", r, "-a"], input=share, capture_output=True,
                                 check=True).stdout.decode()
            groups.append({"age": [{"recipient": r, "enc": enc}]})
        meta = {"key_groups": groups, "shamir_threshold": threshold,
                "lastmodified": lastmodified, "mac": mac}
    if regex is not None:
        meta["encrypted_regex"] = regex
    elif suffix:
        meta["unencrypted_suffix"] = suffix
    if mac_only:
        meta["mac_only_encrypted"] = True
    meta["version"] = "3.10.2"
    if "--dotenv" in options:
        with open(out, "w") as f:
            for k, v in docs[0].items():
                f.write("%s=%s\n" % (k, v.replace("\n", "\\n")))
            flat = {"age__list_0__map_enc": armored, "age__list_0__map_recipient": recipient}
            flat.update({k: v for k, v in meta.items() if k != "age"})
            for k, v in sorted(flat.items()):
                f.write("sops_%s=%s\n" % (k, str(v).replace("\n", "\\n")))
        return
    for d in docs:
        d["sops"] = meta
    with open(out, "w") as f:
        if "--json" in options or "--binary" in options:
            json.dump(docs[0], f, indent=4)
        else:
            yaml.safe_dump_all(docs, f, sort_keys=False)


if __name__ == "__main__":
    main()
