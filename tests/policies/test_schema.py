"""The editor schema agrees with the loader on the shipped presets and on broken files."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from policies.schema import policy_schema

ROOT = Path(__file__).parents[2] / "policies"
SHIPPED = sorted([ROOT / "default.yaml", *(ROOT / "presets").glob("*.yaml")])
BROKEN = Path(__file__).parent / "broken"


def test_schema_is_a_valid_draft7_schema() -> None:
    jsonschema.Draft7Validator.check_schema(policy_schema())


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_policies_satisfy_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), policy_schema())


@pytest.mark.parametrize(
    "name", ["unknown_key", "bad_action", "wrong_version", "literal_secret", "bad_json_op"]
)
def test_schema_rejects_structural_errors_too(name: str) -> None:
    document = yaml.safe_load((BROKEN / f"{name}.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, policy_schema())
