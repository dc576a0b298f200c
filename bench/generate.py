"""Deterministic inputs of any size for the benchmarks: Shopify order exports with their
catalog, vendor and tracking tables, X12 309 manifests and IATA Cargo-IMP FHL messages.

Promises: the same size and seed give byte-identical files; everything is written as it
is generated (memory does not grow with the size); the shapes follow the samples in
`contrib/samples/`. Usage:

    python bench/generate.py shop 100000 OUT_DIR      # orders_export.csv + tables
    python bench/generate.py x12-309 100000 OUT.edi   # bills of lading
    python bench/generate.py cargo-imp-fhl 100000 OUT.txt  # house waybills
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_SEED = 321

# --------------------------------------------------------------------------- vocabulary
# Invented, but shaped like real data: accented names, apartment numbers, provinces.

FIRST_NAMES = (
    "José", "Zoë", "Amara", "Liam", "Priya", "Lucas", "Chen", "Hannah", "Mateo", "Aisha",
    "Søren", "Chloé", "Björn", "Renée", "Nguyễn", "Siobhán", "Olga", "Kwame", "Yuki", "Fatima",
    "Dmitri", "Ines", "Rafael", "Mei", "Oluwaseun", "Grace", "Ahmed", "Sofia", "Noah", "Emma",
    "Jamal", "Ana", "Tomás", "Leila", "Marcus", "Hye-jin", "Diego", "Ingrid", "Kofi", "Elena",
)
LAST_NAMES = (
    "Müller", "Lindqvist", "Okafor", "O'Brien", "Raman", "Moreau", "Wei", "Schmidt", "García",
    "Nakamura-Brandt", "Jørgensen", "Beaumont", "Åkesson", "Dubois", "Thị Hoa", "O'Connor",
    "Ivanova", "Mensah", "Tanaka", "Haddad", "Petrov", "Ferreira", "Alvarez", "Lin", "Adeyemi",
    "Whitfield", "Hassan", "Rossi", "Smith", "Johnson", "Williams", "Brown", "Kowalski",
    "Park", "Hernández", "Larsen", "Boateng", "Popescu", "Kim", "Nowak",
)
STREETS = (
    "Brattle Street", "NW Everett St", "Hudson Street", "Beacon Street", "Mission Street",
    "W 108th St", "Oak Lawn Ave", "Shoal Creek Boulevard", "Pike Street", "Westminster Avenue",
    "North Michigan Avenue", "West Sunset Boulevard", "Fifth Ave", "E Camelback Rd",
    "S Broadway", "Water St", "Howard St", "W Grand Blvd", "Washington Blvd", "Peachtree St NE",
    "Congress Ave", "Main Street", "Elm Street", "Maple Avenue", "Cedar Lane", "Lakeshore Drive",
)
# (city, state code, state name, ZIP prefix)
US_CITIES = (
    ("Cambridge", "MA", "Massachusetts", "021"), ("Boston", "MA", "Massachusetts", "021"),
    ("Portland", "OR", "Oregon", "972"), ("Jersey City", "NJ", "New Jersey", "073"),
    ("San Francisco", "CA", "California", "941"), ("Los Angeles", "CA", "California", "900"),
    ("San Diego", "CA", "California", "921"), ("New York", "NY", "New York", "100"),
    ("Brooklyn", "NY", "New York", "112"), ("Dallas", "TX", "Texas", "752"),
    ("Austin", "TX", "Texas", "787"), ("Houston", "TX", "Texas", "770"),
    ("Seattle", "WA", "Washington", "981"), ("Chicago", "IL", "Illinois", "606"),
    ("Phoenix", "AZ", "Arizona", "850"), ("Detroit", "MI", "Michigan", "482"),
    ("Atlanta", "GA", "Georgia", "303"), ("Miami", "FL", "Florida", "331"),
    ("Denver", "CO", "Colorado", "802"), ("Minneapolis", "MN", "Minnesota", "554"),
    ("San Juan", "PR", "Puerto Rico", "009"), ("Philadelphia", "PA", "Pennsylvania", "191"),
)
# Orders shipped abroad: the mapping skips them.
FOREIGN = (
    ("Montréal", "QC", "Quebec", "H2Y 2A9", "CA"), ("Toronto", "ON", "Ontario", "M5H 1W7", "CA"),
    ("London", "", "", "EC1A 1BB", "GB"), ("Berlin", "BE", "Berlin", "10115", "DE"),
)

# (code, vendor, seller legal name, street, district, city, province, postal code, country)
VENDORS = (
    ("LC", "Lumen Ceramics", "Jingdezhen Lumen Ceramics Co., Ltd.", "No. 18 Taoyang Road",
     "Zhushan District", "Jingdezhen", "Jiangxi", "333000", "CN"),
    ("HT", "Harbour Tea House", "Harbour Tea House Limited", "Unit 1203, Kowloon Bay Trade Centre",
     "8 Wang Kwong Road", "Kowloon Bay", "Kowloon", "", "HK"),
    ("TL", "Thistle & Loom", "Thistle & Loom Ltd", "14 Commercial Quay", "", "Edinburgh", "",
     "EH6 6LX", "GB"),
    ("SW", "Schwarzwald Werkstatt", "Schwarzwald Werkstatt GmbH", "Kaiser-Joseph-Str. 241", "",
     "Freiburg im Breisgau", "BW", "79098", "DE"),
    ("SK", "Shenzhen Kaida", "Shenzhen Kaida Electronics Co., Ltd.", "Building 4 Bantian Park",
     "Longgang District", "Shenzhen", "Guangdong", "518129", "CN"),
    ("YH", "Yiwu Haoyun", "Yiwu Haoyun Trading Co Ltd", "No 58 Chouzhou North Rd", "",
     "Yiwu", "Zhejiang", "322000", "CN"),
    ("KG", "Kowloon Gadget House", "Kowloon Gadget House Ltd", "Unit 12 8F Kwun Tong Plaza", "",
     "Hong Kong", "", "", "HK"),
    ("JP", "Jaipur Prints", "Jaipur Block Prints Pvt Ltd", "22 Johari Bazar", "", "Jaipur",
     "Rajasthan", "302003", "IN"),
    ("HV", "Hanoi Velvet", "Hanoi Velvet Garment JSC", "45 Hang Bong", "Hoan Kiem", "Hanoi", "",
     "100000", "VN"),
    ("TC", "Taipei Caicai", "Taipei Caicai Accessories Co", "No 5 Lane 101 Zhongshan Rd Sec 2",
     "", "Taipei", "", "104", "TW"),
    ("KY", "Kyoto Washi", "Kyoto Washi Kobo K.K.", "3-12 Shijo Karasuma", "Shimogyo-ku",
     "Kyoto", "Kyoto", "600-8008", "JP"),
    ("SL", "Seoul Lab Beauty", "Seoul Lab Co., Ltd.", "88 Teheran-ro", "Gangnam-gu", "Seoul",
     "", "06142", "KR"),
    ("FI", "Firenze Pelle", "Firenze Pelle S.r.l.", "Via dei Calzaiuoli 14", "", "Firenze",
     "FI", "50122", "IT"),
    ("PS", "Provence Savon", "Savonnerie de Provence SARL", "12 Rue de la République", "",
     "Marseille", "", "13002", "FR"),
    ("OX", "Oaxaca Textiles", "Textiles de Oaxaca SA de CV", "Calle Macedonio Alcalá 401", "",
     "Oaxaca", "OAX", "68000", "MX"),
    ("NW", "Northwind Goods", "", "", "", "", "", "", ""),  # the house brand: no row
)
# (code, noun, HTS-10, price range in USD, weight range in kg)
PRODUCTS = (
    ("MUG", "Stoneware Mug", "6912004400", (14, 38), (0.25, 0.5)),
    ("BOWL", "Porcelain Bowl", "6911101000", (12, 45), (0.2, 0.6)),
    ("TEA", "Loose Leaf Tea", "0902300010", (9, 36), (0.05, 0.25)),
    ("SCARF", "Wool Scarf", "6214200000", (29, 120), (0.1, 0.3)),
    ("SOCKS", "Merino Socks", "6115940000", (12, 28), (0.05, 0.15)),
    ("CLOCK", "Wall Clock", "9105291000", (45, 320), (0.8, 2.5)),
    ("KNIFE", "Pocket Knife", "8211930060", (25, 95), (0.05, 0.2)),
    ("BOARD", "Cutting Board", "4419909100", (19, 60), (0.6, 1.5)),
    ("EARBUD", "Wireless Earbuds", "8518302000", (19, 89), (0.08, 0.2)),
    ("CABLE", "USB-C Cable", "8544429000", (6, 19), (0.03, 0.1)),
    ("POWER", "Power Bank", "8507600020", (15, 49), (0.15, 0.35)),
    ("LAMP", "LED Desk Lamp", "9405214000", (22, 79), (0.6, 1.4)),
    ("CASE", "Phone Case", "3926909990", (8, 29), (0.03, 0.1)),
    ("TOY", "Plush Toy", "9503000073", (9, 35), (0.1, 0.5)),
    ("JACKET", "Rain Jacket", "6202402020", (39, 149), (0.3, 0.9)),
    ("BLOUSE", "Cotton Blouse", "6206303011", (19, 69), (0.15, 0.4)),
    ("BAG", "Leather Handbag", "4202210000", (59, 390), (0.4, 1.2)),
    ("WALLET", "Leather Wallet", "4202310000", (19, 89), (0.08, 0.2)),
    ("SOAP", "Olive Oil Soap", "3401110000", (5, 18), (0.1, 0.3)),
    ("SERUM", "Face Serum", "3304990000", (12, 48), (0.05, 0.15)),
    ("PAPER", "Washi Notebook", "4820102010", (8, 32), (0.1, 0.4)),
    ("PRINT", "Block Print Cushion Cover", "6304920000", (14, 39), (0.1, 0.3)),
)
VARIANTS = ("Red", "Blue", "Celadon", "Indigo", "Grey", "Black", "Natural", "Green", "Small",
            "Large", "Set of 2", "Set of 4", "350 ml", "Classic", "Deluxe", "Mini", "XL", "M")
SKUS_PER_PRODUCT = 6
TRACKING_CARRIERS = (
    ("YunExpress", "YT25{:014d}"), ("Hongkong Post", "LX{:09d}HK"), ("Royal Mail", "RR{:09d}GB"),
    ("DHL Express", "44{:08d}"), ("USPS", "9400111899223{:09d}"),
)
SHIPPING_METHODS = ("International Tracked (7-14 days)", "Express (3-5 days)", "Economy (10-20 days)")

# Shares of unusual orders, per 1,000: they exercise the skip and finding paths as a
# real export would (cancelled, digital goods, shipped abroad, over the limit...).
PER_MILLE_CANCELLED = 8
PER_MILLE_DIGITAL_ONLY = 5
PER_MILLE_GIFT_CARD_LINE = 20
PER_MILLE_FOREIGN = 15
PER_MILLE_EXPENSIVE = 8
PER_MILLE_UNKNOWN_SKU = 4
PER_MILLE_UNTRACKED = 10
PER_MILLE_NOTE = 15

SHOPIFY_HEADER = (
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City",
    "Shipping Zip", "Shipping Province", "Shipping Country", "Shipping Phone", "Notes",
    "Note Attributes", "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount",
    "Vendor", "Outstanding Balance", "Employee", "Location", "Device ID", "Id", "Tags",
    "Risk Level", "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value", "Tax 2 Name",
    "Tax 2 Value", "Tax 3 Name", "Tax 3 Value", "Tax 4 Name", "Tax 4 Value", "Tax 5 Name",
    "Tax 5 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
    "Payment References",
)
"""The 79 columns of Shopify's admin "Export orders" CSV, in its order."""
_COL = {name: i for i, name in enumerate(SHOPIFY_HEADER)}
_LINE_COLUMNS = ("Name", "Lineitem quantity", "Lineitem name", "Lineitem price",
                 "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
                 "Lineitem taxable", "Lineitem fulfillment status", "Vendor", "Lineitem discount")
"""What Shopify fills on an order's second and later rows."""

FIRST_ORDER = 100001
START = datetime(2025, 3, 3, 8, 0, 0)


# --------------------------------------------------------------------------- catalog


@dataclass(frozen=True, slots=True)
class Sku:
    sku: str
    vendor: str
    title: str
    price: int  # cents
    hts: str
    origin: str
    weight: str
    url: str
    description: str


def catalog(seed: int = DEFAULT_SEED) -> list[Sku]:
    """The shop's products: a few thousand SKUs at most, whatever the order count."""
    rng = random.Random(f"catalog:{seed}")
    out = []
    for code, vendor, *_rest in VENDORS:
        country = _rest[-1] or "IN"
        for pcode, noun, hts, (low, high), (wlow, whigh) in rng.sample(PRODUCTS, 8):
            for n in range(SKUS_PER_PRODUCT):
                variant = VARIANTS[(n * 7 + len(pcode)) % len(VARIANTS)]
                sku = f"{code}-{pcode}-{n + 1:02d}"
                title = f"{noun} - {variant}"
                slug = f"{noun}-{variant}-{code}{n}".lower().replace(" ", "-")
                out.append(Sku(
                    sku=sku, vendor=vendor, title=title,
                    price=rng.randrange(low * 100, high * 100, 50), hts=hts, origin=country,
                    weight=f"{rng.uniform(wlow, whigh):.2f}",
                    url=f"https://shop.example.com/products/{slug}",
                    description=f"{noun}, {variant.lower()}" if n % 3 else ""))
    return out


def write_catalog(path: Path, skus: list[Sku]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("sku", "hts_code", "country_of_origin", "product_url", "weight_kg",
                    "description"))
        for s in skus:
            # HTS codes written the way people type them, dotted now and then.
            hts = s.hts if hash_mod(s.sku, 3) else f"{s.hts[:4]}.{s.hts[4:6]}.{s.hts[6:]}"
            w.writerow((s.sku, hts, s.origin, s.url, s.weight, s.description))


def write_vendors(path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("vendor", "seller_name", "line1", "line2", "city", "state_or_province",
                    "postal_code", "country", "marketplace_seller_id", "identified_merchant"))
        for i, (code, vendor, legal, line1, line2, city, province, postal, country) in enumerate(VENDORS):
            if not legal:
                continue  # the house brand falls back to the pipeline's default seller
            w.writerow((vendor, legal, line1, line2, city, province, postal, country,
                        f"SHOP-S-{i + 1:04d}", "true" if i % 5 else "false"))


def hash_mod(text: str, n: int) -> int:
    """A stable small hash (Python's hash() of a str changes between runs)."""
    return sum(text.encode("utf-8")) % n


# --------------------------------------------------------------------------- Shopify orders


@dataclass(frozen=True)
class ShopFiles:
    orders: Path
    catalog: Path
    vendors: Path
    tracking: Path


def write_shop(folder: Path, orders: int, seed: int = DEFAULT_SEED) -> ShopFiles:
    """An orders export of `orders` orders and the tables a pipeline enriches it with.
    The tracking table has a row per shipped order (as a label system exports them)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = ShopFiles(folder / "orders_export.csv", folder / "catalog.csv",
                      folder / "vendors.csv", folder / "tracking.csv")
    skus = catalog(seed)
    write_catalog(files.catalog, skus)
    write_vendors(files.vendors)
    rng = random.Random(f"orders:{seed}")
    with files.orders.open("w", encoding="utf-8", newline="") as out, \
            files.tracking.open("w", encoding="utf-8", newline="") as track:
        out.write("\ufeff")  # Shopify writes a BOM so that Excel reads UTF-8
        rows = csv.writer(out, lineterminator="\n")
        labels = csv.writer(track, lineterminator="\n")
        rows.writerow(SHOPIFY_HEADER)
        labels.writerow(("Order Name", "Ship Date", "Carrier", "Service", "Tracking Number"))
        for number in range(FIRST_ORDER, FIRST_ORDER + orders):
            _write_order(rows, labels, rng, skus, number)
    return files


def _write_order(rows: Any, labels: Any, rng: random.Random, skus: list[Sku],
                 number: int) -> None:
    """The rows of one order (1-3 line items, now and then a gift card), and its label."""
    name = f"#{number}"
    roll = rng.randrange(1000)
    created = START + timedelta(seconds=(number - FIRST_ORDER) * 37)
    stamp = created.strftime("%Y-%m-%d %H:%M:%S -0500")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    person = f"{first} {last}"
    line1 = f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}"
    line2 = f"Apt {rng.randrange(1, 40)}{rng.choice('ABCDEF')}" if rng.random() < 0.3 else ""
    if roll < PER_MILLE_FOREIGN:
        city, province, province_name, postal, country = rng.choice(FOREIGN)
    else:
        city, province, province_name, prefix = rng.choice(US_CITIES)
        postal, country = f"{prefix}{rng.randrange(100):02d}", "US"
    phone = f"+1 {rng.randrange(201, 989)}-555-{rng.randrange(10000):04d}"

    lines: list[tuple[Sku | None, int, int]] = []  # (sku or None for a gift card, qty, cents)
    digital_only = PER_MILLE_FOREIGN <= roll < PER_MILLE_FOREIGN + PER_MILLE_DIGITAL_ONLY
    if digital_only:
        lines.append((None, 1, 1200))
    else:
        vendor_skus = skus  # most orders mix vendors rarely: pick one vendor's range
        start = rng.randrange(len(vendor_skus) // (8 * SKUS_PER_PRODUCT)) * 8 * SKUS_PER_PRODUCT
        pool = vendor_skus[start:start + 8 * SKUS_PER_PRODUCT] if rng.random() < 0.9 else vendor_skus
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            s = rng.choice(pool)
            qty = rng.choice((1, 1, 1, 1, 2, 2, 3))
            lines.append((s, qty, s.price))
        expensive = 30 <= roll < 30 + PER_MILLE_EXPENSIVE
        if expensive:
            s = lines[0][0]
            lines[0] = (s, 4, 29900)
        if rng.randrange(1000) < PER_MILLE_GIFT_CARD_LINE:
            lines.append((None, 1, 5000))
    cancelled = 100 <= roll < 100 + PER_MILLE_CANCELLED
    unknown_sku = 200 <= roll < 200 + PER_MILLE_UNKNOWN_SKU
    untracked = 300 <= roll < 300 + PER_MILLE_UNTRACKED
    note = 400 <= roll < 400 + PER_MILLE_NOTE

    subtotal = sum(q * c for _s, q, c in lines)
    shipping = 0 if digital_only else rng.choice((795, 1295, 0))
    taxes = subtotal * 625 // 10000
    fulfilled = not (cancelled or untracked or digital_only)
    for i, (s, qty, cents) in enumerate(lines):
        row = [""] * len(SHOPIFY_HEADER)
        if s is None:
            title, sku, vendor, ships = "Gift Card - $50.00" if cents == 5000 else \
                "Brewing Guide (PDF download)", "NW-GIFT-50" if cents == 5000 else "NW-EBOOK", \
                "Northwind Goods", "false"
        else:
            title, sku, vendor, ships = s.title, s.sku, s.vendor, "true"
            if unknown_sku and i == 0:
                sku = f"{s.sku}-OLD"  # a SKU the catalog no longer has
        values = {
            "Name": name, "Lineitem quantity": str(qty), "Lineitem name": title,
            "Lineitem price": f"{cents / 100:.2f}", "Lineitem sku": sku,
            "Lineitem requires shipping": ships, "Lineitem taxable": "true",
            "Lineitem fulfillment status": "fulfilled" if fulfilled else "pending",
            "Vendor": vendor, "Lineitem discount": "0.00",
        }
        if i == 0:
            values.update(_order_columns(rng, number, name, stamp, person, first, line1, line2,
                                         city, province, province_name, postal, country, phone,
                                         subtotal, shipping, taxes, fulfilled, cancelled, note,
                                         created))
        for column, value in values.items():
            row[_COL[column]] = value
        rows.writerow(row)
    if fulfilled:
        carrier, pattern = TRACKING_CARRIERS[number % len(TRACKING_CARRIERS)]
        shown = name if number % 4 else name.lstrip("#")  # label systems often drop the '#'
        labels.writerow((shown, (created + timedelta(days=1)).strftime("%Y-%m-%d"), carrier,
                         "Tracked", pattern.format(number * 37)))


def _order_columns(rng: random.Random, number: int, name: str, stamp: str, person: str,
                   first: str, line1: str, line2: str, city: str, province: str,
                   province_name: str, postal: str, country: str, phone: str, subtotal: int,
                   shipping: int, taxes: int, fulfilled: bool, cancelled: bool, note: bool,
                   created: datetime) -> dict[str, str]:
    total = subtotal + shipping + taxes
    payment = f"c{31415926 + number * 271}.1"
    email = f"{first.lower().encode('ascii', 'ignore').decode() or 'customer'}.{number}@example.com"
    cols = {
        "Email": email, "Financial Status": "refunded" if cancelled else "paid",
        "Paid at": stamp, "Fulfillment Status": "fulfilled" if fulfilled else "unfulfilled",
        "Fulfilled at": stamp if fulfilled else "", "Accepts Marketing": rng.choice(("yes", "no")),
        "Currency": "USD", "Subtotal": f"{subtotal / 100:.2f}", "Shipping": f"{shipping / 100:.2f}",
        "Taxes": f"{taxes / 100:.2f}", "Total": f"{total / 100:.2f}", "Discount Amount": "0.00",
        "Shipping Method": rng.choice(SHIPPING_METHODS), "Created at": stamp,
        "Payment Method": "Shopify Payments", "Payment Reference": payment,
        "Refunded Amount": f"{total / 100:.2f}" if cancelled else "0.00",
        "Outstanding Balance": "0.00", "Id": str(6012345678901 + number * 1379),
        "Risk Level": rng.choice(("Low", "Low", "Low", "Medium")), "Source": "web",
        "Tax 1 Name": f"{province or country} State Tax 6.25%", "Tax 1 Value": f"{taxes / 100:.2f}",
        "Payment ID": payment, "Payment References": payment,
        "Cancelled at": (created + timedelta(hours=20)).strftime("%Y-%m-%d %H:%M:%S -0500")
        if cancelled else "",
        "Notes": "Gift for my sister, \"Tea Time\" card please,\nleave at the side door" if note else "",
    }
    for kind in ("Billing", "Shipping"):
        cols.update({
            f"{kind} Name": person, f"{kind} Street": f"{line1} {line2}".strip(),
            f"{kind} Address1": line1, f"{kind} Address2": line2, f"{kind} City": city,
            f"{kind} Zip": f"'{postal}", f"{kind} Province": province,
            f"{kind} Country": country, f"{kind} Phone": phone,
            f"{kind} Province Name": province_name,
        })
    return cols


# --------------------------------------------------------------------------- X12 309

# (SCAC, shipper name, street, city, state, postal code, country as X12 sends it)
X12_SHIPPERS = (
    ("MXLT", "Textiles del Norte SA de CV", "Av. Constitución 2050 Pte", "Monterrey", "NL",
     "64000", "MX"),
    ("TJXP", "Yiwu Haoyun Trading Co Ltd", "No 58 Chouzhou North Rd", "Yiwu", "ZJ", "322000",
     "CHN"),
    ("ONFW", "Ångström Kitchenware Ltd", "220 Adelaide St W", "Toronto", "ON", "M5H 1W7", "CAN"),
    ("BCXP", "Pacific Rim Fulfilment Inc", "8120 River Rd", "Richmond", "BC", "V6X 1X8", "CA"),
)
X12_GOODS = (
    ("SILICONE PHONE CASE, SHOCKPROOF", "3926.90.9990", 7), ("STAINLESS WATER BOTTLE, 750 ML",
     "9617.00.1000", 17), ("PLUSH TOY, STUFFED DINOSAUR, 30 CM", "9503.00.0073", 14),
    ("POLYESTER RAIN JACKET, WOMENS, HOODED", "6202.40.2020", 38), ("BAMBOO CUTTING BOARD",
     "4419.90.9100", 23), ("WOMENS COTTON BLOUSE, EMBROIDERED", "6206.30.3011", 29),
    ("LEATHER BELT, HAND TOOLED, BROWN", "4203.30.0000", 36), ("CERAMIC MUG, HAND PAINTED",
     "6912.00.4810", 16), ("ENAMELLED CAST IRON DUTCH OVEN", "7323.91.5020", 96),
    ("BEESWAX FOOD WRAPS, SET OF 3", "3406.00.0000", 12),
)
_ISO2 = {"CHN": "CN", "CAN": "CA"}
BILLS_PER_SET = 200
"""Bills per 309 transaction set (one trip's manifest)."""


def write_x12(path: Path, bills: int, seed: int = DEFAULT_SEED) -> Path:
    """One interchange with one functional group of 309 sets, `bills` bills in all."""
    rng = random.Random(f"x12:{seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = fh.write
        w("ISA*00*          *00*          *ZZ*BENCHEDI       *ZZ*CBPACE         *250314*0842*U*"
          "00401*000001001*0*P*>~\n")
        w("GS*SO*BENCHEDI*CBPACE*20250314*0842*1001*X*004010~\n")
        sets = 0
        done = 0
        while done < bills:
            sets += 1
            count = min(BILLS_PER_SET, bills - done)
            _write_309(w, rng, sets, done, count)
            done += count
        w(f"GE*{sets}*1001~\n")
        w("IEA*1*000001001~\n")
    return path


def _write_309(write: Any, rng: random.Random, set_number: int, first_bill: int,
               count: int) -> None:
    scac, shipper, street, city, state, postal, country = X12_SHIPPERS[set_number % len(X12_SHIPPERS)]
    segments: list[str] = [
        f"ST*309*{set_number:04d}",
        (f"M10*{scac}*J*{_ISO2.get(country, country)}*3AKJHHDR5KSKE{set_number % 10000:04d}"
         f"*FREIGHTLINER*{scac}{set_number:06d}**{count}*O"),
        f"P4*2304*20250314*{count}",
    ]
    for i in range(count):
        n = first_bill + i
        segments.append(f"LX*{i + 1}")
        items = [rng.choice(X12_GOODS) for _ in range(rng.choice((1, 1, 2, 3)))]
        pieces = [rng.choice((1, 1, 2, 3)) for _ in items]
        weight = sum(0.3 * p for p in pieces)
        segments.append(f"M11*{scac}{n:08d}*20195*{sum(pieces)}*PCS*{weight:.1f}*K*****"
                        f"{scac}{set_number:06d}M*{scac}")
        if rng.random() < 0.7:
            segments.append(f"N9*2I*1Z{n:016d}")
        segments += [f"N1*SH*{shipper}", f"N3*{street}", f"N4*{city}*{state}*{postal}*{country}"]
        cn_city, cn_state, _name, prefix = rng.choice(US_CITIES)
        segments.append(f"N1*CN*{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}")
        segments.append(f"N3*{rng.randrange(1, 9999)} {rng.choice(STREETS)}")
        segments.append(f"N4*{cn_city}*{cn_state}*{prefix}{rng.randrange(100):02d}*US")
        if rng.random() < 0.4:
            segments.append(f"PER*IC**TE*{rng.randrange(2010000000, 9899999999)}")
        for (text, hts, unit), q in zip(items, pieces):
            segments.append(f"N10*{q}*{text}**A*{hts}*{unit * q}*K*{0.3 * q:.1f}")
    segments.append(f"SE*{len(segments) + 1}*{set_number:04d}")
    write("".join(s + "~\n" for s in segments))


# --------------------------------------------------------------------------- Cargo-IMP FHL

# (origin airport, AWB prefix, shipper name, street, city, state, country, postal code)
FHL_SHIPPERS = (
    ("HKG", "160", "Shenzhen Lüxing Electronics Co Ltd", "Building 4 Bantian Industrial Park",
     "SHENZHEN", "GD", "CN", "518129"),
    ("HKG", "160", "Kowloon Gadget House Ltd", "Unit 12 8F Kwun Tong Plaza", "HONG KONG", "",
     "HK", ""),
    ("LHR", "125", "Bethan Prydderch Leather Goods", "Unit 3 Canal Works", "BIRMINGHAM", "",
     "GB", "B1 2JP"),
    ("TPE", "297", "Taipei Caicai Accessories Co", "No 5 Lane 101 Section 2 Zhongshan Road",
     "TAIPEI", "", "TW", "104"),
)
FHL_GOODS = (
    ("EARBUDS", "WIRELESS BLUETOOTH EARBUDS WITH CHARGING CASE AND USB-C CABLE", "851830", 46),
    ("APPAREL", "MENS KNITTED COTTON T-SHIRTS SIZE M AND L", "610910", 60),
    ("CERAMICS", "HAND PAINTED PORCELAIN TEAPOT WITH 4 CUPS", "691110", 85),
    ("PHONE CASES", "SILICONE PHONE CASES ASSORTED COLOURS 12 PCS", "392690", 60),
    ("LEATHER BAGS", "WOMENS LEATHER HANDBAG WITH SHOULDER STRAP", "420221", 140),
)
HOUSES_PER_MASTER = 50
US_AIRPORTS = ("LAX", "JFK", "ORD", "SFO", "MIA", "SEA")


def write_fhl(path: Path, houses: int, seed: int = DEFAULT_SEED) -> Path:
    """FHL/4 messages, one per master air waybill of up to HOUSES_PER_MASTER houses,
    each in a Type B envelope; `houses` house waybills in all."""
    rng = random.Random(f"fhl:{seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        done = 0
        master = 0
        while done < houses:
            count = min(HOUSES_PER_MASTER, houses - done)
            fh.write("".join(line + "\n" for line in _fhl_message(rng, master, done, count)))
            done += count
            master += 1
    return path


def _fhl_message(rng: random.Random, master: int, first: int, count: int) -> Iterator[str]:
    origin, prefix, shipper, street, city, state, country, postal = \
        FHL_SHIPPERS[master % len(FHL_SHIPPERS)]
    dest = US_AIRPORTS[master % len(US_AIRPORTS)]
    serial7 = 5000000 + master
    awb = f"{prefix}-{serial7}{serial7 % 7}"
    yield f"QK {dest}FFAA"
    yield f".{origin}FFCX 281530"
    yield "FHL/4"
    yield f"MBI/{awb}{origin}{dest}/T{count * 2}K{count * 1.5:.1f}"
    for i in range(count):
        n = first + i
        nature, text, hts, unit = rng.choice(FHL_GOODS)
        pieces = rng.choice((1, 1, 2, 3))
        yield f"HBS/{origin[:2]}{n:08d}/{origin}{dest}/{pieces}/K{0.7 * pieces:.1f}/{pieces}/{nature}"
        yield f"TXT/{text}"
        yield f"HTS/{hts}"
        # The security declaration of each house: screened by the regulated agent.
        yield f"OCI/{country}/ISS/RA/00231-01"
        yield f"/{country}//SM/XRY"
        yield f"/{country}//SD/28OCT251410"
        yield f"/{country}//SS/SPX"
        yield f"SHP/{shipper}"
        yield f"/{street}"
        yield f"/{city}/{state}" if state else f"/{city}"
        yield f"/{country}/{postal}"
        c_city, c_state, _name, zprefix = rng.choice(US_CITIES)
        yield f"CNE/{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        yield f"/{rng.randrange(1, 9999)} {rng.choice(STREETS)}".upper()
        yield f"/{c_city.upper()}/{c_state}"
        yield f"/US/{zprefix}{rng.randrange(100):02d}/TE/1{rng.randrange(2010000000, 9899999999)}"
        yield f"CVD/USD//PP/NVD/{unit * pieces:.2f}/XXX"
    yield "NNNN"


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=("shop", "x12-309", "cargo-imp-fhl"))
    parser.add_argument("count", type=int, help="orders, bills or house waybills")
    parser.add_argument("out", type=Path, help="a folder (shop) or a file")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.kind == "shop":
        files = write_shop(args.out, args.count, args.seed)
        print(files.orders)
    elif args.kind == "x12-309":
        print(write_x12(args.out, args.count, args.seed))
    else:
        print(write_fhl(args.out, args.count, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
