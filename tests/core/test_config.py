"""Configuration: unknown keys, wrong values, did-you-mean, secrets, paths."""

import subprocess
import sys

import pytest

from builders import jsonl_pipeline_config, write_config
from s321 import app
from s321.errors import ConfigError


def errors_of(path):
    with pytest.raises(ConfigError) as info:
        app.load(path)
    return info.value.lines


def test_a_valid_config_loads_with_components_resolved(tmp_path):
    path = jsonl_pipeline_config(tmp_path, tmp_path / "in", tmp_path / "out")
    _registry, cfg = app.load(path)
    shop = cfg.pipelines["shop"]
    assert (shop.source.name, shop.transport.name, shop.serializer.name) == ("records-jsonl", "file", "s321/1")
    assert shop.transport_options.directory == tmp_path / "out"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "inbox", "outbox")
    _registry, cfg = app.load(path)
    assert cfg.pipelines["shop"].source_options.path == tmp_path / "inbox"


def test_an_unknown_plugin_option_names_the_path_and_the_valid_keys(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace('directory = "out"', 'directory = "out"\nport = 22'))
    lines = errors_of(path)
    assert lines == [f"{path}: pipelines.shop.transport.port: unknown key; valid keys: directory, max_batch"]


def test_an_archive_dir_that_names_a_file_is_refused_in_plain_words(tmp_path):
    """A table named as the archive by mistake: refused by `check`, before a run could
    fail every archive (and touch the table's mode). The message is ours, without
    pydantic's "Value error," before it."""
    (tmp_path / "catalog.csv").write_text("sku,hts\n")
    path = jsonl_pipeline_config(tmp_path, "in", "out", extra='archive_dir = "catalog.csv"')
    assert errors_of(path) == [f"{path}: pipelines.shop.archive_dir: {tmp_path / 'catalog.csv'} is a file, "
                               "not a folder: name the folder read inputs are moved to"]


def test_a_wrong_value_type_names_the_path(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace('directory = "out"', 'directory = "out"\nmax_batch = "many"'))
    [line] = errors_of(path)
    assert line.startswith(f"{path}: pipelines.shop.transport.max_batch: ")
    assert "integer" in line


def test_a_wrong_filer_type_lists_the_valid_ones(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out", filer_type="shipper")
    [line] = errors_of(path)
    assert f"{path}: pipelines.shop.filer_type:" in line
    assert "'carrier'" in line and "'online_marketplace'" in line


def test_a_mistyped_plugin_name_gets_did_you_mean(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace('plugin = "file"', 'plugin = "flie"'))
    [line] = errors_of(path)
    assert line.startswith(f"{path}: pipelines.shop.transport.plugin: unknown transport 'flie'")
    assert "did you mean 'file'?" in line


def test_unknown_top_level_keys_and_missing_tables_are_all_reported(tmp_path):
    path = write_config(tmp_path, """
        colour = "blue"
        [pipelines.a]
        originator_code = "X"
        filer_type = "carrier"
        mode_of_transport = "truck"
    """)
    lines = errors_of(path)
    assert f"{path}: colour: unknown key; valid keys: console, currency_rates, daemon, files, ledger, pipelines, plugins, preview, profile_paths" in lines
    assert f"{path}: pipelines.a.source: required, but missing" in lines
    assert f"{path}: pipelines.a.transport: required, but missing" in lines


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write_config(tmp_path, "[pipelines.a\nx = 1\n")
    [line] = errors_of(path)
    assert line.startswith(f"{path}: not valid TOML:") and "line 1" in line


def test_a_currency_rate_must_be_an_iso_code(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace('CAD = "0.73"', 'CAD = "0.73"\nEURO = "1.1"'))
    [line] = errors_of(path)
    assert "currency_rates" in line and "'EURO' is not an ISO 4217 currency code" in line


def test_an_unknown_profile_is_reported_with_a_suggestion(tmp_path):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace('profile = "pilot-2019"', 'profile = "pilot2019"'))
    [line] = errors_of(path)
    assert line.startswith(f"{path}: pipelines.shop.profile: unknown profile 'pilot2019'; did you mean 'pilot-2019'?")


def check(path):
    return subprocess.run([sys.executable, "-m", "s321.cli", "check", "-c", str(path)],
                          capture_output=True, text=True)


def test_check_cli_exits_2_and_reports_every_error_in_one_pass(tmp_path):
    # A wrong value, a mistyped plugin and an unknown profile: one run names all three
    # (it used to name the structure first and the plugins only once that was fixed).
    path = jsonl_pipeline_config(tmp_path, "in", "out", filer_type="shipper")
    path.write_text(path.read_text().replace('plugin = "file"', 'plugin = "flie"')
                    .replace('profile = "pilot-2019"', 'profile = "pilot2019"'))
    proc = check(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert "pipelines.shop.filer_type" in lines[0]
    assert f"{path}: pipelines.shop.transport.plugin: unknown transport 'flie'" in lines[1]
    assert "did you mean 'file'?" in lines[1]
    assert lines[2].startswith(f"{path}: pipelines.shop.profile: unknown profile 'pilot2019'")
    (tmp_path / "in").mkdir()
    ok = jsonl_pipeline_config(tmp_path, "in", "out")
    proc = check(ok)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and "ok (1 pipelines: shop)" in proc.stdout


def test_check_reports_plugin_options_of_several_pipelines_together_with_structure_errors(tmp_path):
    path = write_config(tmp_path, """
        colour = "blue"
        [pipelines.a]
        originator_code = "X"
        filer_type = "carrier"
        mode_of_transport = "truck"
        [pipelines.a.source]
        plugin = "records-jsonl"
        path = "in"
        speed = 3
        [pipelines.a.transport]
        plugin = "file"
        directory = "out"
        [pipelines.b]
        originator_code = "X"
        filer_type = "carrier"
        mode_of_transport = "truck"
        validators = ["nope"]
        [pipelines.b.source]
        plugin = "shopify-cvs"
        [pipelines.b.transport]
        plugin = "file"
    """)
    out = check(path).stderr
    assert f"{path}: colour: unknown key" in out
    assert f"{path}: pipelines.a.source.speed: unknown key" in out
    assert f"{path}: pipelines.b.source.plugin: unknown source 'shopify-cvs'" in out
    assert f"{path}: pipelines.b.transport.directory: required, but missing" in out
    assert f"{path}: pipelines.b.validators.0: unknown validator 'nope'" in out


def shop_config(tmp_path, catalog=None, inbox="in"):
    lines = ["[pipelines.shop]", 'originator_code = "MKT001"', 'filer_type = "online_marketplace"',
             'mode_of_transport = "air"', "[pipelines.shop.source]", 'plugin = "shopify-csv"',
             f'path = "{inbox}"']
    if catalog is not None:
        lines.append(f'catalog = "{catalog}"')
    lines += ["[pipelines.shop.transport]", 'plugin = "file"', 'directory = "out"']
    path = tmp_path / "s321.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_opens_every_enrichment_table_and_names_what_is_wrong(tmp_path):
    (tmp_path / "in").mkdir()
    # A catalog saved by Excel on Windows: Windows-1252, not UTF-8.
    (tmp_path / "catalog.csv").write_bytes("sku,hts_code,description\nA-1,610910,Caf\u00e9 t-shirt\n"
                                           .encode("cp1252"))
    proc = check(shop_config(tmp_path, "catalog.csv"))
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "pipelines.shop.source" in line and f"{tmp_path / 'catalog.csv'}:2" in line
    assert "not UTF-8" in line and "Traceback" not in proc.stderr
    # A catalog without its key column.
    (tmp_path / "catalog.csv").write_text("article,hts_code\nA-1,610910\n")
    proc = check(shop_config(tmp_path, "catalog.csv"))
    assert proc.returncode == 2
    assert f"{tmp_path / 'catalog.csv'}:1: the catalog table has no 'sku' column" in proc.stderr


def test_check_warns_about_an_input_that_does_not_exist(tmp_path):
    proc = check(shop_config(tmp_path, inbox="inbxo"))
    assert proc.returncode == 0, proc.stderr
    assert f"pipelines.shop.source.path: {tmp_path / 'inbxo'} does not exist" in proc.stderr
    assert proc.stderr.startswith("warning: ") and "1 warnings" in proc.stdout


def test_preview_with_a_bad_enrichment_table_prints_one_line_not_a_traceback(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "catalog.csv").write_text("article,hts_code\nA-1,610910\n")
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "preview", "-c",
                           str(shop_config(tmp_path, "catalog.csv")), "-p", "shop"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert "the catalog table has no 'sku' column" in line


def test_schema_config_holds_each_plugins_options():
    from s321.registry import load
    schema = app.schema("config", load())
    source = schema["$defs"]["PipelineConfig"]["properties"]["source"]
    names = {ref["$ref"].rsplit(":", 1)[-1] for ref in source["anyOf"]}
    assert {"shopify-csv", "x12-309", "records-jsonl"} <= names
    shop = schema["$defs"]["source:shopify-csv"]
    assert shop["properties"]["plugin"] == {"const": "shopify-csv", "description": "the source plugin"}
    assert {"path", "catalog", "tracking"} <= set(shop["properties"])
    assert shop["additionalProperties"] is False
    assert "file" in {r["$ref"].rsplit(":", 1)[-1]
                      for r in schema["$defs"]["PipelineConfig"]["properties"]["transport"]["anyOf"]}


def test_the_profile_written_as_docs_configuration_md_shows_loads_and_takes_effect(tmp_path):
    import json
    import re
    from pathlib import Path

    from builders import marketplace_fields, write_jsonl
    docs = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    section = docs[docs.index("## Writing a regime profile"):]
    profile = re.findall(r"```toml\n(.*?)```", section, re.S)[1]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "acme-strict.toml").write_text(profile)
    item = dict(marketplace_fields()["items"][0])
    item.pop("hts_code", None)
    inbox = tmp_path / "in"
    inbox.mkdir()
    write_jsonl(inbox / "orders.jsonl", [{"ref": "A-1", **marketplace_fields(items=[item])}])
    path = jsonl_pipeline_config(tmp_path, inbox, "out")
    path.write_text('profile_paths = ["profiles"]\n' + path.read_text().replace(
        'profile = "pilot-2019"', 'profile = "acme-strict"'))
    assert check(path).returncode == 0
    proc = subprocess.run([sys.executable, "-m", "s321.cli", "preview", "-c", str(path), "-p", "shop", "--json"],
                          capture_output=True, text=True)
    [row] = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["status"] == "invalid", row["findings"]
    assert "items.0.hts_code" in {f["field"] for f in row["findings"]}


# --------------------------------------------------------------------------- secrets

from pydantic import BaseModel, ConfigDict, ValidationError  # noqa: E402

from s321.secrets import Secret  # noqa: E402


class WithSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Secret


def test_a_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv("S321_TEST_PASSWORD", "hunter2-env")
    opts = WithSecret.model_validate({"password": {"env": "S321_TEST_PASSWORD"}})
    assert opts.password.get_secret_value() == "hunter2-env"
    assert "hunter2" not in repr(opts) and "hunter2" not in str(opts) and "hunter2" not in opts.model_dump_json()


def test_a_secret_from_a_file_relative_to_the_config(tmp_path):
    (tmp_path / "pw.txt").write_text("hunter2-file\n")
    opts = WithSecret.model_validate({"password": {"file": "pw.txt"}}, context={"base_dir": tmp_path})
    assert opts.password.get_secret_value() == "hunter2-file"


def test_a_literal_secret_is_refused_without_echoing_it():
    with pytest.raises(ValidationError) as info:
        WithSecret.model_validate({"password": "hunter2-literal"})
    from pathlib import Path

    from s321.config import format_errors
    [line] = format_errors(Path("s321.toml"), info.value, WithSecret)
    assert "never a literal" in line and "hunter2" not in line


@pytest.mark.parametrize("table, said", [({}, "not no key"), ({"vault": "kv/s321"}, "not vault"),
                                         ({"env": "A", "file": "b"}, "not env, file")])
def test_a_table_that_is_not_one_reference_names_its_keys_not_literal(table, said):
    """`{vault = ...}` or both keys is not "a literal value": it is a table with the
    wrong keys, and the message says which (never their values)."""
    from pathlib import Path

    from s321.config import format_errors
    with pytest.raises(ValidationError) as info:
        WithSecret.model_validate({"password": table})
    [text] = format_errors(Path("s321.toml"), info.value, WithSecret)  # what `s321 check` prints
    assert "a secret reference has one key, env or file" in text and said in text
    assert "kv/s321" not in text


def test_an_unset_secret_variable_is_named(monkeypatch):
    monkeypatch.delenv("S321_NOPE", raising=False)
    with pytest.raises(ValidationError, match="S321_NOPE"):
        WithSecret.model_validate({"password": {"env": "S321_NOPE"}})


def test_check_never_prints_a_secret_value(tmp_path, monkeypatch):
    """A config error next to a secret must not show the secret, whatever the error."""
    path = write_config(tmp_path, """
        [pipelines.a]
        originator_code = "X"
        filer_type = "carrier"
        mode_of_transport = "truck"
        [pipelines.a.source]
        plugin = "records-jsonl"
        path = "in"
        [pipelines.a.transport]
        plugin = "file"
        directory = "out"
        password = "hunter2-in-config"
    """)
    proc = check(path)
    assert proc.returncode == 2
    assert "hunter2" not in proc.stdout + proc.stderr


# -- [ledger]: path (SQLite, the default) or url (sqlite:/// or postgresql://) -----------

def _ledger_config(tmp_path, ledger_table: str):
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text() + "\n[ledger]\n" + ledger_table + "\n")
    return path


def test_the_ledger_is_a_sqlite_file_beside_the_config_by_default(tmp_path):
    _registry, cfg = app.load(jsonl_pipeline_config(tmp_path, "in", "out"))
    ledger = cfg.config.ledger
    assert (ledger.backend, ledger.path, ledger.url) == ("sqlite", tmp_path / "s321-ledger.sqlite", None)
    assert ledger.describe() == str(tmp_path / "s321-ledger.sqlite")


def test_a_postgresql_url_with_the_password_as_a_secret_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("S321_DB_PASSWORD", "hunter2-secret")
    path = _ledger_config(tmp_path, 'url = "postgresql://s321@db.example:5432/filings"\n'
                                    'password = {env = "S321_DB_PASSWORD"}\nlease_seconds = 5')
    _registry, cfg = app.load(path)
    ledger = cfg.config.ledger
    assert ledger.backend == "postgresql"
    assert ledger.password.get_secret_value() == "hunter2-secret"
    assert ledger.lease_seconds == 5
    assert "hunter2" not in repr(ledger) and "hunter2" not in ledger.describe()
    assert ledger.describe() == "postgresql://s321@db.example:5432/filings"


def test_describe_never_shows_a_password_written_in_the_url(tmp_path):
    path = _ledger_config(tmp_path, 'url = "postgresql://s321:hunter2@db.example:5432/filings"')
    _registry, cfg = app.load(path)
    assert cfg.config.ledger.describe() == "postgresql://s321:***@db.example:5432/filings"


def test_a_password_in_both_the_url_and_password_is_refused_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("S321_DB_PASSWORD", "hunter2-secret")
    path = _ledger_config(tmp_path, 'url = "postgresql://s321:other-secret@db.example/filings"\n'
                                    'password = {env = "S321_DB_PASSWORD"}')
    [line] = errors_of(path)
    assert line.startswith(f"{path}: ledger.password: ")
    assert "given twice" in line and "remove it from the url" in line
    assert "hunter2" not in line and "other-secret" not in line


def test_a_literal_password_is_refused_as_not_a_secret_reference(tmp_path):
    path = _ledger_config(tmp_path, 'url = "postgresql://s321@db.example/filings"\npassword = "hunter2"')
    [line] = errors_of(path)
    assert line.startswith(f"{path}: ledger.password: ") and "reference" in line and "hunter2" not in line


def test_a_password_without_a_postgresql_url_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("S321_DB_PASSWORD", "x")
    [line] = errors_of(_ledger_config(tmp_path, 'password = {env = "S321_DB_PASSWORD"}'))
    assert ": ledger.password: " in line and "password is for a PostgreSQL ledger" in line


@pytest.mark.parametrize("slashes", ["//", "///"])
def test_a_sqlite_url_sets_the_path(tmp_path, slashes):
    _registry, cfg = app.load(_ledger_config(tmp_path, f'url = "sqlite:{slashes}{tmp_path}/other.sqlite"'))
    assert (cfg.config.ledger.backend, cfg.config.ledger.path) == ("sqlite", tmp_path / "other.sqlite")


@pytest.mark.parametrize("table, words", [
    ('url = "mysql://u:pw-secret@h/db"', "must start with postgresql:// or sqlite:///"),
    ('url = "sqlite://relative.sqlite"', "sqlite:///ABSOLUTE/PATH"),
    ('url = "postgresql://s321@db.example"', "names its database"),
    ('url = "postgresql://s321@db.example/x"\npath = "l.sqlite"', "either path (a SQLite file) or url, not both"),
])
def test_a_wrong_ledger_url_says_what_would_be_valid(tmp_path, table, words):
    path = _ledger_config(tmp_path, table)
    [line] = errors_of(path)
    assert line.startswith(f"{path}: ledger") and words in line
    assert "pw-secret" not in line


def test_an_empty_pipelines_table_and_a_blank_name_are_said_in_words(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("[pipelines]\n")
    assert errors_of(empty) == [f"{empty}: pipelines: no pipeline: add a [pipelines.NAME] table "
                                "(config/shop.toml is an example)"]
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text().replace("pipelines.shop", 'pipelines." shop"'))
    assert f"{path}: pipelines: pipeline name ' shop': give a name without blanks around it" in errors_of(path)


def test_plugins_block_names_installed_plugins_and_a_blocked_one_is_said(tmp_path):
    """A misspelt name in [plugins] block leaves the plugin meant loaded: refused. A
    pipeline naming a component of a blocked plugin is told it is blocked, not offered
    the nearest other name alone; an unknown source is one error, not a second one for
    a mapper the config never named."""
    path = jsonl_pipeline_config(tmp_path, "in", "out")
    path.write_text(path.read_text() + '\n[plugins]\nblock = ["records-jsonl", "record-jsonl"]\n')
    lines = errors_of(path)
    assert any(line.startswith(f"{path}: plugins.block: no installed plugin 'record-jsonl'") for line in lines)
    [source] = [line for line in lines if ".source.plugin" in line]
    assert "unknown source 'records-jsonl'" in source and "blocked, and not loaded: records-jsonl" in source
    assert not [line for line in lines if ".mapper" in line], lines
