"""`make demo`'s console: the logins it prints work with the config it writes (the
passwords hashed by `s321 console hash-password`), and the scoped one sees only its
client; and a console over a ledger not made yet says so instead of failing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from console.world import csrf_of
from s321 import app as s321_app
from s321.console.app import build
from s321.ledger import Ledger
from s321.sandbox.certs import ensure_dev_certs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    spec = importlib.util.spec_from_file_location("s321_demo", ROOT / "contrib" / "demo" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "WORK", tmp_path)
    ensure_dev_certs(tmp_path / "certs")  # what the demo's sandbox makes, named by its config
    return module


def _log_in(client: TestClient, user: str, password: str) -> int:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "username": user, "password": password}).status_code


def test_the_demo_logins_work_and_the_client_login_is_scoped(demo: object, tmp_path: Path) -> None:
    config = tmp_path / "s321.toml"
    template = (ROOT / "contrib" / "demo" / "s321.toml.in").read_text()
    config.write_text(template.format(root=ROOT, work=tmp_path, port=1))
    demo.add_console(config)  # type: ignore[attr-defined]
    _, loaded = s321_app.load(config)
    Ledger(loaded.config.ledger.path).close()
    for name, (role, scope, password) in demo.CONSOLE_USERS.items():  # type: ignore[attr-defined]
        client = TestClient(build(loaded), base_url=f"http://{loaded.config.console.listen}", follow_redirects=False)
        assert _log_in(client, name, password) == 303
        assert loaded.config.console.users[name].role == role
        assert loaded.config.console.users[name].originator_codes == scope
        assert client.get("/").status_code == 200
    assert _log_in(TestClient(build(loaded), base_url=f"http://{loaded.config.console.listen}", follow_redirects=False), "broker", "wrong") == 303
    assert "password" not in config.read_text().replace("password_hash", "")


def test_a_ledger_not_made_yet_is_a_clear_page_not_a_crash(demo: object, tmp_path: Path) -> None:
    config = tmp_path / "s321.toml"
    config.write_text((ROOT / "contrib" / "demo" / "s321.toml.in").read_text().format(root=ROOT, work=tmp_path,
                                                                                      port=1))
    demo.add_console(config)  # type: ignore[attr-defined]
    _, loaded = s321_app.load(config)
    client = TestClient(build(loaded), base_url=f"http://{loaded.config.console.listen}", follow_redirects=False)
    _log_in(client, "broker", "demo-broker")
    for path in ("/", "/records", "/findings", "/dead"):
        response = client.get(path)
        assert response.status_code == 503
        assert "no ledger there yet" in response.text and str(loaded.config.ledger.path) in response.text
