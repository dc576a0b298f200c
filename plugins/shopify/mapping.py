"""The one Shopify order -> Section 321 record mapping, over a neutral order shape that
both the CSV and the JSON parsers produce.

Promises: the same order gives the same record and the same key from either input;
cancelled orders, orders with nothing to ship and orders shipped outside the US are
skipped with a reason; every value that cannot be read is a finding on its record
path (`items.0.quantity`) at the input line it came from, never an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field

from s321 import rules
from s321.contracts import Mapped, PipelineContext, RawUnit
from s321.findings import Finding, error, warning
from s321.paths import ConfigPath

from .. import enrichment
from ..enrichment import Enrichment, EnrichmentOptions, clean, country_code, parse_bool, parse_decimal
from ..text_encoding import check_encoding_option, encoding_field

Raw = Any
"""A leaf value as the input gave it (CSV text, a JSON scalar): the mapping converts it
and reports what it cannot read, because only the mapping knows the record path."""

KEY_PREFIX = "shopify:"


def order_key(name: str) -> str:
    """The natural key of an order: its name (`#1001`), the same in CSV and JSON."""
    return KEY_PREFIX + name.strip()


# --------------------------------------------------------------------------- neutral shape


@dataclass(slots=True)
class ShopifyAddress:
    name: Raw = None
    company: Raw = None
    line1: Raw = None
    line2: Raw = None
    city: Raw = None
    province_code: Raw = None
    province: Raw = None
    postal_code: Raw = None
    country_code: Raw = None
    country: Raw = None
    phone: Raw = None

    def is_empty(self) -> bool:
        return not _has_place(_texts(self))


@dataclass(slots=True)
class ShopifyLine:
    location: str
    """FILE:LINE of the input line (the CSV row) the line item came from."""
    name: Raw = None
    quantity: Raw = None
    price: Raw = None
    """Per unit, in `currency` (or the order's currency)."""
    currency: Raw = None
    sku: Raw = None
    vendor: Raw = None
    requires_shipping: Raw = None
    grams: Raw = None
    """Weight of one unit in grams, where the input has it (REST JSON)."""


@dataclass(slots=True)
class ShopifyOrder:
    name: str
    location: str
    email: Raw = None
    phone: Raw = None
    currency: Raw = None
    cancelled_at: Raw = None
    customer_name: Raw = None
    customer_phone: Raw = None
    shipping_address: ShopifyAddress | None = None
    billing_address: ShopifyAddress | None = None
    lines: list[ShopifyLine] = field(default_factory=list)
    tracking_numbers: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- options


def _iso_country(code: str | None) -> str | None:
    if code is not None and not rules.is_country(code):
        raise ValueError("not an ISO 3166-1 alpha-2 country code (e.g. CN, DE)")
    return code.upper() if code else None


class ShopifyOptions(EnrichmentOptions):
    """Options common to the Shopify sources (and given to their mapper)."""

    model_config = ConfigDict(extra="forbid")

    path: ConfigPath = Field(description="A file, or a directory whose files matching "
                             "`pattern` are read in name order.")
    pattern: str | list[str] = Field(default="*", description="Glob(s) for a directory path.")
    default_country_of_origin: Annotated[str | None, AfterValidator(_iso_country)] = Field(
        default=None, description="For items whose SKU the catalog does not know.")
    encoding: Annotated[str, AfterValidator(check_encoding_option)] = encoding_field()


# --------------------------------------------------------------------------- the mapping

_APOSTROPHE_FIELDS = ("postal_code", "phone")  # Shopify prefixes ' to keep Excel off them
_CENTS = Decimal("0.01")


def _text(value: Any) -> str | None:
    """`clean`, with its most common case (text from a CSV cell) first."""
    if value.__class__ is str:
        return value.strip() or None
    return clean(value)


_ADDRESS_FIELDS = attrgetter("name", "company", "line1", "line2", "city", "province_code",
                             "province", "postal_code", "country_code", "country", "phone")


def _texts(addr: ShopifyAddress) -> list[str | None]:
    """`_text` of every field of an address (in _ADDRESS_FIELDS order), in one pass:
    an order has two addresses of eleven fields, and a call per field added up."""
    return [(v.strip() or None) if v.__class__ is str else clean(v) for v in _ADDRESS_FIELDS(addr)]


def _has_place(texts: list[str | None]) -> bool:
    """`not ShopifyAddress.is_empty()`, from its `_texts`."""
    return bool(texts[2] or texts[4] or texts[7] or texts[8] or texts[9])


def _party(texts: list[str | None]) -> dict[str, Any]:
    """Party fields (name, address, phone) of a Shopify address, from its `_texts`. A
    country that is neither a code nor a known name is kept as given: the rules report it."""
    (name, company, line1, line2, city, province_code, province, postal_code, code, country_name,
     phone) = texts
    country_raw = code or country_name
    country = country_code(country_raw) if country_raw else None
    address = {
        "line1": line1,
        "line2": line2,
        "city": city,
        "state_or_province": province_code or province,
        "postal_code": (postal_code.lstrip("'").strip() or None) if postal_code else None,
        "country": country or country_raw,
    }
    return {
        "name": name or company,
        "address": {k: v for k, v in address.items() if v} or None,
        "phone": (phone.lstrip("'").strip() or None) if phone else None,
    }


def _quantity(value: Raw, index: int, where: str, found: list[Finding]) -> int | None:
    if value.__class__ is str and value.isascii() and value.isdigit():
        return int(value)  # what a CSV cell mostly holds; parse_decimal agrees
    number = parse_decimal(value)
    if number is None or number != number.to_integral_value():
        text = clean(value)
        what = "missing" if text is None else f"{str(text)[:40]!r}, not a whole number of pieces"
        found.append(error("invalid-quantity", f"items.{index}.quantity",
                           f"the line item's quantity is {what}", where))
        return None
    return int(number)


def _price(value: Raw, index: int, where: str, found: list[Finding]) -> Decimal | None:
    number = _price_text(value) if value.__class__ is str else _price_value(value)
    if number is None:
        text = clean(value)
        what = "missing" if text is None else (
            f"{str(text)[:40]!r}, not a number: write it with a decimal point, without "
            "thousands separators or a currency sign (e.g. 1234.50)")
        found.append(error("invalid-price", f"items.{index}.listed_price",
                           f"the line item's price is {what}", where))
    return number


@lru_cache(maxsize=4096)  # prices repeat (they come from a catalog), Decimals never change
def _price_text(value: str) -> Decimal | None:
    return _price_value(value)


def _price_value(value: Raw) -> Decimal | None:
    number = parse_decimal(value)
    if number is None:
        return None
    # GraphQL writes "21.0" where the CSV has "21.00": the same price must hash the same.
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2 and number.adjusted() < 20:
        return number.quantize(_CENTS)
    return number


class Memo:
    """What `map_order` already made of the same raw values with the same tables: line
    items (by their cells, the order's currency and the default origin) and sellers (by
    the line items' vendors). Only what came out without a finding is kept, so a memo
    never changes a record or its findings; whoever reloads the tables clears it."""

    __slots__ = ("items", "sellers")
    LIMIT = 8192
    """Entries each, at most (a shop's products and vendors; past it, start again)."""

    def __init__(self) -> None:
        self.items: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.sellers: dict[tuple[str | None, ...], dict[str, Any]] = {}

    def clear(self) -> None:
        self.items.clear()
        self.sellers.clear()


_TEXT_TYPES = frozenset({str, type(None)})
"""Raw values a memo key may hold: 1, 1.0 and True are equal keys but not equal cells."""


def map_order(order: ShopifyOrder, context: PipelineContext, tables: Enrichment,
              default_origin: str | None = None, memo: Memo | None = None) -> Mapped:
    """Record fields for one order, or the reason it is not a Section 321 consignment.
    `memo`: kept by the caller from order to order, while `tables` stay as they are."""
    if _text(order.cancelled_at):
        return Mapped(skipped="cancelled order")
    found: list[Finding] = []

    shipping_lines: list[ShopifyLine] = []
    not_given: list[ShopifyLine] = []
    for line in order.lines:
        flag = line.requires_shipping  # "true" or "false" in an export: parse_bool agrees
        requires = True if flag == "true" else False if flag == "false" else parse_bool(flag)
        if requires is None and _text(flag) is None:
            # Not given (a GraphQL query that did not ask for it, an empty cell): the line
            # ships, so that its value counts; said once for the order, below.
            not_given.append(line)
        elif requires is None:
            # Unreadable: keep the line (filing too much is safer than silently too little).
            found.append(error("invalid-requires-shipping", f"items.{len(shipping_lines)}",
                               "the line item's requires-shipping flag is neither true nor false",
                               line.location))
        if requires is not False:
            shipping_lines.append(line)
    if not_given:
        found.append(warning(
            "requires-shipping-not-given", "items",
            f"{len(not_given)} of {len(order.lines)} line items do not say whether they require "
            f"shipping; they are filed as goods that ship (their value counts). Add "
            f"requiresShipping to the GraphQL query (requires_shipping in REST, the column "
            f"'Lineitem requires shipping' in a CSV) to leave out gift cards, tips and downloads",
            not_given[0].location))
    if not order.lines:
        return Mapped(skipped="nothing to ship: the order has no line items")
    if not shipping_lines:
        return Mapped(skipped="nothing to ship: no line item requires shipping")
    shipping = _texts(order.shipping_address) if order.shipping_address is not None else None
    if shipping is None or not _has_place(shipping):
        return Mapped(skipped="nothing to ship: the order has no shipping address")

    deliver_to = _party(shipping)
    country = (deliver_to["address"] or {}).get("country")
    if country and rules.is_country(country) and country not in rules.US_CUSTOMS_TERRITORY:
        return Mapped(skipped=f"ships to {country}, outside the US customs territory")
    if not country:
        # Without it nothing shows the goods stay in the US: never file that by default.
        found.append(error("missing-country", "ultimate_deliver_to.address.country",
                           "the shipping address has no country", order.location))

    currency = _text(order.currency) or context.defaults.currency
    origin = default_origin or context.defaults.country_of_origin
    if memo is None:
        items = [_item(line, i, currency, tables, origin, found)
                 for i, line in enumerate(shipping_lines)]
    else:
        items = [_memo_item(memo.items, line, i, currency, tables, origin, found)
                 for i, line in enumerate(shipping_lines)]

    if order.billing_address and _ADDRESS_FIELDS(order.billing_address) == _ADDRESS_FIELDS(
            order.shipping_address):
        # Most orders are billed where they ship: the same cells make the same party.
        customer = {**deliver_to, "address": deliver_to["address"] and dict(deliver_to["address"])}
    else:
        billing = _texts(order.billing_address) if order.billing_address else None
        customer = (_party(billing) if billing is not None and _has_place(billing)
                    else {"name": None, "address": None, "phone": None})
    customer["name"] = customer["name"] or _text(order.customer_name)
    customer["email"] = _text(order.email)
    customer["phone"] = customer["phone"] or _text(order.customer_phone) or _text(order.phone)

    vendors = [_text(line.vendor) for line in shipping_lines]
    seller = memo.sellers.get(tuple(vendors)) if memo is not None else None
    if seller is None:
        seller, seller_findings = tables.seller_fields(vendors, context.defaults)
        if seller_findings:
            found += seller_findings
        elif memo is not None:
            if len(memo.sellers) >= Memo.LIMIT:
                memo.sellers.clear()
            memo.sellers[tuple(vendors)] = seller

    tracking = next((t for t in (clean(n) for n in order.tracking_numbers) if t), None) \
        if order.tracking_numbers else None
    if not tracking:
        tracking = tables.tracking_number(order.name)
        problem = None if tracking else tables.tracking_problem(order.name)
        if problem is not None:
            found.append(problem)

    defaults = context.defaults
    record: dict[str, Any] = {
        "originator_code": context.originator_code,
        "filer_type": context.filer_type,
        "mode_of_transport": context.mode_of_transport,
        "tracking_number": tracking,
        "ultimate_deliver_to": _drop_empty(deliver_to),
        "customer": _drop_empty(customer),
        **seller,
        "items": items,
    }
    for name in ("consignment_originator", "exemption_claimant"):
        party = getattr(defaults, name)
        if party is not None:
            record[name] = party.model_dump(exclude_none=True)
    if defaults.known_carrier_customer is not None:
        record["known_carrier_customer"] = defaults.known_carrier_customer
    placed = {f"items.{i}": line.location for i, line in enumerate(shipping_lines)}
    return Mapped(record=record, findings=found, locations=placed)


def _item(line: ShopifyLine, index: int, order_currency: str | None, tables: Enrichment,
          default_origin: str | None, found: list[Finding]) -> dict[str, Any]:
    where = line.location
    currency = _text(line.currency) or order_currency
    item: dict[str, Any] = {
        "description": _text(line.name),
        "quantity": _quantity(line.quantity, index, where, found),
        "listed_price": _price(line.price, index, where, found),
        "currency": currency.upper() if currency else None,
        "sku": _text(line.sku),
    }
    grams = parse_decimal(line.grams) if line.grams is not None else None
    if grams:
        item["weight_kg"] = grams / 1000
    catalog_findings = tables.apply_catalog(item, f"items.{index}", item["description"])
    if catalog_findings:
        found += [f.at(where) for f in catalog_findings]
    if not item.get("country_of_origin"):
        item["country_of_origin"] = default_origin
    return {k: v for k, v in item.items() if v is not None}


def _memo_item(memo: dict[tuple[Any, ...], dict[str, Any]], line: ShopifyLine, index: int,
               order_currency: str | None, tables: Enrichment, default_origin: str | None,
               found: list[Finding]) -> dict[str, Any]:
    """`_item`, from `memo` when the same cells were mapped before without a finding (a
    shop's orders repeat its products: 92 % of the line items of a 20k export)."""
    key = (line.name, line.quantity, line.price, line.currency, line.sku, line.grams,
           order_currency, default_origin)
    try:
        item = memo.get(key)
    except TypeError:  # a JSON list or object where a value belongs: the finding says so
        return _item(line, index, order_currency, tables, default_origin, found)
    if item is not None:
        return dict(item)  # each record its own dict: a mapped record may be changed
    before = len(found)
    item = _item(line, index, order_currency, tables, default_origin, found)
    if len(found) == before and set(map(type, key)) <= _TEXT_TYPES:
        if len(memo) >= Memo.LIMIT:
            memo.clear()
        memo[key] = dict(item)
    return item


def _drop_empty(party: dict[str, Any]) -> dict[str, Any] | None:
    party = {k: v for k, v in party.items() if v is not None}
    return party or None


# --------------------------------------------------------------------------- the mapper


REFRESH_SECONDS = 0.5
"""The enrichment files are looked at for changes at the first order of each input file
and then at most this often: a stat() of every table for every order cost a tenth of
the mapping."""


class ShopifyMapper:
    """The mapper of both Shopify sources: `map(unit)` for units whose payload is a
    `ShopifyOrder`. Enrichment tables are read once, when the mapper is built, and again
    when their files change (see REFRESH_SECONDS)."""

    def __init__(self, options: ShopifyOptions, context: PipelineContext):
        self.context = context
        self.default_origin = options.default_country_of_origin
        self.tables = enrichment.load(options)
        self.hints = hints(options)
        self._input: str | None = None
        self._refresh_due = 0.0
        self.memo = Memo()
        self._stamps = _stamps(self.tables)

    def map(self, unit: RawUnit) -> Mapped:
        if not isinstance(unit.payload, ShopifyOrder):
            # A broken unit: the source's findings already say why.
            return Mapped()
        input_file = unit.location.rpartition(":")[0] or unit.location
        now = time.monotonic()
        if input_file != self._input or now >= self._refresh_due:
            self.tables.refresh()
            self._input, self._refresh_due = input_file, now + REFRESH_SECONDS
            stamps = _stamps(self.tables)
            if stamps != self._stamps:  # a table was read again: what it gave may differ
                self.memo.clear()
                self._stamps = stamps
        mapped = map_order(unit.payload, self.context, self.tables, self.default_origin, self.memo)
        mapped.hints = self.hints
        return mapped


def _stamps(tables: Enrichment) -> list[Any]:
    """What tells each table's contents apart: (mtime, size) of the file it last read
    (a table that cannot say so gives a fresh object, so that the memo is cleared)."""
    return [getattr(table, "_stamp", object()) for table in tables.tables()]


def hints(options: ShopifyOptions) -> dict[str, str]:
    """Where a shop supplies each field (for the messages of findings on it): the order's
    own columns, or the enrichment table that fills it, named if the source has one."""
    def table(option: str, what: str, column: str) -> str:
        path = getattr(options, option)
        if path is not None:
            return f"add {what} to the {option} table (`source.{option}`, {path.name}) with its `{column}`"
        return (f"a Shopify export does not carry it: name a {option} table as `source.{option}` "
                f"and give {what} with its `{column}` (docs/sources.md)")

    item = "a row for the item's SKU"
    vendor = "a row for the line items' Vendor"
    return {
        "tracking_number": table("tracking", "a row for the order (its name)", "tracking_number"),
        "items.*.product_url": table("catalog", item, "product_url"),
        "items.*.hts_code": table("catalog", item, "hts_code"),
        "items.*.weight_kg": table("catalog", item, "weight_kg"),
        "items.*.country_of_origin": table("catalog", item, "country_of_origin")
        + ", or set `default_country_of_origin` on the source",
        "items.*.description": "the line item's name (Lineitem name), or the catalog's `description`",
        "items.*.quantity": "the line item's quantity (Lineitem quantity)",
        "items.*.listed_price": "the line item's price (Lineitem price)",
        "items.*.currency": "the order's currency (Currency), or `defaults.currency`",
        "ultimate_deliver_to": "the order's shipping address (the Shipping columns of a CSV "
                               "export, shipping_address in JSON)",
        "seller": table("vendors", vendor, "seller_name")
        + ", or set `defaults.seller`",
        "marketplace_seller_id": table("vendors", vendor, "marketplace_seller_id")
        + ", or set `defaults.marketplace_seller_id`",
        "identified_marketplace_merchant": table("vendors", vendor, "identified_merchant")
        + ", or set `defaults.identified_marketplace_merchant`",
    }
