"""Who is signed in, and in which role (docs/design.md, "Sign-in, roles and agreed verdicts").

Panel's own authentication signs people in (`panel serve --basic-auth credentials.json`, or Entra ID
through `--oauth-provider azure`); `pn.state.user` is the sign-in name. Roles come from a small JSON
file named by `DASHBOARD_ROLES`, `{"name": "tester" | "reviewer"}`: a signed-in name the file does
not list is a tester, the role that cannot decide conflicts. A dashboard served without sign-in has
one unnamed tester, as the verdicts stored before sign-in have.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dashboard.feedback import REVIEWER, ROLES, TESTER

ROLES_ENV = "DASHBOARD_ROLES"


class RolesError(ValueError):
    """The roles file cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Person:
    """The person at the page: the sign-in name (None without sign-in) and the role."""

    name: str | None
    role: str = TESTER

    @property
    def is_reviewer(self) -> bool:
        return self.role == REVIEWER

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})" if self.name else "not signed in (an unnamed tester)"


def load_roles(path: str | os.PathLike) -> dict[str, str]:
    """The roles file as {name: role}.

    Raises:
        RolesError: a missing or unreadable file, not a JSON object, or a role outside `ROLES`.
    """
    file = Path(path)
    try:
        roles = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RolesError(f"the roles file {file} cannot be read ({error})") from None
    if not isinstance(roles, dict):
        raise RolesError(f'the roles file {file} must be a JSON object {{"name": "tester" or "reviewer"}}')
    for name, role in roles.items():
        if role not in ROLES:
            raise RolesError(f"the roles file {file} gives {name!r} the role {role!r}; roles are {', '.join(ROLES)}")
    return roles


def person_for(user: str | None, roles_path: str | None) -> tuple[Person, str | None]:
    """The signed-in person and, when the roles file cannot be used, why (everyone is then a tester)."""
    if not user:
        return Person(None), None
    if not roles_path:
        return Person(user), None
    try:
        roles = load_roles(roles_path)
    except RolesError as error:
        return Person(user), f"{error}: everyone is a tester until it is fixed."
    return Person(user, roles.get(user, TESTER)), None


def header_html(person: Person) -> str:
    """The sign-in name and role for the page's header, with the way out."""
    if not person.name:
        return '<span id="signed-in" style="color:white">Not signed in: verdicts are stored without a name</span>'
    return (
        f'<span style="color:white">Signed in as <b id="signed-in">{html.escape(person.label)}</b> · '
        '<a href="./logout" style="color:white">Sign out</a></span>'
    )
