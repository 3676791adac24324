"""Typed results of the Alter API: frozen, slotted dataclasses built from the wire JSON.

The shapes follow the contract's examples, including where they differ:

* a list entry (`OrderSummary`, from `GET /customer-orders`) has `isSeenByOwner` and
  `customizerName`; a detail (`Order`, from `GET /customer-orders/:id` and the batch read) has
  `designName` instead;
* a list entry's item variant is the short one; a detail's variant also names its
  `productGroupId`, `productModel3dId`, `sizeId`, ... (`Variant` has them as None when absent);
* `measureSize` is None or a mapping such as {"D": 8.65, "H": 11.95};
* `productGroup` is None or a `ProductGroup`;
* timestamps become aware UTC datetimes and money an exact Decimal, by the rules of
  `contract.fields` (the one place that says what a naive timestamp or a float means).

Money is `Money(value: Decimal, currency)`: the client parses JSON with `parse_float=Decimal`,
so values are exact from the wire; a float is refused. Unknown fields are ignored (forward
compatible); a missing documented field raises KeyError/TypeError/ValueError, which the client
reports as `ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from alter_pipeline.contract import fields

Json = Mapping[str, Any]


# ---- field readers: strict about types, so a contract break surfaces as an error ----------


def _int(value: Any) -> int:
    # bool is an int subclass; a true/false where an id belongs is a contract break.
    if not fields.is_id(value):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    # `isCustomizer` is 0/1 on the wire while `embeddable.*` are true/false: accept both.
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    raise TypeError(f"expected a boolean, got {value!r}")


def _decimal(value: Any) -> Decimal:
    return fields.exact_number(value)


def parse_timestamp(value: Any) -> datetime:
    """An API timestamp as an aware UTC datetime (`contract.fields.parse_timestamp`)."""
    return fields.parse_timestamp(_str(value))


# ---- shared pieces -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalizedName:
    pl: str
    en: str

    @classmethod
    def from_json(cls, data: Json) -> LocalizedName:
        return cls(pl=_str(data["pl"]), en=_str(data["en"]))


@dataclass(frozen=True, slots=True)
class Money:
    value: Decimal
    currency: str

    @classmethod
    def from_json(cls, data: Json) -> Money:
        return cls(value=_decimal(data["value"]), currency=_str(data["currency"]))


@dataclass(frozen=True, slots=True)
class NamedRef:
    """`material` and `printType`: an id with a localized name."""

    id: int
    name: LocalizedName

    @classmethod
    def from_json(cls, data: Json) -> NamedRef:
        return cls(id=_int(data["id"]), name=LocalizedName.from_json(data["name"]))


@dataclass(frozen=True, slots=True)
class Size:
    id: int
    name: LocalizedName
    # None, or dimension letter -> number, e.g. {"D": Decimal("8.65"), "H": Decimal("11.95")}
    measure_size: dict[str, Decimal] | None

    @classmethod
    def from_json(cls, data: Json) -> Size:
        measure = data.get("measureSize")
        return cls(
            id=_int(data["id"]),
            name=LocalizedName.from_json(data["name"]),
            measure_size=None
            if measure is None
            else {_str(k): _decimal(v) for k, v in measure.items()},
        )


@dataclass(frozen=True, slots=True)
class Color:
    id: int
    name: LocalizedName
    hex: str

    @classmethod
    def from_json(cls, data: Json) -> Color:
        return cls(
            id=_int(data["id"]), name=LocalizedName.from_json(data["name"]), hex=_str(data["hex"])
        )


@dataclass(frozen=True, slots=True)
class Variant:
    """Short variant in list entries; the detail shape adds the `*_id` references."""

    id: int
    metadata: Any
    min_order_quantity: int | None
    processing_time: int | None
    stock_quantity: int | None
    volume: Decimal | None
    weight: Decimal | None
    product_group_id: int | None = None
    product_model3d_id: int | None = None
    size_id: int | None = None
    material_id: int | None = None
    print_type_id: int | None = None
    color_id: int | None = None

    @classmethod
    def from_json(cls, data: Json) -> Variant:
        volume, weight = data.get("volume"), data.get("weight")
        return cls(
            id=_int(data["id"]),
            metadata=data.get("metadata"),
            min_order_quantity=_opt_int(data.get("minOrderQuantity")),
            processing_time=_opt_int(data.get("processingTime")),
            stock_quantity=_opt_int(data.get("stockQuantity")),
            volume=None if volume is None else _decimal(volume),
            weight=None if weight is None else _decimal(weight),
            product_group_id=_opt_int(data.get("productGroupId")),
            product_model3d_id=_opt_int(data.get("productModel3dId")),
            size_id=_opt_int(data.get("sizeId")),
            material_id=_opt_int(data.get("materialId")),
            print_type_id=_opt_int(data.get("printTypeId")),
            color_id=_opt_int(data.get("colorId")),
        )


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One `productItems` entry (an order detail line; its id is the `orderDetailId`)."""

    id: int
    model3d_id: int
    size: Size
    material: NamedRef
    print_type: NamedRef
    color: Color
    variant: Variant
    unit_price: Money
    total_price: Money
    quantity: int
    updated_at: datetime

    @classmethod
    def from_json(cls, data: Json) -> OrderItem:
        return cls(
            id=_int(data["id"]),
            model3d_id=_int(data["model3d"]["id"]),
            size=Size.from_json(data["size"]),
            material=NamedRef.from_json(data["material"]),
            print_type=NamedRef.from_json(data["printType"]),
            color=Color.from_json(data["color"]),
            variant=Variant.from_json(data["variant"]),
            unit_price=Money.from_json(data["unitPrice"]),
            total_price=Money.from_json(data["totalPrice"]),
            quantity=_int(data["quantity"]),
            updated_at=parse_timestamp(data["updatedAt"]),
        )


@dataclass(frozen=True, slots=True)
class ProductGroup:
    id: int
    name: LocalizedName

    @classmethod
    def from_json(cls, data: Json | None) -> ProductGroup | None:
        if data is None:
            return None
        return cls(id=_int(data["id"]), name=LocalizedName.from_json(data["name"]))


def _items(data: Json) -> tuple[OrderItem, ...]:
    return tuple(OrderItem.from_json(item) for item in data["productItems"])


# ---- orders ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An entry of `GET /customer-orders` (list shape)."""

    id: int
    customizer_id: int
    is_seen_by_owner: bool
    order_status: str
    created_at: datetime
    customizer_order_url: str
    product_items: tuple[OrderItem, ...]
    customizer_name: str
    product_group: ProductGroup | None
    total_price: Money

    @classmethod
    def from_json(cls, data: Json) -> OrderSummary:
        return cls(
            id=_int(data["id"]),
            customizer_id=_int(data["customizerId"]),
            is_seen_by_owner=_bool(data["isSeenByOwner"]),
            order_status=_str(data["orderStatus"]),
            created_at=parse_timestamp(data["createdAt"]),
            customizer_order_url=_str(data["customizerOrderURL"]),
            product_items=_items(data),
            customizer_name=_str(data["customizerName"]),
            product_group=ProductGroup.from_json(data.get("productGroup")),
            total_price=Money.from_json(data["totalPrice"]),
        )


@dataclass(frozen=True, slots=True)
class Order:
    """A single order (`GET /customer-orders/:id`, batch read): detail shape."""

    id: int
    customizer_id: int
    order_status: str
    created_at: datetime
    customizer_order_url: str
    product_items: tuple[OrderItem, ...]
    design_name: str
    product_group: ProductGroup | None
    total_price: Money

    @classmethod
    def from_json(cls, data: Json) -> Order:
        return cls(
            id=_int(data["id"]),
            customizer_id=_int(data["customizerId"]),
            order_status=_str(data["orderStatus"]),
            created_at=parse_timestamp(data["createdAt"]),
            customizer_order_url=_str(data["customizerOrderURL"]),
            product_items=_items(data),
            design_name=_str(data["designName"]),
            product_group=ProductGroup.from_json(data.get("productGroup")),
            total_price=Money.from_json(data["totalPrice"]),
        )


@dataclass(frozen=True, slots=True)
class OrderList:
    """One page of `GET /customer-orders`: the entries and the filtered `total`."""

    items: tuple[OrderSummary, ...]
    total: int

    @classmethod
    def from_json(cls, data: Json) -> OrderList:
        envelope = data["order"]
        return cls(
            items=tuple(OrderSummary.from_json(item) for item in envelope["items"]),
            total=_int(envelope["total"]),
        )


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    success: bool
    message: str
    order_id: int
    new_status: str

    @classmethod
    def from_json(cls, data: Json) -> StatusUpdate:
        return cls(
            success=_bool(data["success"]),
            message=_str(data.get("message", "")),
            order_id=_int(data["orderId"]),
            new_status=_str(data["newStatus"]),
        )


@dataclass(frozen=True, slots=True)
class QuantityUpdate:
    """Result of `PATCH .../quantity` (per item)."""

    success: bool
    message: str
    order_id: int

    @classmethod
    def from_json(cls, data: Json) -> QuantityUpdate:
        return cls(
            success=_bool(data["success"]),
            message=_str(data.get("message", "")),
            order_id=_int(data["orderId"]),
        )


@dataclass(frozen=True, slots=True)
class QuantityAllUpdate:
    """Result of `PATCH .../quantity/all`: echoes the quantity, has no message."""

    success: bool
    order_id: int
    quantity: int

    @classmethod
    def from_json(cls, data: Json) -> QuantityAllUpdate:
        return cls(
            success=_bool(data["success"]),
            order_id=_int(data["orderId"]),
            quantity=_int(data["quantity"]),
        )


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """Result of `DELETE /customer-orders/:id`.

    `already_deleted` is True when an earlier attempt of the same call failed ambiguously and a
    retry then got 404: the order is gone, most likely removed by that earlier attempt.
    """

    success: bool
    message: str
    order_id: int
    already_deleted: bool = False

    @classmethod
    def from_json(cls, data: Json) -> DeleteResult:
        return cls(
            success=_bool(data["success"]),
            message=_str(data.get("message", "")),
            order_id=_int(data["orderId"]),
        )


# ---- auth, embed, files, health ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthInfo:
    ok: bool
    message: str
    storefront_id: int
    user_owner_id: int
    credential_id: int
    scopes: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Json) -> AuthInfo:
        return cls(
            ok=_bool(data["ok"]),
            message=_str(data.get("message", "")),
            storefront_id=_int(data["storefrontId"]),
            user_owner_id=_int(data["userOwnerId"]),
            credential_id=_int(data["credentialId"]),
            scopes=tuple(_str(scope) for scope in data["scopes"]),
        )


@dataclass(frozen=True, slots=True)
class EmbedSession:
    """A short-lived embed token. The token is kept out of repr: it grants access."""

    token: str = field(repr=False)
    expires_in: int
    kid: str
    mode: str
    # Client-side estimate: receipt time + expires_in (the server's clock may differ a little).
    expires_at: datetime

    @classmethod
    def from_json(cls, data: Json, received_at: datetime | None = None) -> EmbedSession:
        expires_in = _int(data["expiresIn"])
        received_at = received_at or datetime.now(UTC)
        return cls(
            token=_str(data["token"]),
            expires_in=expires_in,
            kid=_str(data["kid"]),
            mode=_str(data["mode"]),
            expires_at=received_at + timedelta(seconds=expires_in),
        )


@dataclass(frozen=True, slots=True)
class ProductPreview:
    """Bytes of a public product preview image and their content type."""

    content: bytes = field(repr=False)
    content_type: str


@dataclass(frozen=True, slots=True)
class Health:
    """`GET /healthz`: ok when it answered 2xx; `details` is its JSON object, if any."""

    ok: bool
    status: int
    details: dict[str, Any]


# ---- products -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductMedia:
    big: str | None
    medium: str | None
    small: str | None

    @classmethod
    def from_json(cls, data: Json | None) -> ProductMedia:
        img = (data or {}).get("img") or {}
        return cls(big=img.get("big"), medium=img.get("medium"), small=img.get("small"))


@dataclass(frozen=True, slots=True)
class StorefrontProduct:
    id: int
    share_access: str
    id_user_design: int
    is_customizer: bool

    @classmethod
    def from_json(cls, data: Json) -> StorefrontProduct:
        return cls(
            id=_int(data["id"]),
            share_access=_str(data["shareAccess"]),
            id_user_design=_int(data["idUserDesign"]),
            is_customizer=_bool(data["isCustomizer"]),
        )


@dataclass(frozen=True, slots=True)
class Embeddable:
    viewer: bool
    configurator: bool
    customizer: bool

    @classmethod
    def from_json(cls, data: Json) -> Embeddable:
        return cls(
            viewer=_bool(data["viewer"]),
            configurator=_bool(data["configurator"]),
            customizer=_bool(data["customizer"]),
        )


@dataclass(frozen=True, slots=True)
class Product:
    """A storefront product; list entries and the detail share this shape."""

    id: int
    name: str
    created_at: datetime
    product_id: int
    media: ProductMedia
    storefront_product: StorefrontProduct
    embeddable: Embeddable

    @classmethod
    def from_json(cls, data: Json) -> Product:
        return cls(
            id=_int(data["id"]),
            name=_str(data["name"]),
            created_at=parse_timestamp(data["createdAt"]),
            product_id=_int(data["productId"]),
            media=ProductMedia.from_json(data.get("media")),
            storefront_product=StorefrontProduct.from_json(data["storefrontProduct"]),
            embeddable=Embeddable.from_json(data["embeddable"]),
        )


@dataclass(frozen=True, slots=True)
class ProductList:
    items: tuple[Product, ...]
    total: int

    @classmethod
    def from_json(cls, data: Json) -> ProductList:
        envelope = data["products"]
        return cls(
            items=tuple(Product.from_json(item) for item in envelope["items"]),
            total=_int(envelope["total"]),
        )


__all__ = [
    "AuthInfo",
    "Color",
    "DeleteResult",
    "EmbedSession",
    "Embeddable",
    "Health",
    "LocalizedName",
    "Money",
    "NamedRef",
    "Order",
    "OrderItem",
    "OrderList",
    "OrderSummary",
    "Product",
    "ProductGroup",
    "ProductList",
    "ProductMedia",
    "ProductPreview",
    "QuantityAllUpdate",
    "QuantityUpdate",
    "Size",
    "StatusUpdate",
    "StorefrontProduct",
    "Variant",
]
