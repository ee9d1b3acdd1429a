"""README.md documents every configuration key with its real default, and its commands are
the ones CI runs."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from bridge.config import Config, section_fields

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def rendered(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\\\\", "\\").replace("|", "\\|")
    return json.dumps(value) if isinstance(value, (list, dict)) else repr(value)


def section_text(name: str) -> str:
    start = README.index(f"### `[{name}]`")
    end = README.find("\n#", start + 1)
    return README[start : end if end > 0 else None]


def test_every_config_key_is_documented_with_its_default() -> None:
    defaults = Config()
    missing = []
    for section in section_fields():
        try:
            text = section_text(section.name)
        except ValueError:
            missing.append(f"[{section.name}]")
            continue
        for key in dataclasses.fields(getattr(defaults, section.name)):
            default = rendered(getattr(getattr(defaults, section.name), key.name))
            row = re.search(rf"^\| `{re.escape(key.name)}` \| `(.*?)` \|", text, re.M)
            if row is None:
                missing.append(f"[{section.name}] {key.name}")
            elif row.group(1) != default:
                missing.append(f"[{section.name}] {key.name}: README {row.group(1)} != {default}")
    assert not missing, "README configuration reference out of date: " + "; ".join(missing)


def test_readme_commands_are_the_ones_ci_runs() -> None:
    demo, tests = re.findall(r"^    (python3 -m venv .*)$", README, re.M)[:2]
    assert demo.endswith("crm-bridge demo") and "'.[embedded]'" in demo
    assert tests.endswith("python -m pytest -q") and "'.[test,embedded]'" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test,embedded]'" in ci
    assert re.search(r"^python -m pytest -q\b", ci, re.M)


def test_readme_explains_each_dialplan_file() -> None:
    for path in sorted((ROOT / "dialplan").iterdir()):
        assert f"`{path.name}`" in README, path.name
