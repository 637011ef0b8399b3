"""The sidebar's model-server line: whether the server answers, and its MLflow version."""

from __future__ import annotations

import asyncio

import panel as pn

from dashboard.client import ModelClient, ModelServerError
from dashboard.page import message_html


class ServerStatus:
    """The status notice and its "Check the model server" button."""

    def __init__(self, client: ModelClient) -> None:
        self.client = client
        self.status = pn.pane.HTML(message_html(f"Model server: {client.base_url}", "info", "server-status"))
        self.check_button = pn.widgets.Button(label="Check the model server", color="default")
        self.check_button.on_click(self.check)

    def widgets(self) -> list:
        return [self.status, self.check_button]

    async def check(self, event=None) -> None:
        """Ask the server in a worker thread: a dead server never freezes the page."""
        ready = await asyncio.to_thread(self.client.ping)
        if not ready:
            text = f"Model server {self.client.base_url} is not answering. Predictions will fail until it is up."
            self.status.object = message_html(text, "error", "server-status")
            return
        try:
            version = await asyncio.to_thread(self.client.version)
        except ModelServerError:
            version = "unknown"
        text = f"Model server {self.client.base_url} is up (MLflow {version})."
        self.status.object = message_html(text, "ok", "server-status")
