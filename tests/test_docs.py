"""The documentation lists every setting the code reads."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def variables_read_by_settings() -> set[str]:
    source = (REPO / "attio_portal" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', source))


def test_settings_read_some_variables():
    assert {"SECRET_KEY", "DATABASE_URL", "FIELD_ENCRYPTION_KEYS"} <= variables_read_by_settings()


def test_env_example_lists_every_variable():
    listed = set(re.findall(r"^#?([A-Z0-9_]+)=", (REPO / ".env.example").read_text(), re.M))
    assert variables_read_by_settings() - listed == set()


def test_readme_lists_every_variable():
    readme = (REPO / "README.md").read_text()
    missing = {name for name in variables_read_by_settings() if f"`{name}`" not in readme}
    assert missing == set()
