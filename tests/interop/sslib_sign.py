"""Signs a payload with securesystemslib, for sealroom to verify (the other direction).

usage: sslib_sign.py PRIVATE_KEY_PEM PAYLOAD_FILE PAYLOAD_TYPE OUT

Writes a DSSE envelope made by securesystemslib's `Envelope.sign` with a `CryptoSigner` as one
JSON line to OUT. The key must be unencrypted PKCS#8 PEM (ECDSA P-256 or Ed25519).
"""
import json
import sys

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner


def main() -> int:
    key_path, payload_path, payload_type, out_path = sys.argv[1:5]
    with open(key_path, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    with open(payload_path, "rb") as f:
        payload = f.read()
    envelope = Envelope(payload=payload, payload_type=payload_type, signatures={})
    envelope.sign(CryptoSigner(private))
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(envelope.to_dict()) + "\n")
    print("ok", out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
