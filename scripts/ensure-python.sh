#!/usr/bin/env bash
# Makes (or reuses) a Python venv with the independent verifiers the interop tests run:
# securesystemslib (DSSE), in-toto-attestation (Statement + SLSA v1 schema), cryptography,
# sigstore-protobuf-specs (Sigstore bundle), and for SBOMs cyclonedx-python-lib (CycloneDX 1.6
# schema), spdx-tools (SPDX 2.3) and packageurl-python (purls). Idempotent: when the venv already imports them all
# it returns at once. Prints the venv's python on stdout; progress and errors go to stderr.
#
# The venv is ${SEALROOM_PY_VENV:-<repo>/target/interop-venv}. Packages come from PyPI through pip.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SEALROOM_PY_VENV:-$root/target/interop-venv}
python=$venv/bin/python
packages=(cryptography securesystemslib in-toto-attestation sigstore-protobuf-specs
  'cyclonedx-python-lib[json-validation]' spdx-tools packageurl-python)
imports="import cryptography, securesystemslib.dsse, securesystemslib.signer, in_toto_attestation.v1.statement_pb2, in_toto_attestation.predicates.provenance.v1.provenance_pb2, google.protobuf.json_format, sigstore_protobuf_specs.dev.sigstore.bundle.v1, cyclonedx.validation.json, spdx_tools.spdx.parser.parse_anything, spdx_tools.spdx.validation.document_validator, packageurl"

if [ -x "$python" ] && "$python" -c "$imports" 2>/dev/null; then
  echo "$python"
  exit 0
fi

host_python=${PYTHON:-python3}
if ! command -v "$host_python" >/dev/null; then
  echo "ensure-python: expected a python3 on PATH (or \$PYTHON), found none" >&2
  exit 1
fi
if [ ! -x "$python" ]; then
  echo "ensure-python: creating $venv" >&2
  mkdir -p "$(dirname "$venv")"
  if ! "$host_python" -m venv "$venv" >&2; then
    echo "ensure-python: cannot create a venv at $venv (hint: install python3-venv)" >&2
    exit 1
  fi
fi
echo "ensure-python: installing ${packages[*]} from PyPI" >&2
if ! "$python" -m pip install --quiet "${packages[@]}" >&2; then
  echo "ensure-python: pip install ${packages[*]} failed" >&2
  exit 1
fi
if ! "$python" -c "$imports" >&2; then
  echo "ensure-python: the packages installed but do not import (see above)" >&2
  exit 1
fi
echo "$python"
