"""Validates the in-toto Statement and SLSA v1 predicate inside a sealroom envelope with the
in-toto-attestation package's protobuf types.

usage: attestation_validate.py ENVELOPE

Parses the decoded payload into `in_toto_attestation.v1.statement_pb2.Statement` and the
predicate into `...predicates.provenance.v1.provenance_pb2.Provenance` with
`google.protobuf.json_format.ParseDict` (unknown fields are errors, timestamps must be RFC 3339),
then runs the package's `Statement.validate()` and `ResourceDescriptor.validate()`, and the
SLSA v1 predicate's required-field rules (those of the in-toto-attestation Go validator:
buildType, externalParameters, builder.id, and a valid descriptor for every dependency and
byproduct), as the Python package ships no predicate validator. Prints one line per check.
"""
import base64
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

failures = []


def check(name, run):
    try:
        run()
        print("ok  ", name)
    except Exception as error:  # noqa: BLE001 - report any failure as the check's detail
        print("FAIL", name, f"{type(error).__name__}: {error}")
        failures.append(name)


def b64decode(text):
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def validate_provenance(provenance):
    definition = provenance.build_definition
    if not definition.build_type:
        raise ValueError("buildDefinition.buildType required")
    if not provenance.HasField("build_definition") or not definition.HasField(
        "external_parameters"
    ):
        raise ValueError("buildDefinition.externalParameters required")
    for index, dependency in enumerate(definition.resolved_dependencies):
        try:
            ResourceDescriptor.copy_from_pb(dependency).validate()
        except ValueError as error:
            raise ValueError(f"resolvedDependencies[{index}]: {error}") from error
    details = provenance.run_details
    if not provenance.HasField("run_details") or not details.HasField("builder"):
        raise ValueError("runDetails.builder required")
    if not details.builder.id:
        raise ValueError("runDetails.builder.id required")
    for index, byproduct in enumerate(details.byproducts):
        try:
            ResourceDescriptor.copy_from_pb(byproduct).validate()
        except ValueError as error:
            raise ValueError(f"byproducts[{index}]: {error}") from error


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        envelope = json.loads(next(l for l in f if l.strip()))
    document = json.loads(b64decode(envelope["payload"]))
    holder = {}

    def parse_statement():
        holder["statement"] = json_format.ParseDict(document, statement_pb2.Statement())

    def parse_predicate():
        holder["provenance"] = json_format.ParseDict(
            document.get("predicate"), provenance_pb2.Provenance()
        )

    check("Statement parses (json_format, unknown fields rejected)", parse_statement)
    if "statement" in holder:
        check("Statement.validate", lambda: Statement.copy_from_pb(holder["statement"]).validate())
    check("SLSA v1 Provenance parses", parse_predicate)
    if "provenance" in holder:
        check("SLSA v1 Provenance required fields", lambda: validate_provenance(holder["provenance"]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
