"""Parses a sealroom Sigstore bundle with sigstore-protobuf-specs and checks its signature.

usage: bundle_parse.py BUNDLE PUBKEY_PEM

Loads BUNDLE with `dev.sigstore.bundle.v1.Bundle.from_dict` (as sigstore-python does), checks that nothing was dropped
(the parsed message serializes back to the same JSON), that the media type is v0.3, that the
verification material is a public key hint with no tlog entries, and that the DSSE signature
verifies over the PAE with `cryptography`. Prints one line per check.
"""
import json
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore_protobuf_specs.dev.sigstore.bundle.v1 import Bundle

failures = []


def check(name, ok, detail=""):
    print("ok  " if ok else "FAIL", name, "" if ok else detail)
    if not ok:
        failures.append(name)


def without_empty(value):
    """`value` without empty lists and objects, which protobuf's JSON form leaves out."""
    if isinstance(value, dict):
        pruned = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ([], {})}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    original = json.loads(text)
    bundle = Bundle.from_dict(original)
    back = bundle.to_dict()
    check("parses without dropping fields", without_empty(back) == without_empty(original),
          f"parsed back as {json.dumps(back)[:400]}")
    check("mediaType v0.3", bundle.media_type == "application/vnd.dev.sigstore.bundle.v0.3+json",
          bundle.media_type)
    hint = bundle.verification_material.public_key.hint
    check("public key hint", len(hint) == 64, repr(hint))
    check("no tlog entries", len(bundle.verification_material.tlog_entries) == 0)
    dsse = bundle.dsse_envelope
    check("dsse content", bool(dsse.payload) and bool(dsse.signatures), str(dsse)[:200])
    with open(sys.argv[2], "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    ptype = dsse.payload_type.encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(dsse.payload), dsse.payload)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(dsse.signatures[0].sig, pae, ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(dsse.signatures[0].sig, pae)
        check("signature verifies over the PAE", True)
    except Exception as error:  # noqa: BLE001
        check("signature verifies over the PAE", False, f"{type(error).__name__}: {error}")
    check("signature keyid is the hint", dsse.signatures[0].keyid == hint, dsse.signatures[0].keyid)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
