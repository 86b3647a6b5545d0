"""The translation catalogs cover every user-facing string in the code and templates.

The strings are extracted afresh (as `make extract-messages` does), so a string added
without refreshing and translating the catalogs fails here rather than showing up in
English on a Chinese page.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from crm.i18n import SUPPORTED_LOCALES

ROOT = Path(__file__).resolve().parent.parent
CATALOGS = ROOT / "crm" / "translations"
SOURCE_LOCALE = "en"
TRANSLATED_LOCALES = [code for code in SUPPORTED_LOCALES if code != SOURCE_LOCALE]

# A named Python %-format placeholder with its conversion, e.g. %(tenant)s or %(n)d.
PLACEHOLDER_RE = re.compile(r"%\((\w+)\)[-#0 +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa]")


def catalog_dir(code: str) -> Path:
    """Where Flask-Babel looks for ``code``'s catalog.

    Flask-Babel passes ``Locale.parse(code)`` to gettext, and Babel adds the likely
    script: "zh_CN" becomes "zh_Hans_CN", so a catalog under ``zh_CN/`` is never found.
    """
    return CATALOGS / str(Locale.parse(code)) / "LC_MESSAGES"


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f)


def forms(text: str | tuple[str, ...]) -> tuple[str, ...]:
    """A message's id or string as a tuple of its forms (one form unless pluralised)."""
    return text if isinstance(text, tuple) else (text,)


def placeholders(texts: tuple[str, ...]) -> set[str]:
    return {match.group(0) for text in texts for match in PLACEHOLDER_RE.finditer(text or "")}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Catalog:
    """The messages in the source today, extracted the way `make extract-messages` does."""
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    command = [sys.executable, "-m", "babel.messages.frontend", "-q", "extract"]
    command += ["-F", "babel.cfg", "-k", "_l", "-o", str(pot), "."]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"pybabel extract failed:\n{result.stderr}"
    catalog = read_catalog(pot)
    assert len(catalog) > 0, "pybabel extract found no messages; is babel.cfg right?"
    return catalog


@pytest.fixture(scope="module", params=TRANSLATED_LOCALES)
def translated(request) -> tuple[str, Catalog]:
    code = request.param
    po = catalog_dir(code) / "messages.po"
    assert po.is_file(), (
        f"No catalog for {code} at {po.relative_to(ROOT)}. Flask-Babel looks up "
        f"{Locale.parse(code)!s}/, not {code}/; create it with `pybabel init -i "
        f"crm/translations/messages.pot -d crm/translations -l {Locale.parse(code)!s}`."
    )
    return code, read_catalog(po)


def test_every_extracted_message_is_translated(extracted: Catalog, translated: tuple[str, Catalog]):
    code, catalog = translated
    assert not catalog.fuzzy, f"The {code} catalog's header is marked fuzzy."
    missing = []
    for message in extracted:
        if not message.id:
            continue
        entry = catalog.get(message.id, message.context)
        if entry is None or entry.fuzzy or not all(forms(entry.string)):
            state = "absent" if entry is None else "fuzzy" if entry.fuzzy else "empty"
            missing.append(f"  {state}: {forms(message.id)[0]!r}")
    assert not missing, (
        f"{len(missing)} message(s) not translated in {code}; run `make extract-messages`, "
        "then translate them:\n" + "\n".join(missing)
    )


def test_translations_keep_the_placeholders(translated: tuple[str, Catalog]):
    code, catalog = translated
    wrong = []
    for message in catalog:
        if not message.id or not message.string:
            continue
        expected = placeholders(forms(message.id))
        for text in forms(message.string):
            if text and placeholders((text,)) != expected:
                wrong.append(
                    f"  {forms(message.id)[0]!r}: expected {sorted(expected)}, "
                    f"got {sorted(placeholders((text,)))} in {text!r}"
                )
    assert not wrong, f"Placeholders differ in {code}:\n" + "\n".join(wrong)
