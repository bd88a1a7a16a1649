"""Checks a sealroom SBOM attestation with securesystemslib, nothing of sealroom's.

usage: sbom_attest_check.py ATTESTATION PUBKEY_PEM SUBJECT_SHA256

ATTESTATION is an `<artifact>.sbom.intoto.jsonl` file: one DSSE envelope a line. For every line:
the envelope verifies with securesystemslib against the public key (its keyid taken from the
first signature, as a verifier that trusts that key would); the payload is an in-toto
Statement v1 whose predicateType is CycloneDX's or SPDX's; its subject has sha256
SUBJECT_SHA256; and its predicate is the same JSON as the document next to the attestation
(`<artifact>.cdx.json` or `<artifact>.spdx.json`). Prints `ok LINE FORMAT` per line, or
`FAIL line N: why`; exits 1 when any line fails or there is none.
"""
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

SUFFIX = ".sbom.intoto.jsonl"
FORMATS = {
    "https://cyclonedx.org/bom": ".cdx.json",
    "https://spdx.dev/Document": ".spdx.json",
}


def check(line, public, subject, base):
    envelope = json.loads(line)
    keyid = envelope["signatures"][0]["keyid"] if envelope.get("signatures") else "none"
    key = SSlibKey.from_crypto(public, keyid=keyid)
    parsed = Envelope.from_dict(envelope)
    try:
        parsed.verify([key], 1)
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return None, f"securesystemslib: {type(error).__name__}: {error}"
    statement = json.loads(parsed.payload)
    if statement.get("_type") != "https://in-toto.io/Statement/v1":
        return None, f"_type is {statement.get('_type')!r}"
    suffix = FORMATS.get(statement.get("predicateType"))
    if suffix is None:
        return None, f"predicateType is {statement.get('predicateType')!r}"
    digests = [s.get("digest", {}).get("sha256") for s in statement.get("subject") or []]
    if subject not in digests:
        return None, f"subject sha256 {digests}, expected {subject}"
    with open(base + suffix, "rb") as f:
        document = json.load(f)
    if statement.get("predicate") != document:
        return None, f"the predicate is not the document {base + suffix}"
    return suffix, None


def main() -> int:
    path, public_path, subject = sys.argv[1], sys.argv[2], sys.argv[3]
    if not path.endswith(SUFFIX):
        print(f"FAIL {path}: expected a file ending in {SUFFIX}")
        return 1
    base = path[: -len(SUFFIX)]
    with open(public_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    with open(path, encoding="utf-8") as f:
        lines = [(n, l) for n, l in enumerate(f, 1) if l.strip()]
    if not lines:
        print(f"FAIL {path}: no envelope")
        return 1
    failed = 0
    for number, line in lines:
        suffix, why = check(line, public, subject, base)
        if why:
            failed += 1
            print(f"FAIL line {number}: {why}")
        else:
            print(f"ok {number} {suffix}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
