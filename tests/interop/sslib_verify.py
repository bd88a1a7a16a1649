"""Verifies a sealroom DSSE envelope with securesystemslib, nothing of sealroom's.

usage: sslib_verify.py ENVELOPE PUBKEY_PEM [THRESHOLD]

ENVELOPE is an `.intoto.jsonl` file (the envelope on its first non-empty line). The public key
is loaded with `cryptography` and wrapped with `SSlibKey.from_crypto`, its keyid taken from the
first signature as a verifier that trusts that key would. Prints `ok <keyids>` and exits 0 when
securesystemslib accepts the envelope; prints the exception and exits 1 otherwise.
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main() -> int:
    envelope_path, public_path = sys.argv[1], sys.argv[2]
    threshold = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with open(envelope_path, encoding="utf-8") as f:
        line = next(l for l in f if l.strip())
    envelope = json.loads(line)
    with open(public_path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    keyid = envelope["signatures"][0]["keyid"] if envelope["signatures"] else "none"
    key = SSlibKey.from_crypto(public, keyid=keyid)
    try:
        verified = Envelope.from_dict(envelope).verify([key], threshold)
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        print(f"FAIL securesystemslib: {type(error).__name__}: {error}")
        return 1
    print("ok", " ".join(sorted(verified)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
