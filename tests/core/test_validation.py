"""Every validation rule of the pilot profile and the value rules, one test each."""

from decimal import Decimal

import pytest

from builders import carrier_fields, consignment, marketplace_fields
from s321 import regimes, rules, validation
from s321.record import FilerType

RATES = {"USD": Decimal(1), "EUR": Decimal("1.08")}
PILOT = regimes.load("pilot-2019")


def findings_of(fields, profile=PILOT, files_as=None):
    c = rules.derive(consignment(fields), RATES)
    return validation.validate(c, profile, RATES, files_as)


def errors(fields, **kw):
    return {(f.code, f.field) for f in findings_of(fields, **kw) if f.severity == "error"}


def test_a_complete_marketplace_record_has_no_findings():
    assert findings_of(marketplace_fields()) == []


def test_a_complete_carrier_record_has_no_findings():
    assert findings_of(carrier_fields()) == []


def test_at_least_one_bill_identifier_is_required_and_reported_on_tracking_number():
    fields = marketplace_fields(tracking_number=None)
    assert ("missing-one-of", "tracking_number") in errors(fields)
    assert errors(marketplace_fields(tracking_number=None, master_bill_number="176-12345675")) == set()


@pytest.mark.parametrize("path", ["seller", "marketplace_seller_id", "identified_marketplace_merchant",
                                  "ultimate_deliver_to"])
def test_marketplace_elements_are_required(path):
    assert ("missing-required", path) in errors(marketplace_fields(**{path: None}))


def test_marketplace_item_elements_are_required_per_item():
    fields = marketplace_fields()
    fields["items"][0]["product_url"] = None
    fields["items"][0]["listed_price"] = None
    found = errors(fields)
    assert ("missing-required", "items.0.product_url") in found
    assert ("missing-required", "items.0.listed_price") in found


def test_a_missing_nested_element_is_reported_on_its_own_path():
    fields = marketplace_fields()
    fields["seller"]["name"] = ""
    assert ("missing-required", "seller.name") in errors(fields)


def test_customer_is_conditional_for_marketplaces():
    found = findings_of(marketplace_fields(customer=None))
    assert [(f.code, f.field, f.severity) for f in found] == [("missing-conditional", "customer", "warning")]


def test_carrier_elements_are_required():
    found = errors(carrier_fields(consignment_originator=None, known_carrier_customer=None))
    assert {("missing-required", "consignment_originator"), ("missing-required", "known_carrier_customer")} <= found


def test_security_scan_is_required_for_air_carriers_only():
    assert ("missing-required", "security_scan") in errors(carrier_fields(mode_of_transport="air"))
    assert errors(carrier_fields(mode_of_transport="truck")) == set()
    scanned = carrier_fields(mode_of_transport="air", security_scan={"performed": True, "method": "x-ray"})
    assert errors(scanned) == set()


def test_a_freight_forwarder_files_the_carrier_set_by_default_or_as_configured():
    forwarder = marketplace_fields(filer_type="freight_forwarder")
    assert ("missing-required", "consignment_originator") in errors(forwarder)
    assert errors(forwarder, files_as=FilerType.ONLINE_MARKETPLACE) == set()


def test_items_are_required():
    assert ("missing-required", "items") in errors(marketplace_fields(items=[]))


@pytest.mark.parametrize("country", ["XX", "USA", "zz"])
def test_country_codes_must_be_iso_3166(country):
    fields = marketplace_fields()
    fields["seller"]["address"]["country"] = country
    fields["items"][0]["country_of_origin"] = country
    found = errors(fields)
    assert ("invalid-country", "seller.address.country") in found
    assert ("invalid-country", "items.0.country_of_origin") in found


def test_lower_case_codes_are_normalised_not_rejected():
    fields = marketplace_fields()
    fields["items"][0]["country_of_origin"] = "cn"
    fields["items"][0]["currency"] = "usd"
    assert errors(fields) == set()


def test_currency_must_be_iso_4217():
    fields = marketplace_fields()
    fields["items"][0]["currency"] = "XYZ"
    assert ("invalid-currency", "items.0.currency") in errors(fields)


def test_a_currency_without_a_configured_rate_is_an_error():
    fields = marketplace_fields()
    fields["items"][0]["currency"] = "JPY"
    assert ("unknown-currency-rate", "items.0.currency") in errors(fields)


def test_deliver_to_must_be_in_the_us():
    fields = marketplace_fields()
    fields["ultimate_deliver_to"]["address"]["country"] = "CA"
    assert ("deliver-to-not-us", "ultimate_deliver_to.address.country") in errors(fields)
    fields["ultimate_deliver_to"]["address"]["country"] = "PR"
    assert errors(fields) == set()


@pytest.mark.parametrize("quantity", [0, -1])
def test_quantity_must_be_positive(quantity):
    fields = marketplace_fields()
    fields["items"][0]["quantity"] = quantity
    assert ("invalid-quantity", "items.0.quantity") in errors(fields)


def test_prices_must_not_be_negative_and_zero_is_allowed():
    fields = marketplace_fields()
    fields["items"][0]["listed_price"] = "-0.01"
    assert ("negative-price", "items.0.listed_price") in errors(fields)
    fields["items"][0]["listed_price"] = "0"
    assert errors(fields) == set()


@pytest.mark.parametrize("hts,ok", [("961700", True), ("9617000000", True), ("9617.00.0000", True),
                                    ("96170", False), ("96170000", False), ("96170000001", False),
                                    ("abcdef", False)])
def test_hts_codes_have_6_or_10_digits(hts, ok):
    fields = marketplace_fields()
    fields["items"][0]["hts_code"] = hts
    assert (("invalid-hts", "items.0.hts_code") not in errors(fields)) is ok


@pytest.mark.parametrize("url,ok", [("https://shop.example.com/p/1", True), ("http://example.org", True),
                                    ("ftp://example.org/x", False), ("shop.example.com/p/1", False),
                                    ("https://", False), ("https://exa mple.com", False)])
def test_product_urls_must_be_valid(url, ok):
    fields = marketplace_fields()
    fields["items"][0]["product_url"] = url
    assert (("invalid-url", "items.0.product_url") not in errors(fields)) is ok


def test_total_value_is_price_times_quantity_converted_with_configured_rates():
    fields = marketplace_fields()
    fields["items"] = [dict(fields["items"][0], listed_price="100.00", currency="EUR", quantity=3),
                       dict(fields["items"][0], listed_price="10.50", quantity=2)]
    c = rules.derive(consignment(fields), RATES)
    assert c.total_value_usd == Decimal("345.00")  # 3 x 100 x 1.08 + 2 x 10.50


def test_over_800_usd_is_not_section_321():
    fields = marketplace_fields()
    fields["items"][0].update(listed_price="400.01", quantity=2)
    assert ("not-section-321", "total_value_usd") in errors(fields)
    fields["items"][0].update(listed_price="400.00")
    assert errors(fields) == set()


def test_the_value_limit_uses_converted_amounts():
    fields = marketplace_fields()
    fields["items"][0].update(listed_price="750", currency="EUR", quantity=1)  # 810 USD
    assert ("not-section-321", "total_value_usd") in errors(fields)


def test_nprm_2025_basic_is_a_profile_file_with_its_own_elements():
    nprm = regimes.load("nprm-2025-basic")
    found = {f.field for f in findings_of(marketplace_fields(), profile=nprm)}
    assert {"house_bill_number", "consignment_originator", "exemption_claimant"} <= found
    complete = marketplace_fields(house_bill_number="HB1", consignment_originator=marketplace_fields()["seller"],
                                  exemption_claimant={"name": "Ada Quartermaine"})
    assert findings_of(complete, profile=nprm) == []


def test_a_new_regime_is_a_file_not_code(tmp_path):
    (tmp_path / "strict-2027.toml").write_text(
        'name = "strict-2027"\n[all]\nrequired = ["items.*.hts_code", "customer.email"]\n', encoding="utf-8")
    profile = regimes.load("strict-2027", regimes.available([tmp_path]))
    fields = marketplace_fields()
    fields["items"][0]["hts_code"] = None
    assert {(f.code, f.field) for f in findings_of(fields, profile=profile)} == {
        ("missing-required", "items.0.hts_code")}


def test_an_unknown_profile_suggests_the_closest():
    with pytest.raises(regimes.ProfileError, match="did you mean 'pilot-2019'"):
        regimes.load("pilot-2109")


def test_every_finding_is_well_formed():
    fields = marketplace_fields(tracking_number=None, seller=None)
    fields["items"][0].update(quantity=0, hts_code="1", currency="QQQ")
    for f in findings_of(fields):
        assert f.code and f.message and f.severity in ("error", "warning")
        assert f.field and all(part for part in f.field.split("."))
