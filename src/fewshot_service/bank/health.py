"""The bank prober: a background thread that asks the bank a trivial question every few seconds.

/readyz reports its last answer, so a probe never waits on the bank; writes fail fast (BankHealth.refusing)
while the last answer was "down", and work again from the first probe that succeeds.
"""

from __future__ import annotations

import logging
import threading

from ..errors import FewshotError
from .base import SqlBase
from .guard import retry_after

log = logging.getLogger(__name__)


class BankProber:
    def __init__(self, bank: SqlBase, interval_seconds: float) -> None:
        self.bank = bank
        self.interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        bank.health.retry_after = retry_after(interval_seconds)

    def start(self) -> None:
        self.probe()  # the first answer before the first request, where the bank answers at all quickly
        self.bank.health.probing = True
        self._thread = threading.Thread(target=self._run, name="fewshot-bank-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.bank.health.probing = False
        if self._thread is not None:
            self._thread.join(timeout=5)

    def probe(self) -> bool:
        try:
            self.bank.ping()
        except FewshotError as exc:
            self.bank.health.mark(False, exc.message.removeprefix("the bank is unavailable: "))
            return False
        except Exception as exc:  # the prober must outlive any one failure
            self.bank.health.mark(False, f"{type(exc).__name__}: {exc}")
            return False
        self.bank.health.mark(True)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.probe()
