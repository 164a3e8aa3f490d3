"""The monitoring reads the API and the CLI make: the bank's shape, label agreement, chart counts."""

from __future__ import annotations

from ..bank import SqlBank
from ..bank.stats_sql import CellCount
from ..settings import Settings
from .agreement import AgreementReport
from .stats import StatsReport, bank_stats, label_agreement


class Monitor:
    """Reports over one bank, with the thresholds of one set of settings."""

    def __init__(self, bank: SqlBank, settings: Settings) -> None:
        self.bank = bank
        self.settings = settings

    def stats(self) -> StatsReport:
        return bank_stats(self.bank, self.settings)

    def agreement(self) -> AgreementReport:
        return label_agreement(self.bank, self.settings)

    def cell_counts(self) -> list[CellCount]:
        """Live examples by topic × difficulty × source × status, what the charts draw."""
        return self.bank.cell_counts()
