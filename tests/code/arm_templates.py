"""Offline checks shared by the tests of the repository's ARM templates (deploy/monitoring/*.json,
deploy/tracking/azure/tracking_server.json).

Azure's deployment-template schema and its per-provider resource schemas are fetched from
schema.management.azure.com, and neither the Bicep CLI nor an ARM validator installs from PyPI or npm,
so the tests check the parts of the schema the templates rely on, and the expressions themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema

ARM_SCHEMA_URL = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
# What every resource of a template must carry. Extension and child resources (role assignments, blob
# containers) have no location of their own, so a template of those asks for less.
RESOURCE_KEYS = ("type", "apiVersion", "name", "location", "properties")


def arm_schema(resource_keys: tuple[str, ...] = RESOURCE_KEYS) -> dict:
    """The parts of the ARM deployment-template schema the templates rely on (the full schema is online only)."""
    return {
        "type": "object",
        "required": ["$schema", "contentVersion", "parameters", "resources"],
        "properties": {
            "$schema": {"const": ARM_SCHEMA_URL},
            "contentVersion": {"pattern": r"^\d+(\.\d+){3}$"},
            "parameters": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {"type": {"enum": ["string", "securestring", "int", "bool", "object", "array"]}},
                },
            },
            "resources": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": list(resource_keys),
                    "properties": {"apiVersion": {"pattern": r"^\d{4}-\d{2}-\d{2}(-preview)?$"}},
                },
            },
        },
    }


def check_arm_template(path: Path, resource_keys: tuple[str, ...] = RESOURCE_KEYS) -> dict:
    """Assert the template is well formed; return it parsed.

    Checks: the schema above; every parameter declared is used and every one used is declared; every
    variable used is declared; each expression's parentheses balance; defaults are among allowedValues.
    """
    text = path.read_text()
    document = json.loads(text)
    jsonschema.validate(document, arm_schema(resource_keys))
    declared = set(document["parameters"])
    used = set(re.findall(r"parameters\('(\w+)'\)", text))
    assert used == declared, f"undeclared: {used - declared}, unused: {declared - used}"
    assert set(re.findall(r"variables\('(\w+)'\)", text)) <= set(document.get("variables", {}))
    for expression in re.findall(r'"(\[[^"]*\])"', text):  # ARM expressions: balanced parentheses
        assert expression.count("(") == expression.count(")"), expression
    for name, spec in document["parameters"].items():
        default = spec.get("defaultValue")
        if default is not None and "allowedValues" in spec:
            assert default in spec["allowedValues"], name
    return document
