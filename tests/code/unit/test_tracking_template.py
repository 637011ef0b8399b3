"""The shared tracking server in Azure, as code: deploy/tracking/azure/tracking_server.json (ARM), the
image (deploy/tracking/Dockerfile, requirements.txt) and its entry point (deploy/tracking/entrypoint.sh).

Validated offline. No Bicep CLI or ARM validator installs from the registries this project reaches: Bicep
ships on NuGet and GitHub releases (npm's `bicep` is an unrelated package), the deployment-template schema
and Azure's per-provider schemas are served by schema.management.azure.com, and `az deployment group
validate`/`what-if` need a subscription. So the template is parsed here: every ARM expression is parsed by
a small parser of ARM's expression grammar and evaluated symbolically, far enough to resolve the names
in `resourceId(...)`, `reference(...)` and `dependsOn` to the resources the template declares.

The entry point is run for real with a fake `mlflow` first on PATH that records its arguments and
environment; one test (marked integration) runs it with the real `mlflow server` on 127.0.0.1.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflow.store.artifact.azure_blob_artifact_repo import AzureBlobArtifactRepository
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.servers import ServerProcess, free_port
from tests.code.arm_templates import check_arm_template
from tests.conftest import REPO

TRACKING = REPO / "deploy" / "tracking"
TEMPLATE = TRACKING / "azure" / "tracking_server.json"
ENTRYPOINT = TRACKING / "entrypoint.sh"
DOCKERFILE = TRACKING / "Dockerfile"
IMAGE_REQUIREMENTS = TRACKING / "requirements.txt"
LOCK = REPO / "requirements.lock"

STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
# Resources the template refers to but does not create: the project's container registry.
EXISTING_TYPES = {"Microsoft.ContainerRegistry/registries"}
# The settings whose values are secrets: Key Vault references in the web app, never plain values.
SECRET_SETTINGS = (
    "MLFLOW_BACKEND_STORE_URI",
    "MLFLOW_AUTH_DATABASE_URI",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
# The ARM template functions a template of this repository may call (names are case-insensitive).
ARM_FUNCTIONS = {
    name.lower()
    for name in re.findall(
        r"\w+",
        """parameters variables resourceId subscriptionResourceId extensionResourceId reference resourceGroup
        subscription environment format concat uniqueString guid string int bool json if empty not and or
        equals greater less toLower toUpper uriComponent parseCidr createArray createObject union contains
        length split replace substring first last take skip trim null true false""",
    )
}


# ---------------------------------------------------------------------------------------------------
# ARM expressions: a parser for the grammar (function calls, string and number literals, `.member`,
# `[index]`) and a symbolic evaluator that resolves what names are made of.


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Member:
    target: Any
    name: str


@dataclass(frozen=True)
class Index:
    target: Any
    index: Any


TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_]\w*)|(?P<op>[(),.\[\]]))")


def tokenize(source: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(source.rstrip()):
        match = TOKEN.match(source, position)
        assert match, f"cannot read {source[position:]!r} in {source!r}"
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def parse_expression(text: str):
    """Parse one `[...]` template expression; raise AssertionError on anything ARM could not parse."""
    assert text.startswith("[") and text.endswith("]") and not text.startswith("[["), text
    tokens = tokenize(text[1:-1])
    position = 0

    def peek(value: str | None = None) -> bool:
        return position < len(tokens) and (value is None or tokens[position] == ("op", value))

    def expect(value: str) -> None:
        nonlocal position
        assert peek(value), f"expected {value!r} at token {position} of {text}"
        position += 1

    def primary():
        nonlocal position
        assert position < len(tokens), f"unexpected end of {text}"
        kind, value = tokens[position]
        position += 1
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return int(value)
        assert kind == "name", f"unexpected {value!r} in {text}"
        expect("(")
        args = []
        if not peek(")"):
            args.append(expression())
            while peek(","):
                position += 1
                args.append(expression())
        expect(")")
        return Call(value, tuple(args))

    def expression():
        nonlocal position
        node = primary()
        while peek(".") or peek("["):
            if peek("."):
                position += 1
                kind, value = tokens[position]
                assert kind == "name", f"expected a member name in {text}"
                position += 1
                node = Member(node, value)
            else:
                position += 1
                index = expression()
                expect("]")
                node = Index(node, index)
        return node

    node = expression()
    assert position == len(tokens), f"unbalanced or trailing tokens in {text}"
    return node


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and value.endswith("]") and not value.startswith("[[")


def calls(node) -> list[Call]:
    """Every function call in a parsed expression, outermost first."""
    found = []
    if isinstance(node, Call):
        found.append(node)
        for arg in node.args:
            found += calls(arg)
    elif isinstance(node, Member):
        found += calls(node.target)
    elif isinstance(node, Index):
        found += calls(node.target) + calls(node.index)
    return found


@dataclass(frozen=True)
class Ref:
    """A resource id the template computes: its type, its name (segments joined by /), and for an
    extension resource (a role assignment) the resource it is attached to."""

    type: str
    name: str
    scope: Ref | None = None


@dataclass(frozen=True)
class Opaque:
    """A value known only at deployment time (uniqueString, reference(...).x, ...)."""

    text: str

    def __str__(self) -> str:
        return f"«{self.text}»"


@dataclass(frozen=True)
class Reference:
    """reference(<resource id>, ...): the runtime state of a resource."""

    target: Any


class Evaluator:
    """Evaluate template expressions far enough to name resources: parameters('x') stays the symbol
    <x>, variables are evaluated in turn, format/concat/resourceId/extensionResourceId/guid compute."""

    def __init__(self, template: dict) -> None:
        self.template = template

    def value(self, value: Any) -> Any:
        return self.node(parse_expression(value)) if is_expression(value) else value

    def node(self, node) -> Any:
        if not isinstance(node, (Call, Member, Index)):
            return node
        if isinstance(node, Member):
            target = self.node(node.target)
            return Opaque(f"{target.text if isinstance(target, Opaque) else target}.{node.name}")
        if isinstance(node, Index):
            return Opaque(f"{self.node(node.target)}[{self.node(node.index)}]")
        name, args = node.name.lower(), [self.node(arg) for arg in node.args]
        if name == "parameters":
            return f"<{args[0]}>"
        if name == "variables":
            return self.value(self.template["variables"][args[0]])
        if name in ("format", "concat") and not any(isinstance(arg, (Ref, Reference)) for arg in args):
            # What is known at deployment time only stays visible as «...».
            return args[0].format(*map(str, args[1:])) if name == "format" else "".join(map(str, args))
        if name == "subscriptionresourceid":
            return Ref(args[0], "/".join(map(str, args[1:])))
        if name == "resourceid":
            # resourceId([subscriptionId], [resourceGroupName], type, name segments...)
            while "/" not in str(args[0]):
                args = args[1:]
            return Ref(args[0], "/".join(map(str, args[1:])))
        if name == "extensionresourceid":
            return Ref(args[1], "/".join(map(str, args[2:])), scope=args[0])
        if name == "guid":
            return f"guid({', '.join(map(repr, args))})"
        if name == "reference":
            return Reference(args[0])
        return Opaque(f"{node.name}({', '.join(map(repr, args))})")


def walk(value: Any, path: tuple = ()):
    """(path, string) for every string in a JSON document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), key
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, (*path, index))
    elif isinstance(value, str):
        yield path, value


def scope_ref(scope: str, evaluator: Evaluator) -> Ref:
    """A role assignment's `scope`, `Provider/type/name[/type/name]`, as the resource id it names."""
    parts = evaluator.value(scope).split("/")
    assert len(parts) % 2 == 1, scope
    types, names = [parts[0], parts[1], *parts[3::2]], parts[2::2]
    return Ref("/".join(types), "/".join(names))


# ---------------------------------------------------------------------------------------------------
# Fixtures and helpers


@pytest.fixture(scope="module")
def template() -> dict:
    return json.loads(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def evaluator(template) -> Evaluator:
    return Evaluator(template)


def key(resource: dict, evaluator: Evaluator) -> Ref:
    name = evaluator.value(resource["name"])
    scope = scope_ref(resource["scope"], evaluator) if "scope" in resource else None
    return Ref(resource["type"], name, scope)


@pytest.fixture(scope="module")
def declared(template, evaluator) -> dict[Ref, dict]:
    resources = {key(resource, evaluator): resource for resource in template["resources"]}
    assert len(resources) == len(template["resources"]), "two resources share a type and name"
    return resources


def resources_of(template: dict, type_: str) -> list[dict]:
    return [resource for resource in template["resources"] if resource["type"] == type_]


def one(template: dict, type_: str) -> dict:
    [resource] = resources_of(template, type_)
    return resource


def app_settings(template: dict) -> dict[str, str]:
    site = one(template, "Microsoft.Web/sites")
    settings = site["properties"]["siteConfig"]["appSettings"]
    names = [setting["name"] for setting in settings]
    assert len(names) == len(set(names)), "an app setting is set twice"
    return {setting["name"]: setting["value"] for setting in settings}


def identity_ref(template: dict, evaluator: Evaluator) -> Ref:
    identity = one(template, "Microsoft.ManagedIdentity/userAssignedIdentities")
    return Ref(identity["type"], evaluator.value(identity["name"]))


def is_identity_property(value: str, evaluator: Evaluator, identity: Ref, prop: str) -> bool:
    """Whether `value` is reference(<the identity>, ...).<prop>."""
    node = parse_expression(value)
    return (
        isinstance(node, Member)
        and node.name == prop
        and isinstance(node.target, Call)
        and node.target.name == "reference"
        and evaluator.node(node.target.args[0]) == identity
    )


# ---------------------------------------------------------------------------------------------------
# The template: well formed, every reference resolvable


def test_template_passes_the_shared_arm_checks():
    document = check_arm_template(TEMPLATE, resource_keys=("type", "apiVersion", "name"))
    assert document["contentVersion"] == "1.0.0.0"


def test_every_expression_parses_and_calls_only_arm_functions(template):
    expressions = [(path, value) for path, value in walk(template) if is_expression(value)]
    assert len(expressions) > 100
    for path, value in expressions:
        node = parse_expression(value)
        for call in calls(node):
            assert call.name.lower() in ARM_FUNCTIONS, f"{call.name}() at {path}"
    # The parser refuses what ARM would refuse.
    for broken in ("[format('{0}', parameters('a')]", "[concat('a', 'b'))]", "[parameters('a'", "[reference(x).]"):
        with pytest.raises(AssertionError):
            parse_expression(broken)


def test_every_parameter_and_variable_is_declared_and_used(template):
    used = {"parameters": set(), "variables": set()}
    for _, value in walk(template):
        if is_expression(value):
            for call in calls(parse_expression(value)):
                if call.name in used:
                    used[call.name].add(call.args[0])
    assert used["parameters"] == set(template["parameters"])
    assert used["variables"] == set(template["variables"])


def test_resource_ids_and_dependencies_name_declared_resources(template, evaluator, declared):
    for resource in template["resources"]:
        here = key(resource, evaluator)
        depends = set()
        for entry in resource.get("dependsOn", []):
            target = evaluator.value(entry)
            assert isinstance(target, Ref) and target in declared, f"{here.type} depends on unknown {entry}"
            assert target != here
            depends.add(target)
        # A child declared at the top level must wait for its parent.
        segments = resource["type"].split("/")
        if len(segments) > 2 and "scope" not in resource:
            parent = Ref("/".join(segments[:-1]), here.name.rsplit("/", 1)[0])
            assert parent in depends, f"{here.type} {here.name} does not depend on its parent {parent}"
        # An extension resource waits for what it is attached to, where this template creates it.
        if here.scope is not None and here.scope.type not in EXISTING_TYPES:
            assert here.scope in declared and here.scope in depends, f"{here} before its scope"
        # reference() creates no dependency in a JSON template: each one must be in dependsOn.
        # resourceId() may name this template's resources or the existing registry.
        for path, value in walk({k: v for k, v in resource.items() if k != "dependsOn"}):
            if not is_expression(value):
                continue
            for call in calls(parse_expression(value)):
                target = evaluator.node(call)
                if isinstance(target, Ref) and call.name == "resourceId":
                    assert target in declared or target.type in EXISTING_TYPES, f"{path}: {target}"
                if isinstance(target, Reference):
                    assert target.target in declared, f"{path}: reference to {target.target}"
                    assert target.target in depends, f"{here.type} {path} reads {target.target} without dependsOn"
    for path, value in walk(template["outputs"]):
        if is_expression(value):
            for call in calls(parse_expression(value)):
                target = evaluator.node(call)
                if isinstance(target, Reference):
                    assert target.target in declared, f"output {path}: {target.target}"


def test_secrets_are_securestring_parameters_without_defaults_that_reach_only_key_vault_and_postgres(template):
    parameters = template["parameters"]
    secret_names = {name for name in parameters if re.search(r"(password|secret|key)$", name, flags=re.I)}
    assert secret_names == {"mlflowAdminPassword", "flaskSecretKey", "postgresAdminPassword"}
    secure = {name for name, spec in parameters.items() if spec["type"] == "securestring"}
    assert secure == secret_names
    for name in secure:
        assert "defaultValue" not in parameters[name], f"{name} has a default"
        assert parameters[name]["minLength"] >= 16
    # A securestring is used only in Key Vault secret values and the database's admin password.
    for resource in template["resources"]:
        for path, value in walk(resource):
            for name in secure:
                if is_expression(value) and f"parameters('{name}')" in value:
                    where = (resource["type"], path)
                    assert where in {
                        ("Microsoft.KeyVault/vaults/secrets", ("properties", "value")),
                        ("Microsoft.DBforPostgreSQL/flexibleServers", ("properties", "administratorLoginPassword")),
                    }, f"{name} reaches {where}"
    outputs = json.dumps(template["outputs"])
    assert not any(f"'{name}'" in outputs for name in secure) and not re.search(r"\blist\w*\(", outputs, flags=re.I)
    # Nothing that looks like a credential is written into the template itself.
    for _, value in walk(template):
        assert not re.search(r"AccountKey=|SharedAccessSignature|sig=|://[^/\s:@]+:[^/\s@{]+@", value), value


def test_key_vault_holds_the_secrets_and_the_database_uris_are_built_from_the_server(template, evaluator):
    vault = one(template, "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True and vault["enablePurgeProtection"] is True
    secrets = {
        evaluator.value(resource["name"]).split("/")[-1]: resource["properties"]["value"]
        for resource in resources_of(template, "Microsoft.KeyVault/vaults/secrets")
    }
    assert set(secrets) == {
        "mlflow-backend-store-uri",
        "mlflow-auth-database-uri",
        "mlflow-admin-password",
        "mlflow-flask-secret-key",
    }
    server = Ref("Microsoft.DBforPostgreSQL/flexibleServers", "<postgresServerName>")
    for secret, database in (("mlflow-backend-store-uri", "mlflow"), ("mlflow-auth-database-uri", "mlflow_auth")):
        node = parse_expression(secrets[secret])
        assert node.name == "format"
        assert evaluator.node(node.args[0]) == "postgresql+psycopg2://{0}:{1}@{2}:5432/{3}?sslmode=require"
        login, password, host, name = node.args[1:]
        # Credentials are percent-encoded into the URI; the host is the server's own name.
        assert login == Call("uriComponent", (Call("parameters", ("postgresAdminLogin",)),))
        assert password == Call("uriComponent", (Call("parameters", ("postgresAdminPassword",)),))
        assert isinstance(host, Member) and host.name == "fullyQualifiedDomainName"
        assert evaluator.node(host.target) == Reference(server)
        assert name == database
    assert secrets["mlflow-admin-password"] == "[parameters('mlflowAdminPassword')]"
    assert secrets["mlflow-flask-secret-key"] == "[parameters('flaskSecretKey')]"


def test_postgres_flexible_server_holds_both_databases_behind_a_firewall(template, evaluator):
    server = one(template, "Microsoft.DBforPostgreSQL/flexibleServers")
    parameters = template["parameters"]
    assert parameters["postgresVersion"]["defaultValue"] == "16"
    assert (parameters["postgresSkuName"]["defaultValue"], parameters["postgresSkuTier"]["defaultValue"]) == (
        "Standard_B1ms",
        "Burstable",
    )
    properties = server["properties"]
    assert properties["administratorLoginPassword"] == "[parameters('postgresAdminPassword')]"
    assert properties["storage"]["storageSizeGB"] == "[parameters('postgresStorageSizeGB')]"
    assert properties["backup"]["backupRetentionDays"] == "[parameters('postgresBackupRetentionDays')]"
    databases = {
        evaluator.value(r["name"])
        for r in resources_of(template, "Microsoft.DBforPostgreSQL/flexibleServers/databases")
    }
    assert databases == {"<postgresServerName>/mlflow", "<postgresServerName>/mlflow_auth"}
    rules = {
        evaluator.value(r["name"]): r
        for r in resources_of(template, "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules")
    }
    azure = rules.pop("<postgresServerName>/AllowAllAzureServicesAndResourcesWithinAzureIps")
    assert azure["properties"] == {"startIpAddress": "0.0.0.0", "endIpAddress": "0.0.0.0"}  # Azure's own addresses
    assert azure["condition"] == "[parameters('postgresAllowAzureServices')]"
    [operator] = rules.values()  # the optional operator range, only when a CIDR is given
    assert operator["condition"] == "[not(empty(parameters('postgresClientCidr')))]"
    assert "parseCidr" in template["variables"]["clientRange"]


def test_storage_refuses_keys_and_anonymous_access(template, evaluator):
    account = one(template, "Microsoft.Storage/storageAccounts")
    assert account["kind"] == "StorageV2"
    properties = account["properties"]
    assert properties["supportsHttpsTrafficOnly"] is True and properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["allowBlobPublicAccess"] is False and properties["allowSharedKeyAccess"] is False
    container = one(template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert evaluator.value(container["name"]) == "<storageAccountName>/default/mlflow"
    assert container["properties"]["publicAccess"] == "None"


def role_assignment(template: dict, evaluator: Evaluator, role: str) -> dict:
    matches = [
        resource
        for resource in resources_of(template, "Microsoft.Authorization/roleAssignments")
        if evaluator.value(resource["properties"]["roleDefinitionId"]).name == role
    ]
    assert len(matches) == 1, f"{len(matches)} assignments of role {role}"
    return matches[0]


@pytest.mark.parametrize(
    ("role", "scope_type"),
    [
        (STORAGE_BLOB_DATA_CONTRIBUTOR, "Microsoft.Storage/storageAccounts"),
        (KEY_VAULT_SECRETS_USER, "Microsoft.KeyVault/vaults"),
        (ACR_PULL, "Microsoft.ContainerRegistry/registries"),
    ],
    ids=["blob-data-contributor", "key-vault-secrets-user", "acr-pull"],
)
def test_the_identity_holds_each_role_on_its_one_resource(template, evaluator, declared, role, scope_type):
    assignment = role_assignment(template, evaluator, role)
    definition = evaluator.value(assignment["properties"]["roleDefinitionId"])
    assert definition.type == "Microsoft.Authorization/roleDefinitions"
    assert "subscriptionResourceId" in assignment["properties"]["roleDefinitionId"]
    scope = scope_ref(assignment["scope"], evaluator)
    assert scope.type == scope_type
    assert scope in declared or scope_type in EXISTING_TYPES
    identity = identity_ref(template, evaluator)
    assert is_identity_property(assignment["properties"]["principalId"], evaluator, identity, "principalId")
    assert assignment["properties"]["principalType"] == "ServicePrincipal"
    # guid() of scope, identity and role: the same name on every redeployment, a new one for a new identity.
    name = evaluator.value(assignment["name"])
    assert name.startswith("guid(") and repr(scope) in name and repr(identity) in name and role in name


def test_web_app_runs_the_image_as_the_identity_behind_https_and_the_address_rule(template, evaluator):
    plan = one(template, "Microsoft.Web/serverfarms")
    assert plan["properties"]["reserved"] is True and plan["kind"] == "linux"
    site = one(template, "Microsoft.Web/sites")
    identity = identity_ref(template, evaluator)
    assert site["identity"]["type"] == "UserAssigned"
    assert [evaluator.value(name) for name in site["identity"]["userAssignedIdentities"]] == [identity]
    properties = site["properties"]
    assert evaluator.value(properties["keyVaultReferenceIdentity"]) == identity
    assert properties["httpsOnly"] is True
    config = properties["siteConfig"]
    assert config["linuxFxVersion"].startswith("[format('DOCKER|{0}{1}/{2}', parameters('acrName')")
    assert config["acrUseManagedIdentityCreds"] is True
    assert is_identity_property(config["acrUserManagedIdentityID"], evaluator, identity, "clientId")
    assert (config["minTlsVersion"], config["scmMinTlsVersion"], config["ftpsState"]) == ("1.2", "1.2", "Disabled")
    # Only allowedCidr gets through; everything else is denied, on the deployment (SCM) site too.
    [rule] = config["ipSecurityRestrictions"]
    assert (rule["ipAddress"], rule["action"]) == ("[parameters('allowedCidr')]", "Allow")
    assert config["ipSecurityRestrictionsDefaultAction"] == "Deny"
    assert config["scmIpSecurityRestrictionsUseMain"] is True
    assert "defaultValue" not in template["parameters"]["allowedCidr"]  # no "everyone" by default
    policies = {
        evaluator.value(r["name"]): r["properties"]
        for r in resources_of(template, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    assert policies == {"<appName>/ftp": {"allow": False}, "<appName>/scm": {"allow": False}}


def test_app_settings_pass_secrets_as_key_vault_references_and_the_identity_for_blobs(template, evaluator, declared):
    settings = app_settings(template)
    identity = identity_ref(template, evaluator)
    for name in SECRET_SETTINGS:
        node = parse_expression(settings[name])
        assert node.name == "format" and node.args[0] == "@Microsoft.KeyVault(SecretUri={0})", name
        uri = node.args[1]
        assert isinstance(uri, Member) and uri.name == "secretUri"  # versionless: a rotated secret is picked up
        secret = evaluator.node(uri.target).target
        assert secret.type == "Microsoft.KeyVault/vaults/secrets" and secret in declared
    assert is_identity_property(settings["AZURE_CLIENT_ID"], evaluator, identity, "clientId")
    assert "AZURE_STORAGE_CONNECTION_STRING" not in settings and "AZURE_STORAGE_ACCESS_KEY" not in settings
    # The artifact URI names the declared account and container, in the form MLflow's Azure repository reads.
    destination = evaluator.value(settings["MLFLOW_ARTIFACTS_DESTINATION"])
    container = one(template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    container_name = evaluator.value(container["name"]).split("/")[-1]
    assert (
        destination == f"wasbs://{container_name}@<storageAccountName>.blob.«environment().suffixes.storage»/artifacts"
    )
    concrete = destination.replace("<storageAccountName>", "mlflowabc").replace(
        "«environment().suffixes.storage»",
        "core.windows.net",  # Azure's public cloud
    )
    parsed = AzureBlobArtifactRepository.parse_wasbs_uri(concrete)
    assert parsed == (container_name, "mlflowabc", "artifacts", "blob.core.windows.net")
    # MLflow's host and CORS checks admit the public name (their default is localhost only).
    assert evaluator.value(settings["MLFLOW_SERVER_ALLOWED_HOSTS"]) == "<appName>.azurewebsites.net"
    assert evaluator.value(settings["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"]) == "https://<appName>.azurewebsites.net"
    # The container's port, as the image declares it.
    port = re.search(r"^\s*PORT=(\d+)", DOCKERFILE.read_text(), flags=re.M).group(1)
    assert settings["WEBSITES_PORT"] == settings["PORT"] == port
    assert re.search(rf"^EXPOSE {port}$", DOCKERFILE.read_text(), flags=re.M)


def test_health_check_path_and_permissions_are_what_mlflow_serves():
    """healthCheckPath must answer without credentials and whatever the Host header (App Service probes it)."""
    site = one(json.loads(TEMPLATE.read_text()), "Microsoft.Web/sites")
    path = site["properties"]["siteConfig"]["healthCheckPath"]
    probe = (
        "import json, sys\n"
        "from mlflow.server.auth import is_unprotected_route\n"
        "from mlflow.server.auth.permissions import ALL_PERMISSIONS\n"
        "from mlflow.server.security_utils import is_health_endpoint\n"
        "path = sys.argv[1]\n"
        "api = '/api/2.0/mlflow/experiments/search'\n"
        "print(json.dumps([is_unprotected_route(path), is_health_endpoint(path), is_unprotected_route(api),\n"
        "                  sorted(ALL_PERMISSIONS)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    unprotected, host_exempt, api_unprotected, permissions = json.loads(result.stdout.splitlines()[-1])
    assert (path, unprotected, host_exempt, api_unprotected) == ("/health", True, True, False)
    assert set(json.loads(TEMPLATE.read_text())["parameters"]["defaultPermission"]["allowedValues"]) <= set(permissions)


def test_outputs_give_the_tracking_uri_storage_account_and_identity(template, evaluator):
    outputs = template["outputs"]
    tracking = parse_expression(outputs["trackingUri"]["value"])
    assert tracking.name == "format" and tracking.args[0] == "https://{0}"
    assert tracking.args[1].name == "defaultHostName"
    assert evaluator.node(tracking.args[1].target) == Reference(Ref("Microsoft.Web/sites", "<appName>"))
    assert outputs["storageAccountName"]["value"] == "[parameters('storageAccountName')]"
    identity = identity_ref(template, evaluator)
    assert is_identity_property(outputs["identityClientId"]["value"], evaluator, identity, "clientId")


# ---------------------------------------------------------------------------------------------------
# The image


def pins(path: Path) -> dict[str, tuple[str, str]]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            found[canonicalize_name(name)] = (name, version)
    return found


def test_image_requirements_are_the_lock_pins_of_a_closed_set():
    image, lock = pins(IMAGE_REQUIREMENTS), pins(LOCK)
    for name, (_, version) in image.items():
        assert name in lock and lock[name][1] == version, f"{name}=={version} is not requirements.lock's pin"
    for needed in ("mlflow", "psycopg2-binary", "azure-storage-blob", "azure-identity", "flask-wtf", "uvicorn"):
        assert needed in image, needed
    # Closed: every requirement of every package (Linux, this Python, no extras) is in the set too, as
    # the installed distributions (from the same lock) declare them; the build's `pip check` repeats this.
    for name, (_, version) in image.items():
        distribution = metadata.distribution(name)
        assert distribution.version == version, f"the environment has {name} {distribution.version}"
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                dependency = canonicalize_name(requirement.name)
                assert dependency in image, f"{name} needs {requirement}, missing from {IMAGE_REQUIREMENTS.name}"
                assert requirement.specifier.contains(image[dependency][1], prereleases=True), requirement


def test_dockerfile_builds_a_non_root_image_from_the_pins_and_only_what_it_copies():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", text, flags=re.M)
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, flags=re.M)
    assert "pip install --no-deps -r /tmp/build/requirements.txt" in text and "pip check" in text
    users = re.findall(r"^USER (\S+)$", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \[.*"/usr/local/bin/tracking-server"\]$', text, flags=re.M)
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    copied = [
        re.sub(r"\$\{(\w+)\}", lambda arg: defaults[arg.group(1)], line.split()[1])
        for line in text.splitlines()
        if line.startswith("COPY ")
    ]
    assert sorted(copied) == ["entrypoint.sh", "no-extra-ca.pem", "requirements.txt"]
    rules = [
        line for line in (TRACKING / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")
    ]
    # Besides what is copied by default, only the operator's CA bundle (docs/deploy.md) may enter.
    allowed = sorted(rule.removeprefix("!") for rule in rules[1:])
    assert rules[0] == "*" and allowed == sorted(["Dockerfile", "build/ca-bundle.pem", *copied])
    for source in copied:
        assert (TRACKING / source).is_file()
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR


# ---------------------------------------------------------------------------------------------------
# The entry point


# Values with what a password percent-encoded into a URI holds: '%', '@', ':'.
DB_PASSWORD = "p%40ss:w0rd%25-db-secret"
SETTINGS = {
    "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://mlflow:{DB_PASSWORD}@db.example:5432/mlflow?sslmode=require",
    "MLFLOW_AUTH_DATABASE_URI": f"postgresql+psycopg2://mlflow:{DB_PASSWORD}@db.example:5432/mlflow_auth?sslmode=require",
    "MLFLOW_ARTIFACTS_DESTINATION": "wasbs://mlflow@mlflowabc.blob.core.windows.net/artifacts",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-secret-password-123",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-key-0123456789abcdef",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
}
SECRETS = (DB_PASSWORD, SETTINGS["MLFLOW_AUTH_ADMIN_PASSWORD"], SETTINGS["MLFLOW_FLASK_SERVER_SECRET_KEY"])


@pytest.fixture
def fake_mlflow(tmp_path) -> tuple[dict[str, str], Path]:
    """A `mlflow` first on PATH that records its arguments and environment, and an environment without
    the session's MLFLOW_* and Azure settings."""
    record = tmp_path / "mlflow-call.json"
    fake = tmp_path / "bin" / "mlflow"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(record)!r}, 'w'))\n"
    )
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZURE_"))}
    env |= {"PATH": f"{fake.parent}{os.pathsep}{env['PATH']}", "HOME": str(tmp_path / "home")}
    return env, record


def entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_entrypoint_execs_the_basic_auth_server_with_no_secret_on_its_command_line(fake_mlflow, tmp_path):
    env, record = fake_mlflow
    config = tmp_path / "auth" / "basic_auth.ini"
    env |= SETTINGS | {"MLFLOW_AUTH_CONFIG_PATH": str(config), "AZURE_STORAGE_CONNECTION_STRING": ""}
    result = entrypoint(env)
    assert result.returncode == 0, result.stderr
    call = json.loads(record.read_text())
    assert call["argv"] == [
        "server",
        "--app-name",
        "basic-auth",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--serve-artifacts",
    ]
    for secret in SECRETS:
        assert secret not in " ".join(call["argv"]) and secret not in result.stdout + result.stderr
    # mlflow reads the stores and the admin password from its environment, as given.
    for name, value in SETTINGS.items():
        assert call["env"][name] == value
    assert call["env"]["MLFLOW_AUTH_CONFIG_PATH"] == str(config)
    assert call["env"]["MLFLOW_AUTH_ADMIN_USERNAME"] == "admin"
    assert "AZURE_STORAGE_CONNECTION_STRING" not in call["env"]  # empty would select the key-based client
    # The auth config: only its owner reads it; it holds the auth database URI, not the admin password.
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert SETTINGS["MLFLOW_AUTH_ADMIN_PASSWORD"] not in config.read_text()
    parser = configparser.ConfigParser()
    parser.read(config)
    assert dict(parser["mlflow"]) == {
        "default_permission": "READ",
        "database_uri": SETTINGS["MLFLOW_AUTH_DATABASE_URI"],
        "admin_username": "admin",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    # ... and MLflow's own reader gets the same values (with the admin password from the environment).
    reader = (
        "import json; from mlflow.server.auth.config import read_auth_config; c = read_auth_config(); "
        "print(json.dumps([c.database_uri, c.admin_username, c.admin_password, c.default_permission]))"
    )
    read = subprocess.run(
        [sys.executable, "-c", reader],
        env=call["env"] | {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    assert json.loads(read.stdout.splitlines()[-1]) == [
        SETTINGS["MLFLOW_AUTH_DATABASE_URI"],
        "admin",
        SETTINGS["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "READ",
    ]


def test_entrypoint_passes_port_workers_and_extra_arguments(fake_mlflow):
    env, record = fake_mlflow
    env |= SETTINGS | {
        "PORT": "9000",
        "MLFLOW_AUTH_ADMIN_USERNAME": "root-of-trust",
        "MLFLOW_AUTH_DEFAULT_PERMISSION": "NO_PERMISSIONS",
    }
    assert entrypoint(env, "--workers", "3").returncode == 0
    call = json.loads(record.read_text())
    assert call["argv"][-5:] == ["--port", "9000", "--serve-artifacts", "--workers", "3"]
    config = configparser.ConfigParser()
    config.read(call["env"]["MLFLOW_AUTH_CONFIG_PATH"])
    assert (config["mlflow"]["admin_username"], config["mlflow"]["default_permission"]) == (
        "root-of-trust",
        "NO_PERMISSIONS",
    )


@pytest.mark.parametrize("missing", ["MLFLOW_BACKEND_STORE_URI", "MLFLOW_ARTIFACTS_DESTINATION"])
def test_entrypoint_refuses_to_start_without_its_stores(fake_mlflow, missing):
    env, record = fake_mlflow
    env |= SETTINGS | {missing: ""}
    result = entrypoint(env)
    assert result.returncode == 2 and not record.exists()
    assert result.stderr.splitlines() == [
        f"tracking-server: {missing} is not set: the server needs its backend store and its artifact store"
    ]


@pytest.mark.parametrize(
    "missing", ["MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"]
)
def test_entrypoint_refuses_to_start_without_authentication(fake_mlflow, missing):
    env, record = fake_mlflow
    env |= {k: v for k, v in SETTINGS.items() if k != missing}
    result = entrypoint(env)
    assert result.returncode == 2 and not record.exists()
    [line] = result.stderr.splitlines()
    assert line.startswith("tracking-server: refusing to start without authentication") and missing in line
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        (
            "MLFLOW_AUTH_ADMIN_PASSWORD",
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/x)",
            "unresolved Key Vault reference",
        ),
        ("MLFLOW_BACKEND_STORE_URI", "sqlite:///a.db\nadmin_password = x", "spans several lines"),
        ("MLFLOW_AUTH_DEFAULT_PERMISSION", "ALL", "MLFLOW_AUTH_DEFAULT_PERMISSION must be"),
        ("PORT", "80; rm -rf /", "PORT must be a port number"),
    ],
    ids=["key-vault-reference", "newline", "permission", "port"],
)
def test_entrypoint_refuses_settings_it_cannot_use(fake_mlflow, setting, value, says):
    env, record = fake_mlflow
    env |= SETTINGS | {setting: value}
    result = entrypoint(env)
    assert result.returncode == 2 and not record.exists()
    [line] = result.stderr.splitlines()
    assert says in line and setting in line


def test_entrypoint_starts_with_exactly_the_template_app_settings(fake_mlflow, template):
    """What the web app passes is what the entry point needs: with every app setting it starts; without any
    one of the Key Vault-backed ones it refuses."""
    env, record = fake_mlflow
    settings = {name: SETTINGS.get(name, "x") for name in app_settings(template)}
    settings["MLFLOW_AUTH_DEFAULT_PERMISSION"] = "READ"
    settings["PORT"] = settings["WEBSITES_PORT"] = "8080"
    settings["MLFLOW_WORKERS"] = "2"
    assert entrypoint(env | settings).returncode == 0
    assert json.loads(record.read_text())["argv"][:3] == ["server", "--app-name", "basic-auth"]
    for name in SECRET_SETTINGS:
        record.unlink(missing_ok=True)
        result = entrypoint(env | {k: v for k, v in settings.items() if k != name})
        assert result.returncode == 2 and not record.exists(), name


@pytest.mark.integration
def test_entrypoint_runs_the_real_server_authenticated_behind_its_host_checks(tmp_path):
    """The real `mlflow server` from the entry point (SQLite stores, local artifacts): /health answers
    anyone, the API wants credentials, and only the configured host name and origin get through."""
    port = free_port()
    public = "mlflow-test.azurewebsites.net"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZURE_"))}
    env |= {
        "HOME": str(tmp_path),
        "PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp_path / 'auth.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": SETTINGS["MLFLOW_AUTH_ADMIN_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": SETTINGS["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        "MLFLOW_SERVER_ALLOWED_HOSTS": public,
        "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": f"https://{public}",
    }
    server = ServerProcess(["bash", str(ENTRYPOINT)], env, tmp_path / "server.log", port, cwd=tmp_path)
    server.name = "tracking server"
    base = f"http://127.0.0.1:{port}"
    admin = ("admin", SETTINGS["MLFLOW_AUTH_ADMIN_PASSWORD"])
    search = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        server.wait_until_ok(f"{base}/health", timeout=120)
        assert requests.get(f"{base}/health", headers={"Host": "elsewhere.example"}, timeout=10).status_code == 200
        assert requests.get(search, headers={"Host": public}, timeout=10).status_code == 401
        assert requests.get(search, headers={"Host": public}, auth=("admin", "wrong"), timeout=10).status_code == 401
        assert requests.get(search, headers={"Host": public}, auth=admin, timeout=10).status_code == 200
        assert requests.get(search, headers={"Host": "elsewhere.example"}, auth=admin, timeout=10).status_code == 403
        create = f"{base}/api/2.0/mlflow/experiments/create"
        for origin, status in ((f"https://{public}", 200), ("https://elsewhere.example", 403)):
            answer = requests.post(
                create,
                json={"name": f"from {origin}"},
                auth=admin,
                timeout=10,
                headers={"Host": public, "Origin": origin},
            )
            assert answer.status_code == status, (origin, answer.text)
        log = server.log()
        for secret in SECRETS[1:]:
            assert secret not in log
        command_lines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        for secret in SECRETS[1:]:
            assert secret not in command_lines
    finally:
        server.stop()
