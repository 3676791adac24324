"""The synthetic catalog: base products (tees, hoodies, mugs, posters, ...), their options and
variants, and the storefront's products (designs) built on them, all derived from a seed.

Option ids (sizes, materials, print types, colours) are shared across the catalog: the same
`Bawełna/Cotton` material has one id everywhere, as in a real database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product as cartesian
from typing import Any

from alter_pipeline.emulator.model import (
    Color,
    Localized,
    Option,
    Product,
    ProductGroup,
    Size,
    Variant,
)

L = Localized
Measure = tuple[tuple[str, float], ...] | None

WHITE = (L("Biały", "White"), "#FFFFFF")
BLACK = (L("Czarny", "Black"), "#000000")
NAVY = (L("Granatowy", "Navy"), "#1F2A44")
HEATHER = (L("Szary melanż", "Heather grey"), "#B5B5B5")
RED = (L("Czerwony", "Red"), "#C62828")
BOTTLE_GREEN = (L("Zielony butelkowy", "Bottle green"), "#1B4D3E")
PINK = (L("Różowy", "Pink"), "#F4A6C0")
YELLOW = (L("Żółty", "Yellow"), "#F9D923")
DEFAULT = (L("Domyślny", "Default"), "#FFFFFF")
NATURAL = (L("Naturalny", "Natural"), "#F3E9D2")
MATTE_BLACK = (L("Czarny matowy", "Matte black"), "#1C1C1C")

COTTON = L("Bawełna", "Cotton")
ORGANIC_COTTON = L("Bawełna organiczna", "Organic cotton")
BLEND = L("Bawełna z poliestrem", "Cotton-polyester blend")
CERAMIC = L("Ceramika", "Ceramic")
MATTE_PAPER = L("Papier matowy 200 g/m²", "Matte paper 200 gsm")
GLOSSY_PAPER = L("Papier błyszczący 250 g/m²", "Glossy paper 250 gsm")
CANVAS = L("Płótno bawełniane", "Cotton canvas")
SILICONE = L("Silikon", "Silicone")
STEEL = L("Stal nierdzewna", "Stainless steel")

DTG = L("DTG", "DTG")
SCREEN = L("Sitodruk", "Screen print")
EMBROIDERY = L("Haft", "Embroidery")
SUBLIMATION = L("Sublimacja", "Sublimation")
DIGITAL = L("Druk cyfrowy", "Digital print")
UV = L("Nadruk UV", "UV print")
LASER = L("Grawer laserowy", "Laser engraving")


def apparel(*names: str) -> tuple[tuple[Localized, Measure], ...]:
    return tuple((L(n, n), None) for n in names)


@dataclass(frozen=True)
class Template:
    """A base product: what a shop can sell designs on."""

    key: str
    name_en: str
    group: Localized
    sizes: tuple[tuple[Localized, Measure], ...]
    materials: tuple[Localized, ...]
    prints: tuple[Localized, ...]
    colors: tuple[tuple[Localized, str], ...]
    price_cents: int
    # Surcharge per size index (bigger sizes cost more) and per print index.
    size_step_cents: int = 0
    print_step_cents: int = 0
    weight_kg: float | None = None
    volume_l: float | None = None
    # Made-to-order prints have no stock keeping unit: their filled-in variants' metadata is
    # an empty object (`{}`), as the real API sends it.
    has_sku: bool = True


TEMPLATES: tuple[Template, ...] = (
    Template(
        "tee", "Men’s T-Shirt", L("Koszulka męska", "Men’s T-shirt"),
        apparel("S", "M", "L", "XL", "XXL"), (COTTON, ORGANIC_COTTON), (DTG, SCREEN),
        (WHITE, BLACK, NAVY, HEATHER, RED), 1999, size_step_cents=150, print_step_cents=300,
        weight_kg=0.18,
    ),
    Template(
        "mug450", "Mug 450ml (15oz)", L("Kubek 450ml (15oz)", "Mug 450ml (15oz)"),
        ((L("450ml (15oz)", "450ml (15oz)"), (("D", 8.65), ("H", 11.95))),), (CERAMIC,),
        (SUBLIMATION,), (DEFAULT, MATTE_BLACK, RED, NAVY), 1499, weight_kg=0.42, volume_l=0.45,
    ),
    Template(
        "hoodie", "Hoodie", L("Bluza z kapturem", "Hoodie"), apparel("S", "M", "L", "XL", "XXL"),
        (BLEND,), (DTG, EMBROIDERY), (BLACK, HEATHER, NAVY, BOTTLE_GREEN), 4490,
        size_step_cents=200, print_step_cents=650, weight_kg=0.55,
    ),
    Template(
        "poster", "Poster", L("Plakat", "Poster"),
        (
            (L("A3", "A3"), (("W", 29.7), ("H", 42.0))),
            (L("A2", "A2"), (("W", 42.0), ("H", 59.4))),
            (L("50×70 cm", "50×70 cm"), (("W", 50.0), ("H", 70.0))),
        ),
        (MATTE_PAPER, GLOSSY_PAPER), (DIGITAL,), (DEFAULT,), 2400, size_step_cents=900,
        has_sku=False,
    ),
    Template(
        "tote", "Cotton Tote Bag", L("Torba bawełniana", "Cotton tote bag"),
        ((L("38×42 cm", "38×42 cm"), (("W", 38.0), ("H", 42.0))),), (COTTON,), (SCREEN, DTG),
        (NATURAL, BLACK, NAVY), 950, print_step_cents=150, weight_kg=0.12,
    ),
    Template(
        "womens_tee", "Women’s T-Shirt", L("Koszulka damska", "Women’s T-shirt"),
        apparel("XS", "S", "M", "L", "XL"), (COTTON,), (DTG,), (WHITE, BLACK, PINK, YELLOW),
        2099, size_step_cents=100, weight_kg=0.15,
    ),
    Template(
        "mug330", "Mug 330ml (11oz)", L("Kubek 330ml (11oz)", "Mug 330ml (11oz)"),
        ((L("330ml (11oz)", "330ml (11oz)"), (("D", 8.2), ("H", 9.5))),), (CERAMIC,),
        (SUBLIMATION,), (DEFAULT, BLACK, PINK, YELLOW), 1299, weight_kg=0.33, volume_l=0.33,
    ),
    Template(
        "cap", "Baseball Cap", L("Czapka z daszkiem", "Baseball cap"),
        # A size saved without dimensions: the API sends `"measureSize": {}`.
        ((L("Uniwersalny", "One size"), ()),), (COTTON,), (EMBROIDERY,),
        (BLACK, NAVY, RED, BOTTLE_GREEN, WHITE), 1690,
    ),
    Template(
        "case", "Phone Case", L("Etui na telefon", "Phone case"),
        (
            (L("iPhone 15", "iPhone 15"), (("W", 7.2), ("H", 14.8))),
            (L("Galaxy S24", "Galaxy S24"), (("W", 7.1), ("H", 14.8))),
        ),
        (SILICONE,), (UV,), (DEFAULT, BLACK, PINK), 1750,
    ),
    Template(
        "kids_tee", "Kids’ T-Shirt", L("Koszulka dziecięca", "Kids’ T-shirt"),
        apparel("104 cm", "116 cm", "128 cm", "140 cm"), (COTTON,), (DTG,), (WHITE, YELLOW, PINK),
        1590, size_step_cents=50,
    ),
    Template(
        "canvas", "Canvas Print", L("Obraz na płótnie", "Canvas print"),
        (
            (L("30×40 cm", "30×40 cm"), (("W", 30.0), ("H", 40.0))),
            (L("40×60 cm", "40×60 cm"), (("W", 40.0), ("H", 60.0))),
            (L("60×80 cm", "60×80 cm"), (("W", 60.0), ("H", 80.0))),
        ),
        (CANVAS,), (DIGITAL,), (DEFAULT,), 5900, size_step_cents=2000, has_sku=False,
    ),
    Template(
        "bottle", "Water Bottle", L("Bidon", "Water bottle"),
        ((L("750ml", "750ml"), (("D", 7.3), ("H", 26.0))),), (STEEL,), (LASER, UV),
        (DEFAULT, BLACK, NAVY), 2290, print_step_cents=200, weight_kg=0.3, volume_l=0.75,
    ),
)  # fmt: skip

# Design lines a storefront builds on one base product, once its plain design is taken.
EDITIONS = ("", " Premium", " Eco", " Vintage", " Sport", " Classic", " Limited", " Kids Club")
FIRST_PRODUCT_ID = 381
FIRST_VARIANT_ID = 501
FIRST_STOREFRONT_PRODUCT_ID = 89
DAY_MS = 86_400_000


@dataclass
class Catalog:
    products: list[Product]
    groups: list[ProductGroup]

    def product(self, product_id: int) -> Product | None:
        return self._by_id.get(product_id)

    def by_model(self, model_id: int) -> Product | None:
        """The first product on base product `model_id` (preview files are per base product)."""
        return self._by_model.get(model_id)

    def __post_init__(self) -> None:
        self._by_id = {p.id: p for p in self.products}
        self._by_model: dict[int, Product] = {}
        for p in self.products:
            self._by_model.setdefault(p.product_id, p)


class _Ids:
    """Hands out one id per distinct option value, like rows of a lookup table."""

    def __init__(self, first: int) -> None:
        self._next = first
        self._seen: dict[object, int] = {}

    def of(self, value: object) -> int:
        if value not in self._seen:
            self._seen[value] = self._next
            self._next += 1
        return self._seen[value]


def build_catalog(count: int, seed: int, now_ms: int) -> Catalog:
    """`count` products cycling through the templates; deterministic in `seed`."""
    rng = random.Random(f"catalog:{seed}")
    groups = [ProductGroup(i + 1, t.group) for i, t in enumerate(TEMPLATES)]
    ids = _OptionIds()
    variant_id = FIRST_VARIANT_ID
    product_id = FIRST_PRODUCT_ID
    products = []
    for index in range(count):
        template_index = index % len(TEMPLATES)
        template = TEMPLATES[template_index]
        edition = EDITIONS[(index // len(TEMPLATES)) % len(EDITIONS)]
        round_ = index // len(TEMPLATES) // len(EDITIONS)
        name = template.name_en + edition + (f" #{round_ + 1}" if round_ else "")
        # A fifth of the products are not assigned to a product group (productGroup: null).
        group = groups[template_index] if rng.random() >= 0.2 else None
        product = Product(
            id=product_id,
            name=name,
            product_id=template_index + 1,
            # Products exist before the year of order history starts.
            created_ms=now_ms - 366 * DAY_MS - rng.randrange(365 * DAY_MS),
            group=group,
            storefront_product_id=FIRST_STOREFRONT_PRODUCT_ID + index,
            share_access="public" if rng.random() < 0.85 else "private",
            is_customizer=rng.random() < 0.8,
            configurator=rng.random() < 0.7,
            rgb=(rng.randrange(40, 230), rng.randrange(40, 230), rng.randrange(40, 230)),
        )
        product.variants = _variants(template, product, ids, variant_id, rng)
        variant_id += len(product.variants)
        # Gaps in ids, as left by designs deleted long ago.
        product_id += 1 + (rng.random() < 0.3) * rng.randrange(1, 5)
        products.append(product)
    return Catalog(products, groups)


class _OptionIds:
    def __init__(self) -> None:
        self.sizes = _Ids(9)
        self.materials = _Ids(2)
        self.prints = _Ids(1)
        self.colors = _Ids(11)


def _variants(
    template: Template, product: Product, ids: _OptionIds, first_id: int, rng: random.Random
) -> list[Variant]:
    # How carefully the shop filled in variant details: nothing (all null), the UI's zero
    # defaults, or real values. All three occur in the documented examples.
    detail = rng.choice(("null", "zeros", "full"))
    variants: list[Variant] = []
    # Sizes vary fastest, so neighbouring variants are the sizes of one colour: orders take
    # runs of neighbours, like a team ordering S, M and L of the same shirt.
    combos = cartesian(
        template.materials, enumerate(template.prints), template.colors, enumerate(template.sizes)
    )
    for material, (print_index, printing), color, (size_index, (size_name, measure)) in combos:
        size = Size(ids.sizes.of((size_name, measure)), size_name, measure)
        cents = (
            template.price_cents
            + size_index * template.size_step_cents
            + print_index * template.print_step_cents
        )
        variant = Variant(
            id=first_id + len(variants),
            product_id=product.id,
            model_id=product.product_id,
            group_id=product.group.id if product.group else None,
            size=size,
            material=Option(ids.materials.of(material), material),
            print_type=Option(ids.prints.of(printing), printing),
            color=Color(ids.colors.of(color), color[0], color[1]),
            unit_cents=cents,
            **_variant_details(detail, template, size_name, color[0], rng),
        )
        variants.append(variant)
    return variants


def _variant_details(
    detail: str, template: Template, size: Localized, color: Localized, rng: random.Random
) -> dict[str, Any]:
    if detail == "null":
        values: tuple[object, ...] = (None, None, None, None, None, None)
    elif detail == "zeros":
        values = (None, 0, 0, 0, None, None)
    else:
        sku = "-".join(_slug(part) for part in (template.key, size.en, color.en))
        values = (
            {"sku": sku} if template.has_sku else {},
            1,
            rng.choice((2, 3, 5)),
            rng.randrange(0, 400),
            template.volume_l,
            template.weight_kg,
        )
    keys = ("metadata", "min_order_quantity", "processing_time", "stock_quantity", "volume")
    return dict(zip((*keys, "weight"), values, strict=True))


def _slug(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())
