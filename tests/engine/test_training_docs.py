"""docs/training.md stays complete: every train: key and every optimizer, schedule, loss and metric name."""
from __future__ import annotations

from layerforge.engine.schema import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, TrainSpec


def test_training_doc_names_every_key_and_choice(root):
    text = (root / "docs" / "training.md").read_text(encoding="utf-8")
    missing = [f"train.{k}" for k in TrainSpec.model_fields if f"`{k}`" not in text]
    missing += [n for n in (*OPTIMIZERS, *SCHEDULES, *LOSSES, *METRICS) if f"`{n}`" not in text]
    assert not missing, f"docs/training.md does not mention: {missing}"


def test_every_example_config_is_listed_in_the_training_doc(root):
    text = (root / "docs" / "training.md").read_text(encoding="utf-8")
    for p in sorted((root / "configs").glob("*.yaml")):
        assert f"configs/{p.name}" in text, p.name
