"""In-memory records of the synthetic storefront.

Plain slotted classes rather than dicts: a 100,000-order store holds ~400,000 of them, and slots
keep both the memory and the generation time down. Times are integers (milliseconds for order
creation, microseconds for item updates, both since the Unix epoch) so sorting and rendering
never touch `datetime`. Money is integer cents, so totals are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Localized:
    pl: str
    en: str


@dataclass(frozen=True, slots=True)
class Option:
    """A material or a print type: an id and a bilingual name."""

    id: int
    name: Localized


@dataclass(frozen=True, slots=True)
class Size:
    id: int
    name: Localized
    # Physical dimensions in cm, e.g. (("D", 8.65), ("H", 11.95)); None for apparel sizes;
    # () for a size saved with no dimensions, which the API sends as `{}`.
    measure: tuple[tuple[str, float], ...] | None


@dataclass(frozen=True, slots=True)
class Color:
    id: int
    name: Localized
    hex: str


@dataclass(frozen=True, slots=True)
class ProductGroup:
    id: int
    name: Localized


@dataclass(slots=True)
class Variant:
    id: int
    product_id: int  # the design (customizer) id; also the item's model3d id
    model_id: int  # the base product / 3D model (productModel3dId)
    group_id: int | None
    size: Size
    material: Option
    print_type: Option
    color: Color
    unit_cents: int
    metadata: dict[str, str] | None
    min_order_quantity: int | None
    processing_time: int | None
    stock_quantity: int | None
    volume: float | None
    weight: float | None
    # JSON fragments rendered once (see render.py): variants never change.
    list_fragment: bytes = b""
    detail_fragment: bytes = b""


@dataclass(slots=True)
class Product:
    id: int  # design id: `customizerId` of orders, `idUserDesign`
    name: str
    product_id: int  # base product id: `productId`, preview file id, productModel3dId
    created_ms: int
    group: ProductGroup | None
    storefront_product_id: int
    share_access: str
    is_customizer: bool
    configurator: bool
    rgb: tuple[int, int, int]  # colour of the preview PNG
    variants: list[Variant] = field(default_factory=list)


@dataclass(slots=True)
class Item:
    id: int
    variant: Variant
    quantity: int
    updated_us: int
    # `"unitPrice":...,"updatedAt":"..."}`: the end shared by both shapes, cached.
    tail: bytes | None = None


@dataclass(slots=True, eq=False)
class Order:
    id: int
    product: Product
    status: str
    created_ms: int
    seen: bool
    design_name: str
    items: list[Item]
    # Serialised shapes, rebuilt lazily after a mutation sets them back to None.
    list_bytes: bytes | None = None
    detail_bytes: bytes | None = None

    def total_cents(self) -> int:
        return sum(item.variant.unit_cents * item.quantity for item in self.items)

    def forget_bytes(self) -> None:
        self.list_bytes = None
        self.detail_bytes = None
