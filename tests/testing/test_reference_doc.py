"""docs/reference.md, the reference of the public contract, is generated from the code
and kept so by force: a public name of the documented modules missing from the page,
or a page that differs from what the code says now, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from s321.testing import refdoc

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference.md"


def test_every_public_name_is_on_the_page() -> None:
    assert refdoc.missing() == [], (
        "public names not documented in docs/reference.md: add them to SECTIONS in "
        "s321/testing/refdoc.py (stable or internal), or give them a leading underscore")


def test_the_page_is_what_the_code_says() -> None:
    assert PAGE.read_text(encoding="utf-8") == refdoc.render(), (
        "docs/reference.md is out of date: run `python -m s321.testing.refdoc`")


def test_the_names_the_issue_asks_for_are_stable_with_their_import_paths() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for module, name in [("s321.contracts", n) for n in ("Batch", "Receipt", "Ack", "RecordAck", "AckStatus",
                                                         "AckError", "Capabilities", "RawUnit", "Mapped")] + [
            ("s321.findings", "Finding"), ("s321.errors", "RetriableError"), ("s321.errors", "FatalError"),
            ("s321.secrets", "Secret"), ("s321.paths", "ConfigPath"), ("s321.plugins.enrichment", "load")]:
        assert f"`from {module} import {name}` · " in text and re.search(
            rf"`from {re.escape(module)} import {name}` · [^\n]* · \*\*stable\*\*", text), name
    assert "never calls it" in text  # who calls refresh()


def test_a_new_public_name_would_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    import s321.errors
    monkeypatch.setattr(s321.errors, "BrandNewError", type("BrandNewError", (Exception,), {}), raising=False)
    monkeypatch.setattr(refdoc, "public_names", lambda module: ["BrandNewError"] if module == "s321.errors" else [])
    assert refdoc.missing() == ["s321.errors.BrandNewError"]


def test_the_check_command_says_how_to_fix_a_stale_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "reference.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert refdoc.main(["--check", "--output", str(stale)]) == 1
    assert "python -m s321.testing.refdoc" in capsys.readouterr().err
    assert refdoc.main(["--output", str(stale)]) == 0
    assert refdoc.main(["--check", "--output", str(stale)]) == 0


def test_the_record_page_names_every_field_of_the_record() -> None:
    from s321.record import Address, Consignment, Item, Party, SecurityScan
    text = (ROOT / "docs" / "record.md").read_text(encoding="utf-8")
    absent = [f"{model.__name__}.{name}" for model in (Consignment, Item, Party, Address, SecurityScan)
              for name in model.model_fields if f"`{name}`" not in text]
    assert not absent, f"docs/record.md does not describe {', '.join(absent)}"


def test_the_docs_stand_alone() -> None:
    # The design document is not part of the repository: the docs cite their own pages,
    # and name modules by import path (s321.hookspecs), not by file (core/hookspecs.py).
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        assert "DESIGN" not in text, f"{page.name} cites DESIGN.md: cite docs/record.md or another page"
    for name in ("plugins.md", "hooks.md", "reference.md", "record.md"):
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert not re.search(r"(?<![\w/])(core|s321)/[\w/]+\.py", text), f"{name} names a module by its file: use s321.x"
