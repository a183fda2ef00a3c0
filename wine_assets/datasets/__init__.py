"""Datasets that ship inside the package: the UCI wine quality files (CC BY 4.0).

They are what a fresh machine trains on. A copy under ``$PLATFORM_DATA_DIR/wine_quality``
takes precedence when it holds both files (the same files, or a user's own), so the folder
that holds the other datasets can hold these too. Licence, citation and checksums:
``wine_quality/LICENSE.md``.
"""

from __future__ import annotations

from pathlib import Path

from platform_core.settings import data_dir

#: The shipped copy (red, white and the dataset's description).
SHIPPED_WINE_QUALITY = Path(__file__).resolve().parent / "wine_quality"
WINE_FILES = ("winequality-red.csv", "winequality-white.csv")
SHA256 = {
    "winequality-red.csv": "4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e",
    "winequality-white.csv": "76c3f809815c17c07212622f776311faeb31e87610d52c26d87d6e361b169836",
    "winequality.names": "36fde3bdc5f298ead78bd52f7fec8393466b1e51a2f519ef601cb31234983c1d",
}


def wine_quality_dir() -> Path:
    """``$PLATFORM_DATA_DIR/wine_quality`` when it holds both files, else the shipped copy."""
    local = data_dir() / "wine_quality"
    if all((local / name).is_file() for name in WINE_FILES):
        return local
    return SHIPPED_WINE_QUALITY
