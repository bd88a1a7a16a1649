"""Reads and rewrites an image's attestations in a registry with plain urllib, nothing of
sealroom's (an anonymous registry on 127.0.0.1, as the tests start it).

usage: registry_attestations.py BASE REPO DIGEST COMMAND [ARGS]
  inspect OUTDIR  writes image-manifest.json, each DSSE layer of the `sha256-<hex>.att` tag
                  (att-<i>.jsonl) and of each referrer the fallback tag `sha256-<hex>` lists
                  (ref-<i>.jsonl); prints a JSON report of both
  resign          replaces every envelope of both schemes by the same payload signed with a
                  fresh P-256 key, and re-points the fallback index to the new referrers
  delete TAG      deletes the manifest tagged TAG (`att` or `fallback`)
  graft           lists, under the image's fallback tag, copies of its referrers whose subject
                  is another manifest (the .att one), and deletes the .att tag
  oversize        rewrites the .att tag: the first layer's size understated, the second
                  claiming 1 TiB; deletes the fallback tag
  foreign         before any push: another writer's .att tag (one unsigned envelope of another
                  predicate type) and fallback index (one referrer of another artifact type);
                  prints both digests
"""
import base64
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

BASE, REPO, DIGEST, COMMAND, REST = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
HEX = DIGEST.split(":", 1)[1]
ATT, FALLBACK = f"sha256-{HEX}.att", f"sha256-{HEX}"
DSSE = "application/vnd.dsse.envelope.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, "application/vnd.docker.distribution.manifest.v2+json"])


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def request(method, path, data=None, headers=None):
    url = path if path.startswith("http") else BASE + path
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def manifest(reference):
    return request("GET", f"/v2/{REPO}/manifests/{reference}", headers={"Accept": ACCEPT})


def blob(digest):
    status, _, data = request("GET", f"/v2/{REPO}/blobs/{digest}")
    if status != 200 or sha(data) != digest:
        raise SystemExit(f"blob {digest}: HTTP {status}")
    return data


def put_blob(data):
    digest = sha(data)
    status, headers, body = request("POST", f"/v2/{REPO}/blobs/uploads/", data=b"")
    if status != 202:
        raise SystemExit(f"upload start: HTTP {status}: {body[:200]!r}")
    location = headers["Location"]
    if not location.startswith("http"):
        location = BASE + location
    location += ("&" if "?" in location else "?") + "digest=" + digest
    status, _, body = request("PUT", location, data=data, headers={"Content-Type": "application/octet-stream"})
    if status != 201:
        raise SystemExit(f"upload {digest}: HTTP {status}: {body[:200]!r}")
    return digest


def put_manifest(reference, data, media_type):
    status, _, body = request("PUT", f"/v2/{REPO}/manifests/{reference}", data=data, headers={"Content-Type": media_type})
    if status != 201:
        raise SystemExit(f"manifest {reference}: HTTP {status}: {body[:300]!r}")


def delete(reference):
    status, _, data = manifest(reference)
    if status != 200:
        raise SystemExit(f"no manifest {reference} to delete: HTTP {status}")
    status, _, body = request("DELETE", f"/v2/{REPO}/manifests/{sha(data)}")
    if status != 202:
        raise SystemExit(f"delete {reference}: HTTP {status}: {body[:200]!r}")


def compact(document):
    return json.dumps(document, separators=(",", ":")).encode()


def inspect(out):
    os.makedirs(out, exist_ok=True)
    report = {"att": None, "fallback": None, "referrers_api": None}
    status, _, data = manifest(DIGEST)
    if status != 200 or sha(data) != DIGEST:
        raise SystemExit(f"image manifest {DIGEST}: HTTP {status}")
    open(os.path.join(out, "image-manifest.json"), "wb").write(data)
    status, _, data = manifest(ATT)
    if status == 200:
        att = json.loads(data)
        config = json.loads(blob(att["config"]["digest"]))
        report["att"] = {"mediaType": att.get("mediaType"), "configMediaType": att["config"]["mediaType"],
                         "diff_ids": config["rootfs"]["diff_ids"], "layers": []}
        for number, layer in enumerate(att["layers"]):
            path = os.path.join(out, f"att-{number}.jsonl")
            open(path, "wb").write(blob(layer["digest"]) + b"\n")
            report["att"]["layers"].append({"digest": layer["digest"], "mediaType": layer["mediaType"],
                                            "annotations": layer.get("annotations", {}), "file": path})
    status, _, _ = request("GET", f"/v2/{REPO}/referrers/{DIGEST}", headers={"Accept": OCI_INDEX})
    report["referrers_api"] = status
    status, _, data = manifest(FALLBACK)
    if status == 200:
        index = json.loads(data)
        report["fallback"] = {"mediaType": index.get("mediaType"), "manifests": []}
        number = 0
        for entry in index["manifests"]:
            status, _, referrer_bytes = manifest(entry["digest"])
            referrer = json.loads(referrer_bytes)
            listed = {"digest": entry["digest"], "artifactType": entry.get("artifactType"),
                      "annotations": entry.get("annotations", {}),
                      "manifestArtifactType": referrer.get("artifactType"),
                      "subject": (referrer.get("subject") or {}).get("digest"),
                      "config": referrer["config"], "files": []}
            for layer in referrer["layers"]:
                path = os.path.join(out, f"ref-{number}.jsonl")
                number += 1
                open(path, "wb").write(blob(layer["digest"]) + b"\n")
                listed["files"].append({"file": path, "mediaType": layer["mediaType"],
                                        "annotations": layer.get("annotations", {})})
            report["fallback"]["manifests"].append(listed)
    print(json.dumps(report))


def resign():
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    der = other.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    keyid = hashlib.sha256(der).hexdigest()
    count = 0

    def resigned_manifest(data):
        nonlocal count
        document = json.loads(data)
        for layer in document["layers"]:
            envelope = json.loads(blob(layer["digest"]))
            payload_type = envelope["payloadType"].encode()
            payload = base64.b64decode(envelope["payload"])
            pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)
            signature = other.sign(pae, ec.ECDSA(hashes.SHA256()))
            envelope["signatures"] = [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}]
            new = compact(envelope)
            layer["digest"], layer["size"] = put_blob(new), len(new)
            count += 1
        return compact(document), document.get("mediaType") or OCI_MANIFEST

    status, _, data = manifest(ATT)
    if status == 200:
        new, media_type = resigned_manifest(data)
        put_blob(compact(json.loads(blob(json.loads(data)["config"]["digest"]))))
        put_manifest(ATT, new, media_type)
    status, _, data = manifest(FALLBACK)
    if status == 200:
        index = json.loads(data)
        for entry in index["manifests"]:
            _, _, referrer = manifest(entry["digest"])
            new, media_type = resigned_manifest(referrer)
            put_manifest(sha(new), new, media_type)
            entry["digest"], entry["size"] = sha(new), len(new)
        put_manifest(FALLBACK, compact(index), OCI_INDEX)
    print(count)


def graft():
    status, _, att = manifest(ATT)
    if status != 200:
        raise SystemExit(f"no {ATT}: HTTP {status}")
    other = {"mediaType": OCI_MANIFEST, "digest": sha(att), "size": len(att)}
    _, _, data = manifest(FALLBACK)
    index = json.loads(data)
    for entry in index["manifests"]:
        _, _, referrer_bytes = manifest(entry["digest"])
        referrer = json.loads(referrer_bytes)
        referrer["subject"] = other
        new = compact(referrer)
        put_manifest(sha(new), new, OCI_MANIFEST)
        entry["digest"], entry["size"] = sha(new), len(new)
    put_manifest(FALLBACK, compact(index), OCI_INDEX)
    delete(ATT)
    print(other["digest"])


def oversize():
    _, _, data = manifest(ATT)
    att = json.loads(data)
    layers = att["layers"]
    if len(layers) < 2:
        raise SystemExit(f"expected two .att layers, found {len(layers)}")
    layers[0]["size"] = 100
    layers[1]["size"] = 1 << 40
    put_manifest(ATT, compact(att), att.get("mediaType") or OCI_MANIFEST)
    delete(FALLBACK)
    print(layers[0]["digest"], layers[1]["digest"])


def foreign():
    statement = {"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://example.com/other/v1",
                 "subject": [{"name": "x", "digest": {"sha256": HEX}}], "predicate": {}}
    envelope = compact({"payloadType": "application/vnd.in-toto+json",
                        "payload": base64.b64encode(compact(statement)).decode(), "signatures": []})
    layer = {"mediaType": DSSE, "digest": put_blob(envelope), "size": len(envelope),
             "annotations": {"predicateType": "https://example.com/other/v1"}}
    config = compact({"architecture": "", "os": "", "config": {}, "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}})
    att = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [layer],
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put_blob(config), "size": len(config)}})
    put_manifest(ATT, att, OCI_MANIFEST)
    empty = put_blob(b"{}")
    artifact = b"other writer"
    referrer = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example+json",
                        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                        "layers": [{"mediaType": "application/vnd.example+json", "digest": put_blob(artifact), "size": len(artifact)}],
                        "subject": {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1}})
    put_manifest(sha(referrer), referrer, OCI_MANIFEST)
    index = compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(referrer), "size": len(referrer), "artifactType": "application/vnd.example+json"}]})
    put_manifest(FALLBACK, index, OCI_INDEX)
    print(layer["digest"], sha(referrer))


if COMMAND == "inspect":
    inspect(REST[0])
elif COMMAND == "resign":
    resign()
elif COMMAND == "delete":
    delete({"att": ATT, "fallback": FALLBACK}[REST[0]])
elif COMMAND == "graft":
    graft()
elif COMMAND == "oversize":
    oversize()
elif COMMAND == "foreign":
    foreign()
else:
    raise SystemExit(f"unknown command {COMMAND}")
