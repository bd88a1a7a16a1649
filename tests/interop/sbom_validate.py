"""Validates SBOM files with the independent tools, nothing of sealroom's.

usage: sbom_validate.py FILE...

Each FILE is a CycloneDX or an SPDX JSON document (told apart by `bomFormat` / `spdxVersion`):
- CycloneDX: cyclonedx-python-lib's JsonStrictValidator(SchemaVersion.V1_6);
- SPDX: spdx-tools parses it and validate_full_spdx_document (what `pyspdxtools -i` runs) finds
  no error;
- every purl in it (CycloneDX `purl`, SPDX externalRefs of type purl) parses with
  packageurl-python.
Prints `ok FILE (N purls)` or `FAIL FILE: why` per file; exits 1 when any file fails.
"""
import json
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def purls(document):
    found = []
    if document.get("bomFormat") == "CycloneDX":
        def walk(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    if key == "purl" and isinstance(item, str):
                        found.append(item)
                    else:
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
        walk(document)
    else:
        for package in document.get("packages") or []:
            for ref in package.get("externalRefs") or []:
                if ref.get("referenceType") == "purl":
                    found.append(ref.get("referenceLocator", ""))
    return found


def problems(path):
    with open(path, "rb") as f:
        raw = f.read()
    document = json.loads(raw)
    if document.get("bomFormat") == "CycloneDX":
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(raw.decode("utf-8"))
        if error is not None:
            return [f"CycloneDX 1.6 schema: {error}"], 0
    elif "spdxVersion" in document:
        try:
            parsed = parse_file(path)
        except Exception as error:  # noqa: BLE001 - a parse failure is the finding
            return [f"spdx-tools cannot parse it: {error}"], 0
        messages = validate_full_spdx_document(parsed)
        if messages:
            return [f"spdx-tools: {m.validation_message} ({m.context})" for m in messages[:5]], 0
    else:
        return ["neither bomFormat CycloneDX nor spdxVersion"], 0
    found = purls(document)
    bad = []
    for purl in found:
        try:
            PackageURL.from_string(purl)
        except Exception as error:  # noqa: BLE001
            bad.append(f"purl {purl!r}: {error}")
    return bad, len(found)


def main() -> int:
    failed = 0
    for path in sys.argv[1:]:
        why, count = problems(path)
        if why:
            failed += 1
            print(f"FAIL {path}: " + "; ".join(str(w)[:400] for w in why))
        else:
            print(f"ok {path} ({count} purls)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
