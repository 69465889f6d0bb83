"""What every handler works with: the operator's settings and the clients made from them.

Made once, before kopf starts, and closed once kopf has stopped (ferry.app), so no handler runs
before the clients exist or after they are closed; handlers receive it as the keyword `context`
(ferry.handlers.register), never through kopf's untyped memo.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.adapters.aws import Aws, AwsSettings
from ferry.adapters.kube import Kube
from ferry.adapters.stats import StatsScraper
from ferry.services.status_writer import StatusWriter
from ferry.settings import Settings


@dataclass(frozen=True)
class OperatorContext:
    settings: Settings
    kube: Kube
    """The one Kubernetes client."""
    aws: Aws
    scraper: StatsScraper
    """The autoscaler's client of the proxies' /stats."""
    status: StatusWriter
    """The one writer of the APIs' status."""

    @classmethod
    async def connect(cls, settings: Settings) -> OperatorContext:
        kube = await Kube.connect()
        scraper = StatsScraper(
            concurrency=settings.scrape_concurrency,
            timeout=settings.scrape_timeout,
            tick=settings.autoscale_interval,
        )
        return cls(settings, kube, Aws(AwsSettings.from_env()), scraper, StatusWriter(kube))

    async def close(self) -> None:
        await self.kube.close()
        await self.scraper.close()
        self.aws.close()
