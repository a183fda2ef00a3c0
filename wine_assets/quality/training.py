"""UCI wine training data as an asset, with its quality checks."""

import dagster as dg
import pandas as pd
from pydantic import Field

from platform_core.automation import BUILD_WHEN_MISSING
from platform_core.tables import table_schema
from wine_assets.datasets import SHIPPED_WINE_QUALITY, wine_quality_dir
from wine_assets.features import FEATURES, QUALITY_SCALE, TARGET, WINE_TYPES, read_uci_csv
from wine_assets.quality import GROUP
from wine_assets.readings.schema import PHYSICAL_BOUNDS

TRAINING = dg.AssetKey("wine_training_data")


class TrainingSourceConfig(dg.Config):
    source: str = Field(
        default="",
        description="Folder, http(s):// URL or s3:// prefix holding winequality-{red,white}.csv; "
        "empty = PLATFORM_DATA_DIR/wine_quality when it holds both files, else the copy "
        "shipped in the package.",
    )


def duplicate_share(df: pd.DataFrame) -> float:
    """Share of rows that exactly repeat an earlier row (features, quality and type)."""
    return float(df.duplicated().mean()) if len(df) else 0.0


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    automation_condition=BUILD_WHEN_MISSING,
    description="UCI Wine Quality (Cortez et al. 2009), red and white, typed, with wine_type.",
)
def wine_training_data(config: TrainingSourceConfig) -> dg.Output[pd.DataFrame]:
    base = config.source.rstrip("/") or str(wine_quality_dir())
    df = pd.concat(
        [read_uci_csv(f"{base}/winequality-{t}.csv", t) for t in WINE_TYPES], ignore_index=True
    )
    per_type = {t: int((df["wine_type"] == t).sum()) for t in WINE_TYPES}
    return dg.Output(
        df,
        metadata={
            "dagster/column_schema": table_schema(df),
            "source": base,
            "shipped_copy": base == str(SHIPPED_WINE_QUALITY),
            "rows_by_type": dg.MetadataValue.json(per_type),
            "duplicate_share_red": duplicate_share(df[df["wine_type"] == "red"]),
            "duplicate_share_white": duplicate_share(df[df["wine_type"] == "white"]),
            "quality_counts": dg.MetadataValue.json(
                {str(k): int(v) for k, v in df[TARGET].value_counts().sort_index().items()}
            ),
        },
    )


@dg.asset_check(asset=TRAINING, blocking=True, description="No null feature, label or type.")
def training_no_nulls(wine_training_data: pd.DataFrame) -> dg.AssetCheckResult:
    nulls = {c: int(n) for c, n in wine_training_data.isna().sum().items() if n}
    return dg.AssetCheckResult(
        passed=not nulls,
        metadata={"nulls": dg.MetadataValue.json(nulls)},
    )


@dg.asset_check(
    asset=TRAINING,
    blocking=True,
    description="Every feature within physical bounds and quality within 0–10.",
)
def training_values_in_range(wine_training_data: pd.DataFrame) -> dg.AssetCheckResult:
    df = wine_training_data
    bad = {
        f: int(((df[f] < lo) | (df[f] > hi)).sum())
        for f, (lo, hi) in PHYSICAL_BOUNDS.items()
        if f in FEATURES
    }
    lo, hi = QUALITY_SCALE
    bad[TARGET] = int(((df[TARGET] < lo) | (df[TARGET] > hi)).sum())
    bad = {k: v for k, v in bad.items() if v}
    return dg.AssetCheckResult(
        passed=not bad,
        metadata={"rows_out_of_range": dg.MetadataValue.json(bad)},
    )


@dg.asset_check(
    asset=TRAINING,
    description="Exact duplicate rows reported (they flatter random CV); WARN above 25 %.",
)
def training_duplicate_share(wine_training_data: pd.DataFrame) -> dg.AssetCheckResult:
    shares = {
        t: duplicate_share(wine_training_data[wine_training_data["wine_type"] == t])
        for t in WINE_TYPES
    }
    return dg.AssetCheckResult(
        passed=max(shares.values()) <= 0.25,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={f"duplicate_share_{t}": round(s, 4) for t, s in shares.items()},
    )


training_checks = [training_no_nulls, training_values_in_range, training_duplicate_share]
