"""The documented Prometheus alert rules use only metrics s321 exports, and each alert
is documented for the operator who gets paged by it."""

import re
from pathlib import Path

from s321.metrics import Metrics

ROOT = Path(__file__).parents[2]
RULES = (ROOT / "contrib" / "prometheus" / "s321-alerts.yml").read_text()


def exported() -> set[str]:
    metrics = Metrics(depth=lambda: {"shop": (1, 2)})
    metrics.prepare("shop")
    metrics.ack_latency("shop", 0.2)
    text = metrics.render().decode()
    return set(re.findall(r"^(s321_[a-z_]+)", text, re.M))


def test_every_metric_an_alert_uses_is_exported():
    used = set(re.findall(r"\b(s321_[a-z_]+)", "\n".join(
        line for line in RULES.splitlines() if not line.lstrip().startswith(("#", "description:")))))
    assert used, "no s321 metric in the rules"
    assert used <= exported(), used - exported()


def test_every_alert_has_an_expression_a_severity_and_is_documented():
    docs = (ROOT / "docs" / "operations.md").read_text()
    alerts = re.findall(r"^\s+- alert: (\S+)$", RULES, re.M)
    assert {"S321Rejections", "S321DeadLetters", "S321PipelineStalled"} <= set(alerts)
    blocks = re.split(r"^\s+- alert: ", RULES, flags=re.M)[1:]
    for name, block in zip(alerts, blocks):
        assert "expr:" in block and re.search(r"severity: (critical|warning|info)", block), name
        assert f"`{name}`" in docs, f"{name} is not in docs/operations.md"
