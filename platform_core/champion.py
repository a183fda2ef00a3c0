"""Champion assets: one lifecycle for every model, candidate → champion → predictions.

A model's candidate asset trains, evaluates and registers a version as ``candidate``; its
blocking checks gate it. The champion asset (``<model>_champion``, built here) depends on the
candidate and materializes the promotion decision: which version serves, why, the headline
metrics compared with the champion it would replace, and who approved it. Predictions and
whatever else reads the champion depend on the champion asset, so the lineage says which model
scored what. The registry file stays the storage; the champion asset is its decision log.

Materialized with no config (automation, a retrain job), it decides on the newest candidate:
champion, ``pending_approval`` under ``MODEL_APPROVAL=manual``, or rejected. Materialized from
the Launchpad with ``{"version": N, "approver": "name"}`` it approves a pending version or
rolls back to an earlier champion: approval and rollback are the same action.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from platform_core.automation import BUILD_WHEN_MISSING
from platform_core.model_store import ModelStoreResource
from platform_core.promotion import (
    CHAMPION_SCORE,
    SCORE,
    Requirement,
    gate_problems,
    latest_version,
)
from platform_core.registry import (
    ModelRegistry,
    ModelVersion,
    PromotionDecision,
    RegistryError,
    Status,
)


@dataclass(frozen=True)
class Headline:
    """One figure worth reading first: the registry metric, its name and meaning in plain
    words, and which way is better."""

    metric: str
    label: str
    measures: str
    lower_is_better: bool = True
    #: A figure that should be near a value (an interval's coverage): closest is better.
    target: float | None = None

    @property
    def better(self) -> str:
        if self.target is not None:
            return f"closest to {self.target:g} is better"
        return "lower is better" if self.lower_is_better else "higher is better"

    def value(self, mv: ModelVersion | None) -> float | None:
        if mv is None:
            return None
        v = mv.metrics.get(self.metric)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    def verdict(self, new: float | None, old: float | None) -> str:
        """``better``, ``worse`` or ``same`` for ``new`` against ``old``; empty when either is
        missing."""
        if new is None or old is None:
            return ""
        if self.target is not None:
            new, old = abs(new - self.target), abs(old - self.target)
        if math.isclose(new, old, rel_tol=1e-9, abs_tol=1e-12):
            return "same"
        if self.target is not None:
            return "better" if new < old else "worse"
        return "better" if (new < old) == self.lower_is_better else "worse"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def headlines_markdown(
    headlines: Sequence[Headline],
    new: ModelVersion | None,
    old: ModelVersion | None,
    new_label: str,
    old_label: str,
) -> dg.MetadataValue:
    """The headline figures of ``new`` next to ``old`` as one markdown table, in plain words."""
    rows = [
        f"| figure | what it measures | {new_label} | {old_label} | |",
        "|---|---|---|---|---|",
    ]
    for h in headlines:
        a, b = h.value(new), h.value(old)
        rows.append(
            f"| {h.label} | {h.measures} ({h.better}) | {_fmt(a)} | {_fmt(b)} | {h.verdict(a, b)} |"
        )
    return dg.MetadataValue.md("\n".join(rows))


def metrics_table(metrics: dict[str, float]) -> dg.MetadataValue:
    """Every metric of a version as one table (name, value), instead of loose floats."""
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"metric": k, "value": float(v)})
            for k, v in sorted(metrics.items())
            if isinstance(v, int | float) and not math.isnan(float(v))
        ],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("metric", "string"), dg.TableColumn("value", "float")]
        ),
    )


class ChampionConfig(dg.Config):
    """Leave empty to decide on the newest candidate; set ``version`` and ``approver`` to
    approve a pending version or roll back to an earlier champion."""

    version: int | None = Field(
        default=None,
        description="Make this version champion: a pending_approval version (approval) or an "
        "earlier champion, now retired (rollback). Empty: decide on the newest candidate.",
    )
    approver: str = Field(
        default="", description="Who approves or rolls back (required with version)."
    )
    note: str = Field(default="", description="Why, in a few words (kept in the registry).")


def champion_run_config(
    asset_key: dg.AssetKey, version: int, approver: str, note: str = ""
) -> dict:
    """The run config that approves ``version`` (or rolls back to it) on ``asset_key``."""
    config = {"version": version, "approver": approver} | ({"note": note} if note else {})
    return {"ops": {asset_key.to_python_identifier(): {"config": config}}}


#: How a model decides on a candidate that passed its gate, given the current champion.
Decider = Callable[[ModelStoreResource, ModelVersion, ModelVersion | None], PromotionDecision]


def scored_decision(
    model_store: ModelStoreResource, candidate: ModelVersion, champion: ModelVersion | None
) -> PromotionDecision:
    """Lower CV error than the champion's recipe on the same folds (a tie is enough when the
    candidate saw more rows), then the approval rule."""
    m = candidate.metrics
    more_data = champion is not None and candidate.params.get(
        "training_rows", 0
    ) > champion.params.get("training_rows", 0)
    return model_store.decide(m[SCORE], m.get(CHAMPION_SCORE), more_data=more_data)


@dataclass(frozen=True)
class Decision:
    """What one champion materialization did."""

    action: str  # promoted, pending_approval, rejected, approved, rolled_back, unchanged
    version: int
    reason: str
    approver: str


def _get(registry: ModelRegistry, version: int) -> ModelVersion:
    try:
        return registry.get(version)
    except RegistryError as exc:
        known = [v.version for v in registry.versions()]
        raise dg.Failure(f"{exc} (registered versions: {known})") from exc


def by_hand(registry: ModelRegistry, config: ChampionConfig) -> Decision:
    """Approve a pending version, or roll back to an earlier champion, on a person's word."""
    assert config.version is not None
    approver = config.approver.strip()
    if not approver:
        raise dg.Failure(
            f"approver: say who makes {registry.name}:v{config.version} champion (run config "
            f'{{"version": {config.version}, "approver": "<your name>"}})'
        )
    mv = _get(registry, config.version)
    if mv.status == Status.PENDING_APPROVAL:
        mv = registry.approve(mv.version, approver, config.note)
        return Decision("approved", mv.version, mv.history[-1]["reason"], approver)
    if mv.status == Status.RETIRED:
        mv = registry.roll_back(mv.version, approver, config.note)
        return Decision("rolled_back", mv.version, mv.history[-1]["reason"], approver)
    if mv.status == Status.CHAMPION:
        return Decision("unchanged", mv.version, f"{mv.label} is already champion", approver)
    eligible = [
        v.version
        for v in registry.versions()
        if v.status in (Status.PENDING_APPROVAL, Status.RETIRED)
    ]
    raise dg.Failure(
        f"{mv.label} is {mv.status} ({mv.history[-1]['reason']}): only a pending_approval "
        f"version (approval) or an earlier champion (rollback) can be made champion; "
        f"eligible: {eligible}"
    )


def decide(
    model_store: ModelStoreResource,
    registry: ModelRegistry,
    version: int,
    baseline_label: str | None,
    requirement: Requirement | None,
    decider: Decider,
) -> Decision:
    """Decide once on candidate ``version``: the gate again (a champion materialized on its
    own must not promote what the gate refused), then the model's rule and the approval rule.
    A version decided earlier is reported, not decided twice."""
    candidate = _get(registry, version)
    if candidate.status != Status.CANDIDATE:
        last = candidate.history[-1]
        return Decision(
            "unchanged",
            version,
            f"{candidate.label} was decided earlier: {candidate.status} ({last['reason']})",
            last.get("by", ""),
        )
    problems = gate_problems(registry, candidate, baseline_label, requirement)
    if problems:
        reason = "; ".join(problems)
        registry.set_status(version, Status.REJECTED, reason)
        return Decision("rejected", version, reason, "")
    decision = decider(model_store, candidate, registry.champion())
    registry.set_status(version, decision.status, decision.reason)
    automatic = "automatic (MODEL_APPROVAL=auto)" if decision.status == Status.CHAMPION else ""
    return Decision(str(decision.status), version, decision.reason, automatic)


def build_champion_asset(
    *,
    name: str,
    candidate: dg.AssetKey,
    model_name: str,
    group_name: str,
    headlines: Sequence[Headline],
    baseline_label: str | None = None,
    requirement: Requirement | None = None,
    decider: Decider = scored_decision,
    candidate_version_field: str = "version",
    automation_condition: dg.AutomationCondition | None = BUILD_WHEN_MISSING,
    description: str = "",
) -> dg.AssetsDefinition:
    """The champion asset of ``model_name``, downstream of its ``candidate`` asset (whose
    materialization metadata names the version, under ``candidate_version_field``)."""
    key = dg.AssetKey(name)

    @dg.asset(
        name=name,
        group_name=group_name,
        deps=[candidate],
        kinds={"python", "json"},
        automation_condition=automation_condition,
        description=(description + " " if description else "")
        + "The promotion decision: which version serves, why, its headline figures next to "
        "the champion it replaces, and who approved it. Materialize with run config "
        '{"version": N, "approver": "<name>"} to approve a pending version or roll back to an '
        "earlier champion.",
    )
    def _champion(
        context: dg.AssetExecutionContext, config: ChampionConfig, model_store: ModelStoreResource
    ) -> dg.MaterializeResult:
        registry = model_store.registry(model_name)
        previous = registry.champion()
        if config.version is not None:
            decision = by_hand(registry, config)
        else:
            version = latest_version(context.instance, candidate, candidate_version_field)
            if version is None:
                raise dg.Failure(
                    f"{model_name} has no candidate yet: materialize "
                    f"{candidate.to_user_string()} first"
                )
            decision = decide(model_store, registry, version, baseline_label, requirement, decider)
        current = registry.champion()
        decided = registry.get(decision.version)
        context.log.info(
            f"{decided.label}: {decision.action} ({decision.reason}); serving "
            f"{current.label if current else 'nothing'}"
        )
        metadata: dict = {
            "champion_version": current.version if current else "none",
            "decision": decision.action,
            "decided_version": decision.version,
            "reason": decision.reason,
            "approver": decision.approver or "—",
            "approval_mode": model_store.approval,
            "previous_champion": previous.version if previous else "none",
            "headline_figures": headlines_markdown(
                headlines,
                decided,
                previous,
                f"v{decided.version} ({decided.status})",
                f"previous champion v{previous.version}" if previous else "no previous champion",
            ),
        }
        if current is not None:
            metadata["champion_metrics"] = metrics_table(current.metrics)
        pending = [v.version for v in registry.versions() if v.status == Status.PENDING_APPROVAL]
        if pending:
            metadata["waiting_for_approval"] = dg.MetadataValue.md(
                f"Versions {pending} wait for approval: materialize `{name}` from the Launchpad "
                f'with run config `{{"version": {pending[-1]}, "approver": "<your name>"}}`.'
            )
        return dg.MaterializeResult(
            metadata=metadata,
            data_version=dg.DataVersion(f"v{current.version}" if current else "none"),
        )

    assert _champion.key == key
    return _champion
