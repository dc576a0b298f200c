"""Shopify order JSON -> the neutral `ShopifyOrder`: the Admin REST shape (as an
`orders/create` webhook delivers it) and the GraphQL Admin shape (`lineItems.edges`).

Promises: any JSON value is accepted without an exception; what is not an order, or not
where an order keeps it, is returned as findings naming the record path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from s321.findings import Finding, error

from ..enrichment import clean
from .mapping import ShopifyAddress, ShopifyLine, ShopifyOrder


def orders_in(doc: Any) -> Iterator[Any]:
    """The order objects a document holds: an order, `{"order": ...}`, `{"orders": [...]}`,
    a list, or a GraphQL response (`data.order`, `data.orders.edges[].node`/`.nodes`).
    Anything else is yielded as it is, for `parse` to refuse with a finding."""
    if isinstance(doc, list):
        yield from doc
    elif isinstance(doc, dict) and isinstance(doc.get("orders"), (list, dict)):
        yield from _nodes(doc["orders"])
    elif isinstance(doc, dict) and isinstance(doc.get("order"), dict):
        yield doc["order"]
    elif isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        data = doc["data"]
        if isinstance(data.get("order"), dict):
            yield data["order"]
        elif isinstance(data.get("orders"), (list, dict)):
            yield from _nodes(data["orders"])
        else:
            yield doc
    else:
        yield doc


def _nodes(connection: Any) -> Iterator[Any]:
    """Elements of a REST list or a GraphQL connection (`edges[].node` or `nodes`)."""
    if isinstance(connection, list):
        yield from connection
        return
    if isinstance(connection.get("nodes"), list):
        yield from connection["nodes"]
    elif isinstance(connection.get("edges"), list):
        for edge in connection["edges"]:
            yield edge.get("node") if isinstance(edge, dict) else edge


def is_graphql(order: dict[str, Any]) -> bool:
    return any(k in order for k in ("lineItems", "shippingAddress", "cancelledAt"))


def parse(order: Any, location: str) -> tuple[ShopifyOrder | None, list[Finding]]:
    """The neutral order of one order object, or None with findings saying why not."""
    if not isinstance(order, dict):
        return None, [error("not-an-order", "", "not a Shopify order: expected a JSON object "
                            "with name and line_items (REST) or lineItems (GraphQL)", location)]
    found: list[Finding] = []
    graphql = is_graphql(order)
    name = clean(order.get("name"))
    if name is None and clean(order.get("order_number")):
        name = f"#{clean(order.get('order_number'))}"
    if name is None:
        return None, [error("order-without-name", "", "the order has no name (e.g. \"#1001\"), "
                            "so it has no stable key", location)]
    if graphql:
        return _from_graphql(order, name, location, found), found
    return _from_rest(order, name, location, found), found


def _obj(value: Any, at: str, location: str, found: list[Finding]) -> dict[str, Any]:
    """`value` if it is an object; {} (with a finding unless it is absent) otherwise."""
    if isinstance(value, dict):
        return value
    if value is not None:
        found.append(error("not-an-object", at, "expected a JSON object here", location))
    return {}


def _list(value: Any, at: str, location: str, found: list[Finding]) -> list[Any]:
    if isinstance(value, list):
        return value
    if value is not None:
        found.append(error("not-a-list", at, "expected a JSON list here", location))
    return []


# --------------------------------------------------------------------------- REST


def _from_rest(o: dict[str, Any], name: str, location: str, found: list[Finding]) -> ShopifyOrder:
    customer = _obj(o.get("customer"), "customer", location, found)
    lines = []
    for i, li in enumerate(_list(o.get("line_items"), "items", location, found)):
        li = _obj(li, f"items.{i}", location, found)
        price_set = _obj(li.get("price_set"), f"items.{i}.listed_price", location, found)
        shop_money = _obj(price_set.get("shop_money"), f"items.{i}.listed_price", location, found)
        lines.append(ShopifyLine(
            location=location, name=li.get("name") or li.get("title"),
            quantity=li.get("quantity"),
            price=li["price"] if li.get("price") is not None else shop_money.get("amount"),
            currency=shop_money.get("currency_code"), sku=li.get("sku"),
            vendor=li.get("vendor"), requires_shipping=li.get("requires_shipping"),
            grams=li.get("grams")))
    tracking: list[str] = []
    for f in _list(o.get("fulfillments"), "tracking_number", location, found):
        f = _obj(f, "tracking_number", location, found)
        tracking += [t for t in _list(f.get("tracking_numbers"), "tracking_number", location, found)
                     if isinstance(t, str)]
        if isinstance(f.get("tracking_number"), str):
            tracking.append(f["tracking_number"])
    person = " ".join(p for p in (clean(customer.get("first_name")),
                                  clean(customer.get("last_name"))) if p)
    return ShopifyOrder(
        name=name, location=location,
        email=o.get("email") or o.get("contact_email") or customer.get("email"),
        phone=o.get("phone"), currency=o.get("currency"),
        cancelled_at=o.get("cancelled_at"),
        customer_name=person or None, customer_phone=customer.get("phone"),
        shipping_address=_rest_address(o.get("shipping_address"), "ultimate_deliver_to",
                                       location, found),
        billing_address=_rest_address(o.get("billing_address"), "customer", location, found),
        lines=lines, tracking_numbers=tracking)


def _rest_address(value: Any, at: str, location: str, found: list[Finding]) -> ShopifyAddress | None:
    a = _obj(value, f"{at}.address", location, found)
    if not a:
        return None
    person = " ".join(p for p in (clean(a.get("first_name")), clean(a.get("last_name"))) if p)
    return ShopifyAddress(
        name=a.get("name") or person or None, company=a.get("company"),
        line1=a.get("address1"), line2=a.get("address2"), city=a.get("city"),
        province_code=a.get("province_code"), province=a.get("province"),
        postal_code=a.get("zip"), country_code=a.get("country_code"), country=a.get("country"),
        phone=a.get("phone"))


# --------------------------------------------------------------------------- GraphQL


def _from_graphql(o: dict[str, Any], name: str, location: str,
                  found: list[Finding]) -> ShopifyOrder:
    customer = _obj(o.get("customer"), "customer", location, found)
    items = o.get("lineItems")
    nodes = list(_nodes(items)) if isinstance(items, (dict, list)) else _list(items, "items",
                                                                              location, found)
    lines = []
    for i, node in enumerate(nodes):
        node = _obj(node, f"items.{i}", location, found)
        unit_price = _obj(node.get("originalUnitPriceSet"), f"items.{i}.listed_price",
                          location, found)
        money = _obj(unit_price.get("shopMoney"), f"items.{i}.listed_price", location, found)
        lines.append(ShopifyLine(
            location=location, name=node.get("name") or node.get("title"),
            quantity=node.get("quantity"), price=money.get("amount"),
            currency=money.get("currencyCode"), sku=node.get("sku"), vendor=node.get("vendor"),
            requires_shipping=node.get("requiresShipping")))
    tracking: list[str] = []
    fulfillments = o.get("fulfillments")
    for f in (_nodes(fulfillments) if isinstance(fulfillments, (dict, list)) else ()):
        f = _obj(f, "tracking_number", location, found)
        for info in _list(f.get("trackingInfo"), "tracking_number", location, found):
            number = _obj(info, "tracking_number", location, found).get("number")
            if isinstance(number, str):
                tracking.append(number)
    person = clean(customer.get("displayName")) or " ".join(
        p for p in (clean(customer.get("firstName")), clean(customer.get("lastName"))) if p)
    return ShopifyOrder(
        name=name, location=location,
        email=o.get("email") or customer.get("email"), phone=o.get("phone"),
        currency=o.get("currencyCode"), cancelled_at=o.get("cancelledAt"),
        customer_name=person or None, customer_phone=customer.get("phone"),
        shipping_address=_graphql_address(o.get("shippingAddress"), "ultimate_deliver_to",
                                          location, found),
        billing_address=_graphql_address(o.get("billingAddress"), "customer", location, found),
        lines=lines, tracking_numbers=tracking)


def _graphql_address(value: Any, at: str, location: str,
                     found: list[Finding]) -> ShopifyAddress | None:
    a = _obj(value, f"{at}.address", location, found)
    if not a:
        return None
    person = " ".join(p for p in (clean(a.get("firstName")), clean(a.get("lastName"))) if p)
    return ShopifyAddress(
        name=a.get("name") or person or None, company=a.get("company"),
        line1=a.get("address1"), line2=a.get("address2"), city=a.get("city"),
        province_code=a.get("provinceCode"), province=a.get("province"),
        postal_code=a.get("zip"), country_code=a.get("countryCodeV2") or a.get("countryCode"),
        country=a.get("country"), phone=a.get("phone"))
