"""Stream and group names, all derived from the prefix."""

from __future__ import annotations

from dataclasses import dataclass

# Every stream-consuming stage, in pipeline order: each has a worker, a group, compose and Kubernetes manifests.
# (The HTTP gateway is no stage: it only produces, to raw and fetch.)
STAGES = ("fetcher", "cleaner", "classifier", "storage")


@dataclass(frozen=True)
class Topology:
    prefix: str = "newsflow"

    def stream(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    @property
    def fetch(self) -> str:
        return self.stream("fetch")

    @property
    def raw(self) -> str:
        return self.stream("raw")

    @property
    def cleaned(self) -> str:
        return self.stream("cleaned")

    @property
    def classified(self) -> str:
        return self.stream("classified")

    @property
    def enriched(self) -> str:
        return self.stream("enriched")

    @property
    def dlq(self) -> str:
        return self.stream("dlq")

    def group(self, stage: str) -> str:
        return f"{self.prefix}:{stage}"

    def input_of(self, stage: str) -> str:
        return {"fetcher": self.fetch, "cleaner": self.raw, "classifier": self.cleaned, "storage": self.classified}[stage]

    def output_of(self, stage: str) -> str:
        return {"fetcher": self.raw, "cleaner": self.cleaned, "classifier": self.classified, "storage": self.enriched}[stage]

    def all_streams(self) -> list[str]:
        return [self.fetch, self.raw, self.cleaned, self.classified, self.enriched, self.dlq]
