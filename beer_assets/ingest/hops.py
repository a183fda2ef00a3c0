"""Hop additions from Punk API recipes: timing, alpha acids and a Tinseth bitterness estimate.

The Punk API ``ingredients.hops[].add`` field is free text typed by many contributors
('start', 'Dry Hop', '70', 'Flame Out', 'FV Addition', ...).  This module maps it onto a small
set of brewing stages with the minutes of boil each addition sees, so bitterness can be estimated
with Tinseth's formula.  Nothing here raises on unexpected text: unknown forms become stage
``"unknown"`` and are counted, because one odd recipe must not break an ingest run.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

BITTERING = "bittering"
BOIL = "boil"
AROMA = "aroma"
DRY_HOP = "dry_hop"
FIRST_WORT = "first_wort"
MASH = "mash"
UNKNOWN = "unknown"

#: Every stage, in brewing order; ``unknown`` last.
STAGES: tuple[str, ...] = (MASH, FIRST_WORT, BITTERING, BOIL, AROMA, DRY_HOP, UNKNOWN)

#: Boil length assumed when a recipe only says 'start': DIY Dog recipes boil 60-90 min and the
#: recipes with explicit minutes mostly use 60-70.  Overridden per beer by ``infer_boil_minutes``.
DEFAULT_BOIL_MINUTES = 60.0

#: Additions with at least this many minutes left are counted as bittering, shorter ones as boil
#: (flavour) additions.  45 separates the data's 60/65/70/90 group from its 10/15/30 group.
BITTERING_MIN_MINUTES = 45.0

#: Boil-minute equivalent of flame-out / whirlpool hops.  Tinseth gives 0 at 0 min, but hot wort
#: still isomerises alpha acids while it stands and cools; 5 min of boil utilisation is about 20 %
#: of a 60-min addition, a common homebrew rule of thumb for a short whirlpool.
WHIRLPOOL_EQUIVALENT_MINUTES = 5.0

#: Boil-minute equivalent of mash hops: little isomerisation at mash temperatures.
MASH_EQUIVALENT_MINUTES = 5.0

#: Alpha acid % assumed for a hop variety missing from ``ALPHA_ACID_PCT`` (median of the table).
DEFAULT_ALPHA_ACID_PCT = 10.0

#: Alpha acid % of CO2 hop extract ('Columbus Extract', 'CO2 Extract'): sold standardised at
#: roughly 40-50 %; we use the low end because kettle utilisation of extract is uncertain.
EXTRACT_ALPHA_ACID_PCT = 40.0


@dataclass(frozen=True)
class Addition:
    """One hop addition after normalisation.

    ``boil_minutes`` is the real time left in the boil (``None`` when the hop never sees the boil,
    e.g. dry hops); ``effective_minutes`` is what Tinseth is fed, which adds a small utilisation
    for flame-out/whirlpool and mash hops that sit in hot wort without boiling.
    """

    raw: str
    stage: str
    boil_minutes: float | None
    effective_minutes: float

    @property
    def known(self) -> bool:
        """False when the text could not be interpreted (stage ``unknown``)."""
        return self.stage != UNKNOWN


def _norm_text(text: str) -> str:
    """Lower-case, strip accents/trademark signs and collapse punctuation to single spaces."""
    text = text.replace("™", " ").replace("®", " ")  # before NFKD, which turns ™ into "TM"
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep decimal points only
    text = re.sub(r"[^a-z0-9.]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


_NUMERIC_ADD = re.compile(r"(\d+(?:\.\d+)?)\s*(?:m|min|mins|minute|minutes)?")

# Text forms seen in the dump (and obvious spelling variants), keyed after ``_norm_text``.
_DRY_HOP_FORMS = {
    "dry hop",
    "dry hops",
    "dryhop",
    "dry hopped",
    "dry hopping",
    "fv",
    "fv addition",
    "fermenter",
    "fermentor",
    "secondary",
    "maturation",
    "conditioning",
    "wood ageing",
    "wood aging",
}
_AROMA_FORMS = {
    "end",
    "flame out",
    "flameout",
    "knockout",
    "knock out",
    "whirlpool",
    "hop stand",
    "hopstand",
}


def normalise_addition(add: Any, boil_minutes: float = DEFAULT_BOIL_MINUTES) -> Addition:
    """Map a raw ``add`` value to a stage and boil minutes.

    Choices (case and punctuation are ignored):

    * 'start' -> bittering at the beer's full boil (``boil_minutes``, default 60);
    * 'middle' -> boil (flavour) addition at half the boil;
    * 'kettle' -> boil addition at half the boil: kettle additions without a time in the data are
      sugars and fruit, so only the stage matters;
    * 'end', 'flame out', 'whirlpool' -> aroma, 0 min of boil, ``WHIRLPOOL_EQUIVALENT_MINUTES``
      of effective utilisation;
    * numbers ('0', '10', '70', '90 min') -> minutes left in the boil: >= 45 bittering,
      1-44 boil, 0 aroma (flame-out);
    * 'dry hop', 'fv', 'fv addition', 'secondary', 'maturation', 'wood ageing' -> dry hop
      (fermenter; no boil, no isomerisation);
    * 'first wort hops' -> first wort, full boil (its extra bitterness claim is ignored);
    * 'mash' -> mash, ``MASH_EQUIVALENT_MINUTES`` effective;
    * anything else ('Additions', None, '') -> unknown with no bitterness contribution.
    """
    raw = "" if add is None else str(add)
    text = _norm_text(raw)
    half = boil_minutes / 2.0
    if text == "start":
        return Addition(raw, BITTERING, boil_minutes, boil_minutes)
    if text == "middle":
        return Addition(raw, BOIL, half, half)
    if text == "kettle":
        return Addition(raw, BOIL, half, half)
    if text in _AROMA_FORMS:
        return Addition(raw, AROMA, 0.0, WHIRLPOOL_EQUIVALENT_MINUTES)
    if text in _DRY_HOP_FORMS or text.startswith("dry hop"):
        return Addition(raw, DRY_HOP, None, 0.0)
    if text in {"first wort hops", "first wort", "fwh"}:
        return Addition(raw, FIRST_WORT, boil_minutes, boil_minutes)
    if text in {"mash", "mash hop", "mash hops"}:
        return Addition(raw, MASH, None, MASH_EQUIVALENT_MINUTES)
    match = _NUMERIC_ADD.fullmatch(text)
    if match:
        return _numeric_addition(raw, float(match.group(1)))
    logger.debug("unknown hop addition %r", raw)
    return Addition(raw, UNKNOWN, None, 0.0)


def _numeric_addition(raw: str, minutes: float) -> Addition:
    """Minutes-remaining additions: 0 is flame-out, >= 45 bittering, the rest boil."""
    if minutes <= 0:
        return Addition(raw, AROMA, 0.0, WHIRLPOOL_EQUIVALENT_MINUTES)
    if minutes >= BITTERING_MIN_MINUTES:
        return Addition(raw, BITTERING, minutes, minutes)
    return Addition(raw, BOIL, minutes, minutes)


def infer_boil_minutes(adds: Iterable[Any], default: float = DEFAULT_BOIL_MINUTES) -> float:
    """Boil length of a recipe: its longest numeric addition if >= 45 min, else ``default``.

    The dump has no boil time field; recipes written in minutes reveal it ('70', '90'), the
    others ('start'/'middle') get the default.
    """
    longest = 0.0
    for add in adds:
        match = _NUMERIC_ADD.fullmatch(_norm_text("" if add is None else str(add)))
        if match:
            longest = max(longest, float(match.group(1)))
    return longest if longest >= BITTERING_MIN_MINUTES else default


def count_stages(adds: Iterable[Any]) -> Counter[str]:
    """Count additions per stage, e.g. to report how many ``add`` texts were not understood."""
    return Counter(normalise_addition(add).stage for add in adds)


# --- hop varieties -------------------------------------------------------------------------

#: Typical alpha acid % (mid-point of published ranges) for the varieties in the dump, keyed by
#: normalised name.  Crop years vary by +-2 points, which is noise the model has to absorb.
ALPHA_ACID_PCT: dict[str, float] = {
    "ahtanum": 5.5,
    "amarillo": 9.0,
    "apollo": 18.0,
    "ariana": 11.0,
    "bobek": 5.0,
    "bramling cross": 6.5,
    "bravo": 15.5,
    "callista": 3.5,
    "cascade": 6.0,
    "centennial": 10.0,
    "challenger": 7.5,
    "chinook": 13.0,
    "citra": 12.5,
    "columbus": 15.0,
    "comet": 10.0,
    "crystal": 4.5,
    "dana": 10.0,
    "east kent golding": 5.0,
    "east kent goldings": 5.0,
    "el dorado": 15.0,
    "ella": 15.0,
    "enigma": 16.0,
    "equinox": 14.5,
    "exp 366": 14.5,
    "first gold": 7.5,
    "fuggles": 4.5,
    "fuggle": 4.5,
    "galaxy": 14.0,
    "galena": 13.0,
    "german cascade": 6.0,
    "german comet": 10.0,
    "goldings": 5.0,
    "green bullet": 12.5,
    "hallertauer blanc": 10.0,
    "hallertauer mittelfruh": 4.0,
    "hbc 366": 14.5,
    "hbc 369": 11.5,
    "hercules": 16.0,
    "hersbrucker": 3.5,
    "huell melon": 7.0,
    "idaho 7": 13.5,
    "jester": 7.5,
    "kohatu": 6.5,
    "liberty": 4.5,
    "magnum": 13.5,
    "mandarina bavaria": 8.5,
    "mosaic": 12.5,
    "motueka": 7.0,
    "mt hood": 5.5,
    "nelson sauvin": 12.0,
    "nz nelson sauvin": 12.0,
    "nugget": 13.0,
    "pacific gem": 14.0,
    "pacific hallertau": 5.5,
    "pacific jade": 13.0,
    "pacifica": 5.5,
    "perle": 8.0,
    "pioneer": 9.0,
    "saaz": 3.5,
    "saphire": 3.5,
    "saphir": 3.5,
    "simcoe": 13.0,
    "sorachi ace": 12.0,
    "spalter": 4.5,
    "sterling": 7.0,
    "strisselspalt": 2.0,
    "styrian goldings": 5.0,
    "tettnang": 4.5,
    "tomahawk": 16.0,
    "vic secret": 16.0,
    "waimea": 16.0,
    "willamette": 5.0,
}

#: Substrings marking non-hop items listed under hops (fruit, spices, wood, sugar, coffee...).
#: They carry no alpha acids; matched on the normalised name.
ADJUNCT_KEYWORDS: tuple[str, ...] = (
    "juice",
    "concentrate",
    "puree",
    "peel",
    "coffee",
    "cacao",
    "cacoa",
    "cocoa",
    "oak",
    "whisky",
    "bourbon",
    "sugar",
    "honey",
    "lactose",
    "vanilla",
    "coconut",
    "tangerine",
    "lemon",
    "orange",
    "mango",
    "berr",
    "apricot",
    "peach",
    "plum",
    "pineapple",
    "cherry",
    "segement",
    "segment",
    "chili",
    "chilli",
    "habanero",
    "habenero",
    "pepper",
    "cinnamon",
    "coriander",
    "ginger",
    "cardamo",
    "nutmeg",
    "anis",
    "bay lea",
    "rosemary",
    "jasmine",
    "elderflower",
    "guarana",
    "kola",
    "maple",
    "marshmallow",
    "poppy",
    "sodium chloride",
    "salt",
    "husk",
    "cascara",
    "muscavado",
    "muscovado",
    "demerara",
)

_EXTRACT_SUFFIX = re.compile(r"\s*\(?\s*(?:co2|c02)?\s*(?:hop\s*)?extract\s*\)?$")


@dataclass(frozen=True)
class HopVariety:
    """Resolved hop/ingredient name: ``fallback`` is True when the AA % is a guess."""

    name: str
    key: str
    alpha_acid_pct: float
    is_hop: bool
    is_extract: bool = False
    fallback: bool = False


def normalise_hop_name(name: str) -> str:
    """Key for ``ALPHA_ACID_PCT``: lower case, no accents/™/®, single spaces."""
    return _norm_text(name)


def resolve_variety(name: Any) -> HopVariety:
    """Look up a hops-list entry: adjuncts get AA 0, extracts ``EXTRACT_ALPHA_ACID_PCT``,
    blends ('Bramling Cross/ First Gold') the mean of their parts, unknown hops the default."""
    raw = "" if name is None else str(name)
    key = normalise_hop_name(raw)
    if any(word in key for word in ADJUNCT_KEYWORDS):
        return HopVariety(raw, key, 0.0, is_hop=False)
    if key in ALPHA_ACID_PCT:
        return HopVariety(raw, key, ALPHA_ACID_PCT[key], is_hop=True)
    base = _EXTRACT_SUFFIX.sub("", key).strip()
    if base != key:
        return HopVariety(raw, base or key, EXTRACT_ALPHA_ACID_PCT, is_hop=True, is_extract=True)
    parts = [normalise_hop_name(p) for p in re.split(r"[/&+]| and ", raw) if p.strip()]
    if len(parts) > 1 and all(p in ALPHA_ACID_PCT for p in parts):
        mean = sum(ALPHA_ACID_PCT[p] for p in parts) / len(parts)
        return HopVariety(raw, key, mean, is_hop=True)
    logger.debug("no alpha acid for hop %r; using default", raw)
    return HopVariety(raw, key, DEFAULT_ALPHA_ACID_PCT, is_hop=True, fallback=True)


# --- bitterness ----------------------------------------------------------------------------


def specific_gravity(og: float) -> float:
    """Accept gravity as 1.050 or as the Punk API's 1050 and return 1.050."""
    return og / 1000.0 if og > 2.0 else og


def tinseth_utilisation(boil_minutes: float, og: float) -> float:
    """Tinseth's utilisation: bigness factor (gravity) x boil-time factor."""
    if boil_minutes <= 0:
        return 0.0
    bigness = 1.65 * 0.000125 ** (specific_gravity(og) - 1.0)
    time_factor = (1.0 - math.exp(-0.04 * boil_minutes)) / 4.15
    return bigness * time_factor


def tinseth_ibu(
    grams: float, alpha_acid_pct: float, boil_minutes: float, volume_l: float, og: float
) -> float:
    """IBU (mg/L iso-alpha acids) of one addition by Tinseth (1997).

    IBU = utilisation x (AA% / 100 x grams x 1000) / litres.  ``og`` may be 1.050 or 1050.
    Non-positive or missing volume gives NaN rather than a division error.
    """
    if (
        not volume_l
        or volume_l <= 0
        or any(
            v is None or (isinstance(v, float) and math.isnan(v))
            for v in (grams, alpha_acid_pct, boil_minutes, og)
        )
    ):
        return math.nan
    mg_alpha = alpha_acid_pct / 100.0 * grams * 1000.0
    return tinseth_utilisation(boil_minutes, og) * mg_alpha / volume_l


_GRAMS_PER_UNIT = {
    "g": 1.0,
    "gram": 1.0,
    "grams": 1.0,
    "kg": 1000.0,
    "kilogram": 1000.0,
    "kilograms": 1000.0,
    "mg": 0.001,
    "ml": 1.0,  # liquids listed under hops are juices/extracts: density ~1
    "oz": 28.349523125,
    "ounce": 28.349523125,
    "ounces": 28.349523125,
    "lb": 453.59237,
    "lbs": 453.59237,
    "pound": 453.59237,
    "pounds": 453.59237,
}


def amount_grams(amount: Mapping[str, Any] | None) -> float:
    """Convert ``{"value": v, "unit": u}`` to grams; NaN for counts ('total') or odd units."""
    if not amount:
        return math.nan
    value, unit = amount.get("value"), str(amount.get("unit") or "").strip().lower()
    if value is None or unit not in _GRAMS_PER_UNIT:
        return math.nan
    return float(value) * _GRAMS_PER_UNIT[unit]


@dataclass
class HopProfile:
    """Per-beer hop summary used by ``clean_beers``: grams by stage and a Tinseth estimate."""

    boil_minutes: float
    grams_by_stage: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    alpha_grams_by_stage: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(STAGES, 0.0)
    )
    tinseth_ibu: float = 0.0
    n_additions: int = 0
    n_unknown_additions: int = 0
    n_adjuncts: int = 0
    n_fallback_alpha: int = 0
    n_extract: int = 0
    adjunct_grams: float = 0.0
    unknown_adds: list[str] = field(default_factory=list)


def hop_profile(
    hops: Iterable[Mapping[str, Any]] | None, volume_l: float, og: float | None
) -> HopProfile:
    """Summarise a recipe's hops list.

    Only real hops count towards grams by stage and ``n_additions``; adjuncts listed under hops
    are tallied separately.  The Tinseth estimate is NaN when volume or OG is unknown.
    """
    hops = list(hops or [])
    profile = HopProfile(boil_minutes=infer_boil_minutes(h.get("add") for h in hops))
    for hop in hops:
        _add_to_profile(profile, hop, volume_l, og)
    return profile


def _add_to_profile(
    profile: HopProfile, hop: Mapping[str, Any], volume_l: float, og: float | None
) -> None:
    """Fold one hops-list entry into ``profile``."""
    variety = resolve_variety(hop.get("name"))
    grams = amount_grams(hop.get("amount"))
    if not variety.is_hop:
        profile.n_adjuncts += 1
        profile.adjunct_grams += 0.0 if math.isnan(grams) else grams
        return
    addition = normalise_addition(hop.get("add"), profile.boil_minutes)
    profile.n_additions += 1
    profile.n_fallback_alpha += int(variety.fallback)
    profile.n_extract += int(variety.is_extract)
    if not addition.known:
        profile.n_unknown_additions += 1
        profile.unknown_adds.append(addition.raw)
    if math.isnan(grams):
        return
    profile.grams_by_stage[addition.stage] += grams
    profile.alpha_grams_by_stage[addition.stage] += grams * variety.alpha_acid_pct / 100.0
    if og is None or (isinstance(og, float) and math.isnan(og)):
        profile.tinseth_ibu = math.nan
    elif not math.isnan(profile.tinseth_ibu):
        profile.tinseth_ibu += tinseth_ibu(
            grams, variety.alpha_acid_pct, addition.effective_minutes, volume_l, og
        )
