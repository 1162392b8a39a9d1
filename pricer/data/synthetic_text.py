"""The synthetic source's text: a drawn record's title, description, features, details, price.

``synthetic`` draws every random choice of a batch as arrays; this module only writes strings
from them, row by row (the per-row Python work is kept to string assembly). Every word comes
from the catalogue (``synthetic_catalogue.json``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from pricer.data.synthetic_catalogue import Catalog

# Price string kinds: plain "12.99", "$1,299.99", "None", and messy ones.
PLAIN, DOLLAR, NONE, EMPTY, RANGE, UNAVAILABLE = range(6)
TEXT_COLUMNS = (
    "category",
    "main_category",
    "title",
    "description",
    "features",
    "price",
    "store",
    "categories",
    "model_number",
)


class _Row(NamedTuple):
    """One record's drawn choices, as the text writers read them. ``flag`` holds percent coin
    flips: each writer uses its own positions."""

    category: int
    name: str
    brand: str
    prefix: str
    spec_key: str
    spec_label: str
    material: str
    variant: str
    variant_after: bool
    color: str
    use: str
    level: int
    pack: int
    model_digits: int
    model_suffix: str
    template: int
    n_features: int
    bullet_ids: list[int]
    n_paragraphs: int
    paragraph_sentences: list[int]
    sentence_ids: list[int]
    warranty_level: int
    flag: list[int]
    junk: bool
    empty_title: bool
    price_kind: int
    price: float
    department: str


def _lookup(table: tuple[str, ...], ids: np.ndarray) -> list[str]:
    """Vectorised table lookup straight to a list of strings."""
    return np.array(table, dtype=object)[ids].tolist()


def _rows(cat: Catalog, d: dict[str, np.ndarray]) -> Iterator[_Row]:
    category = d["category"]
    looked_up = {
        "name": _lookup(cat.type_names, d["type_ids"]),
        "brand": _lookup(cat.brand_names, d["brand"]),
        "prefix": _lookup(cat.brand_prefixes, d["brand"]),
        "spec_key": _lookup(cat.spec_keys, d["spec"]),
        "spec_label": cat.spec_label_table[d["spec"], d["level"]].tolist(),
        "material": cat.material_table[category, d["material"]].tolist(),
        "variant": _lookup(cat.variant_words, d["variant"]),
        "variant_after": np.array(cat.variant_after)[d["variant"]].tolist(),
        "color": _lookup(cat.colors, d["color"]),
        "use": cat.use_table[category, d["use"]].tolist(),
        "template": d["title_template"].tolist(),
        "flag": d["flags"].tolist(),
        "department": _lookup(cat.type_departments, d["type_ids"]),
    }
    columns = [
        looked_up[field] if field in looked_up else d[field].tolist() for field in _Row._fields
    ]
    return map(_Row._make, zip(*columns, strict=True))


def assemble_text(cat: Catalog, d: dict[str, np.ndarray]) -> dict[str, list]:
    """The text columns of a batch (plus ``model_number``, which the details reuse)."""
    out: dict[str, list] = {column: [] for column in TEXT_COLUMNS}
    for row in _rows(cat, d):
        flag = row.flag
        # Part-number-like model: the first digit follows the spec level, as real ones often do.
        model = f"{row.prefix}-{row.level + 1}{row.model_digits:03d}{row.model_suffix}"
        core = _core_name(row)
        title = _with_pack(cat, row, _title(row, core, model))
        bullets = _bullets(cat, row)
        paragraphs = _description(cat, row, core)
        if row.junk:  # scraped listings with almost nothing in them
            paragraphs, bullets = [], []
            title = "" if row.empty_title else row.name
        display = cat.category_displays[row.category]
        alternatives = cat.category_alternatives[row.category]
        out["model_number"].append(model)
        out["category"].append(cat.categories[row.category])
        out["main_category"].append(
            alternatives[flag[12] % len(alternatives)] if flag[13] < 12 else display
        )
        out["title"].append(title)
        out["description"].append(paragraphs)
        out["features"].append(bullets)
        out["price"].append(price_string(row.price_kind, row.price, flag[14]))
        out["store"].append(_store(cat, row.brand, flag[15]))
        out["categories"].append([] if flag[16] < 20 else [display, row.department, row.name])
    return out


def _core_name(row: _Row) -> str:
    """The type name with its variant word before or after it."""
    if not row.variant:
        return row.name
    return f"{row.name} {row.variant}" if row.variant_after else f"{row.variant} {row.name}"


def _title(row: _Row, core: str, model: str) -> str:
    """Brand + type + key spec + variant, in one of a few listing styles."""
    brand, spec_label = row.brand, row.spec_label
    if row.template == 0:
        parts = (
            f"{brand} {spec_label} {core}" if spec_label else f"{brand} {core}",
            row.material,
            row.color,
        )
    elif row.template == 1:
        parts = (f"{brand} {core}", spec_label, row.use)
    elif row.template == 2:  # no brand in the title: it is only in the details
        parts = (f"{core} {row.use}", spec_label, row.color)
    elif row.template == 3:
        parts = (f"{brand} {model} {core}", spec_label, row.material)
    else:
        parts = (f"{brand} {core} {spec_label}" if spec_label else f"{brand} {core}",)
    return ", ".join(p for p in parts if p)


def _with_pack(cat: Catalog, row: _Row, title: str) -> str:
    """A multi-pack's title says so, before or after the rest."""
    if row.pack <= 1:
        return title
    pack_text = cat.pack_phrases[row.flag[0] // 20].format(row.pack)
    if row.flag[1] >= 70:
        return f"{pack_text} {title}"
    return f"{title} {pack_text}" if pack_text[0] == "(" else f"{title}, {pack_text}"


def _bullets(cat: Catalog, row: _Row) -> list[str]:
    """Feature bullets: the informative ones first, topped up with marketing filler."""
    flag, name = row.flag, row.name
    bullets = []
    if row.spec_label and flag[2] < 80:
        bullets.append(
            f"{row.spec_key.upper()}: {row.spec_label} {name.lower()} to handle more of your "
            "everyday needs."
            if flag[3] < 50
            else f"The {row.spec_label} {row.spec_key.lower()} suits most setups, "
            f"{row.use.lower()}."
        )
    if flag[4] < 55:
        bullets.append(
            f"{row.material.upper()} BUILD: Made from high-grade {row.material.lower()} "
            "for strength and longevity."
        )
    if row.pack > 1 and flag[5] < 70:
        bullets.append(
            f"VALUE PACK: Includes {row.pack} {name.lower()} units so you always have a spare."
        )
    if row.variant == "Kit":
        bullets.append(
            "COMPLETE KIT: Includes accessories, a carrying case and everything needed to start."
        )
    if flag[6] < 50:
        warranty = cat.warranties[row.warranty_level]
        bullets.append(f"WARRANTY: {warranty[flag[7] % len(warranty)]} from {row.brand}.")
    pool = cat.bullet_pools[row.category]
    for bullet_id in row.bullet_ids:
        if len(bullets) >= row.n_features:
            break
        if pool[bullet_id] not in bullets:
            bullets.append(pool[bullet_id])
    del bullets[row.n_features :]
    if flag[8] < 6:
        bullets.append(cat.fit_check_line)
    return bullets


def _description(cat: Catalog, row: _Row, core: str) -> list[str]:
    """0-3 paragraphs of filler, the first often opening with the specs."""
    pool = cat.sentence_pools[row.category]
    paragraphs: list[str] = []
    start = 0
    for length in row.paragraph_sentences[: row.n_paragraphs]:
        ids = dict.fromkeys(row.sentence_ids[start : start + length])  # no repeated sentence
        start += length
        paragraph = " ".join(pool[s] for s in ids)
        if not paragraphs and row.flag[9] < 60:
            spec_words = f"{row.spec_label} {row.spec_key.lower()}, " if row.spec_label else ""
            paragraph = (
                f"Meet the {row.brand} {core}: {spec_words}{row.material.lower()} "
                f"construction and a {row.color.lower()} finish. {paragraph}"
            )
        paragraphs.append(paragraph)
    if paragraphs and row.flag[10] < 8:
        paragraphs.insert(0, cat.noise_description_lines[row.flag[11] % 3])
    return paragraphs


def _store(cat: Catalog, brand: str, draw: int) -> str:
    """Mostly the brand's own store, sometimes a reseller, rarely nothing."""
    if draw < 72:
        return brand
    if draw < 84:
        return f"{brand} Direct"
    if draw < 95:
        return cat.resellers[draw % len(cat.resellers)]
    return ""


def price_string(kind: int, price: float, flag: int) -> str:
    """The raw price field of one record, as a shop page shows it."""
    if kind == PLAIN:
        return f"{price:.2f}"
    if kind == DOLLAR:
        return f"${price:,.2f}"
    if kind == NONE:
        return "None"
    if kind == RANGE:
        return f"${price:,.2f} - ${price * (1.2 + flag / 100):,.2f}"
    if kind == UNAVAILABLE:
        return "Currently unavailable"
    return ""


class _DetailRow(NamedTuple):
    """What the details of one record are written from; ``keep`` holds percent coin flips."""

    brand: str
    department: str
    display: str
    spec_key: str
    spec_label: str
    material: str
    color: str
    model: str
    pack: int
    year: int
    weight: float
    length: float
    width: float
    depth: float
    rank: int
    sub_rank: int
    keep: list[int]
    junk: bool


def details_column(cat: Catalog, d: dict[str, np.ndarray], model_numbers: list[str]) -> list[str]:
    """The ``details`` JSON strings; which keys appear varies from record to record.

    Written as JSON text directly (twice as fast as ``json.dumps``): the catalogue is checked
    to hold no character that JSON would escape, so the result is exactly what ``json.dumps``
    gives.
    """
    category = d["category"]
    columns: dict[str, Any] = {
        "brand": _lookup(cat.brand_names, d["brand"]),
        "department": _lookup(cat.type_departments, d["type_ids"]),
        "display": _lookup(cat.category_displays, category),
        "spec_key": _lookup(cat.spec_keys, d["spec"]),
        "spec_label": cat.spec_label_table[d["spec"], d["level"]].tolist(),
        "material": cat.material_table[category, d["material"]].tolist(),
        "color": _lookup(cat.colors, d["color"]),
        "model": model_numbers,
        "weight": d["weight_lb"].tolist(),
        "rank": d["sales_rank"].tolist(),
        "keep": d["detail_flags"].tolist(),
    }
    for name in ("pack", "year", "length", "width", "depth", "sub_rank", "junk"):
        columns[name] = d[name].tolist()
    rows = zip(*(columns[field] for field in _DetailRow._fields), strict=True)
    return [_details(cat, row) for row in map(_DetailRow._make, rows)]


def _details(cat: Catalog, row: _DetailRow) -> str:
    if row.junk:
        return f'{{"Brand": "{row.brand}"}}'
    keep, brand = row.keep, row.brand
    parts = []
    if keep[0] < 70:
        key = "Product Dimensions" if keep[1] < 70 else "Package Dimensions"
        parts.append(f'"{key}": "{row.length:.1f} x {row.width:.1f} x {row.depth:.1f} inches"')
    if keep[2] < 75:
        parts.append(f'"Item Weight": "{_weight_text(row.weight, keep[3])}"')
    if keep[4] < 50:
        maker = brand if keep[5] < 60 else f"{brand} {cat.company_suffixes[keep[5] % 5]}"
        parts.append(f'"Manufacturer": "{maker}"')
    if keep[6] < 60:
        parts.append(f'"Item model number": "{row.model}"')
    if keep[7] < 50:
        parts.append(_sales_rank(row, as_object=keep[8] < 60))
    if keep[9] < 80:
        date = f"{cat.months[keep[10] % 12]} {keep[11] % 28 + 1}, {row.year}"
        parts.append(f'"Date First Available": "{date}"')
    if keep[12] < 95:
        parts.append(f'"Brand": "{brand}"')
    if row.spec_label and keep[13] < 85:
        parts.append(f'"{row.spec_key}": "{row.spec_label}"')
    if keep[14] < 45:
        parts.append(f'"Material": "{row.material}"')
    if keep[15] < 45:
        parts.append(f'"Color": "{row.color}"')
    if row.pack > 1 and keep[1] >= 40:
        parts.append(f'"Number of Items": {row.pack}')
    if keep[3] >= 75:
        parts.append(f'"Batteries Included?": "{"No" if keep[2] < 70 else "Yes"}"')
    if keep[5] >= 85:
        parts.append('"Is Discontinued By Manufacturer": "No"')
    return "{" + ", ".join(parts) + "}"


def _weight_text(weight: float, draw: int) -> str:
    if weight < 1:
        return f"{weight * 16:.1f} ounces"
    return f"{weight:.2f} pounds" if draw < 85 else f"{weight * 0.4536:.2f} Kilograms"


def _sales_rank(row: _DetailRow, *, as_object: bool) -> str:
    """The rank in the category and the department, as a JSON object or as Amazon's text."""
    display, department = row.display, row.department
    if as_object:
        return f'"Best Sellers Rank": {{"{display}": {row.rank}, "{department}": {row.sub_rank}}}'
    return (
        f'"Best Sellers Rank": "#{row.rank:,} in {display} (See Top 100 in {display}) '
        f'#{row.sub_rank:,} in {department}"'
    )
