"""records-jsonl as a sender writes it: line endings, BOM, and the text encoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from s321.contracts import PipelineContext, PipelineDefaults
from s321.plugins.records_jsonl import RecordsJsonlOptions, RecordsJsonlSource
from s321.record import FilerType, ModeOfTransport

RECORD = {"ref": "order-1", "ultimate_deliver_to": {"name": "José Müller"},
          "items": [{"description": "Mug", "quantity": 1}]}


def read(path: Path, **options: object) -> list:
    context = PipelineContext("p", "ORIG01", FilerType.ONLINE_MARKETPLACE, ModeOfTransport.AIR,
                              "pilot-2019", "records-jsonl", PipelineDefaults())
    return list(RecordsJsonlSource(RecordsJsonlOptions(path=path, **options), context).read())


def lines(*records: dict, newline: str = "\n") -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + newline for r in records)


def test_a_windows_1252_file_is_refused_whole_naming_its_line(tmp_path: Path) -> None:
    """It was read with replacement characters: `José Müller` was filed as `Jos� M�ller`."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(lines({"ref": "ascii", "items": []}, RECORD).encode("cp1252"))
    [unit] = read(path)
    assert unit.payload is None
    [finding] = unit.findings
    assert finding.code == "invalid-encoding" and finding.location == f"{path}:2"
    assert "UTF-8" in finding.message and 'encoding = "cp1252"' in finding.message


def test_the_encoding_option_reads_a_windows_1252_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(lines(RECORD).encode("cp1252"))
    [unit] = read(path, encoding="cp1252")
    assert unit.payload["ultimate_deliver_to"]["name"] == "José Müller"
    with pytest.raises(ValidationError):
        RecordsJsonlOptions(path=path, encoding="utf-16")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_bom_and_every_line_ending_read_the_same(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (lines(RECORD, dict(RECORD, ref="order-2"),
                                              newline=newline) + newline).encode())
    units = read(path)
    assert [u.key for u in units] == ["order-1", "order-2"]
    assert units[0].payload["ultimate_deliver_to"]["name"] == "José Müller"


def test_a_number_of_thousands_of_digits_is_named_without_python_advice(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"ref": "r1", "items": [{"quantity": ' + "9" * 5000 + "}]}\n",
                    encoding="utf-8")
    [unit] = read(path)
    [finding] = unit.findings
    assert finding.code == "malformed-json" and unit.location == f"{path}:1"
    assert "sys." not in finding.message and "5000 digits" in finding.message, finding.message
