#!/usr/bin/env bash
# The demo: make the Debian gcc base image, build examples/hello-c in it with the network off,
# sign the provenance with a fresh key, show the artifact and its provenance, verify it.
set -euo pipefail
cd "$(dirname "$0")/.."
SEALROOM=${SEALROOM:-target/release/sealroom}
work=target/demo
rm -rf "$work"
mkdir -p "$work"

echo "==> base image (sandbox/debian-gcc/build.sh; the first run takes a few minutes)" >&2
image=$(SEALROOM="$SEALROOM" bash sandbox/debian-gcc/build.sh | tail -n 1)
echo "    $image" >&2

echo "==> the example, pinned to that image" >&2
cp -r examples/hello-c "$work/hello-c"
sed -i "s|^image = .*|image = \"$image\"|" "$work/hello-c/sealroom.toml"

echo "==> a fresh signing key" >&2
"$SEALROOM" keygen --algorithm ecdsa-p256 --out "$work/demo-key" >/dev/null

echo "==> sealroom build" >&2
"$SEALROOM" build "$work/hello-c/sealroom.toml" --out "$work/out" --key "$work/demo-key.key"

echo "==> the artifact" >&2
ls -l "$work/out/bin/hello"
sha256sum "$work/out/bin/hello"
"$work/out/bin/hello"

echo "==> its provenance ($work/out/bin/hello.intoto.jsonl), payload decoded" >&2
python3 - "$work/out/bin/hello.intoto.jsonl" <<'PY'
import base64, json, sys
envelope = json.loads(open(sys.argv[1]).readline())
print("payloadType:", envelope["payloadType"])
print("signatures:", [s["keyid"] for s in envelope["signatures"]])
print(json.dumps(json.loads(base64.b64decode(envelope["payload"])), indent=2))
PY

echo "==> its SBOM ($work/out/bin/hello.cdx.json): what reached it" >&2
python3 - "$work/out/bin/hello.cdx.json" <<'PY'
import json, sys
bom = json.load(open(sys.argv[1]))
print("describes:", bom["metadata"]["component"]["name"], bom["metadata"]["component"]["hashes"][0]["content"])
for component in bom["components"]:
    print(f'  {component["type"]:>16}  {component["bom-ref"]}')
PY

echo "==> sealroom verify (provenance and SBOM attestation)" >&2
"$SEALROOM" verify "$work/out/bin/hello" --provenance "$work/out/bin/hello.intoto.jsonl" --key "$work/demo-key.pub" \
  --sbom "$work/out/bin/hello.sbom.intoto.jsonl"
