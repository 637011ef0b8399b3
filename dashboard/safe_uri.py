"""A tracking store's address as the page may show it: never its credentials or tokens.

`MLFLOW_TRACKING_URI` may carry `user:password@` (a database URL, a server behind basic auth) or a token
in its query string; the page and the log name the store without either (docs/design.md, "Dashboard input
and output"). `shown_uri` names the store in every sentence; `redacted` cleans an error's text, since MLflow's errors
repeat the request URL whole.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# The `user:password@` of a URL anywhere in a text.
_USER_INFO = re.compile(r"(?<=://)[^/?#@\s]+@")


def shown_uri(uri: str) -> str:
    """The URI rebuilt from scheme, host and port only when it has a network location (user info, path and
    query dropped, whatever the scheme); a local store (`sqlite:///x.db`, `file:///runs`, a path) keeps its
    path without the query."""
    parts = urlsplit(uri)
    if not parts.netloc:
        return uri.split("?", 1)[0]
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is no number: name the host only
        port = ""
    return f"{parts.scheme}://{host}{port}"


def redacted(text: str) -> str:
    """`text` without the `user:password@` of any URL in it: an MLflow error quoted on the page or logged
    names the request URL with its credentials."""
    return _USER_INFO.sub("", text)
