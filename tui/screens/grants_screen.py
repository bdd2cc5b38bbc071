"""Grants: the active ones, who made them, their scope, uses and time left; `x` revokes."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Label, Static

from tui.client import ApiError
from tui.messages import ActionFailed, GrantRevoked, GrantsLoaded
from tui.modals.confirm_modal import ConfirmModal
from tui.screens.base import DashboardScreen
from tui.text import person
from tui.widgets.grant_table import GrantTable, describe, grant_cells
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.status_bar import StatusBar

REFRESH_EVERY = 5.0  # uses are not announced as events; re-read them while shown


class GrantsScreen(DashboardScreen):
    WATCHES = frozenset({"grants"})
    BINDINGS: ClassVar[list[BindingType]] = [Binding("x", "revoke", "Revoke", id="revoke")]

    def compose(self) -> ComposeResult:
        yield StatusBar("grants")
        yield GrantTable(id="grants")
        yield Static("", id="grant-detail")
        yield Label("No active grants. Approve and remember (r) on the queue makes one.",
                    id="no-grants", classes="hint")  # fmt: skip
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.set_interval(1.0, self.sync)
        self.set_interval(REFRESH_EVERY, self.reload)
        self.query_one(GrantTable).focus()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.reload()

    def reload(self) -> None:
        if self.is_current:
            self.run_worker(self._load(), group="grants", exclusive=True)

    async def _load(self) -> None:
        try:
            grants = await self.dashboard.backend.grants()
        except ApiError:
            return  # the status bar already says the API is unreachable
        self.post_message(GrantsLoaded(grants))

    def on_grants_loaded(self, message: GrantsLoaded) -> None:
        self.dashboard.grant_book.reset(message.grants)
        self.sync()

    def sync(self) -> None:
        super().sync()
        if not self.is_mounted:
            return
        now = self.dashboard.clock()
        grants = self.dashboard.grant_book.all()
        table = self.query_one(GrantTable)
        at = table.cursor_key()
        table.show_rows([(g.id, grant_cells(g, now, table.widths)) for g in grants])
        if at is not None:
            table.keep_cursor_on(at)
        self.query_one("#no-grants").display = not grants
        self._show_detail()

    @on(DataTable.RowHighlighted, "#grants")
    def _show_detail(self) -> None:
        key = self.query_one(GrantTable).cursor_key()
        grant = self.dashboard.grant_book.get(key) if key else None
        text = describe(grant, self.dashboard.clock()) if grant else ""
        self.query_one("#grant-detail", Static).update(Text(text))

    def on_keyed_table_refitted(self, message: KeyedTable.Refitted) -> None:
        self.sync()

    def action_revoke(self) -> None:
        grant_id = self.query_one(GrantTable).cursor_key()
        grant = self.dashboard.grant_book.get(grant_id) if grant_id else None
        if grant is None:
            self.notify("No grant to revoke.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._revoke(grant.id), group="revoke")

        detail = f"{grant.target}, for {grant.who}, made by {person(grant.created_by)}"
        self.app.push_screen(ConfirmModal(f"Revoke grant {grant.id}?", detail, "Revoke"), answered)

    async def _revoke(self, grant_id: str) -> None:
        try:
            grant = await self.dashboard.backend.revoke_grant(grant_id)
        except ApiError as exc:
            self.post_message(ActionFailed(f"revoke {grant_id}", exc.message))
            return
        self.post_message(GrantRevoked(grant))

    def on_grant_revoked(self, message: GrantRevoked) -> None:
        self.dashboard.grant_book.drop(message.grant.id)
        self.notify(f"Revoked {message.grant.id}.")
        self.sync()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.notify(f"Could not {message.what}: {message.reason}", severity="error")
