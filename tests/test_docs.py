"""The repository explains itself: no citations of documents it does not contain, and
docs/threat-model.md stays in step with the code and tests that cite it.

Code, tests and documents once cited rows of an attack list kept outside the repository (ids such
as a capital P, T, L or R followed by a row number, and the name of that list). A maintainer cannot
look those up, so they are replaced by plain explanations or by "threat model §N" references, and
this module keeps them from coming back.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THREAT_MODEL = ROOT / "docs" / "threat-model.md"

# A row id used as a citation: "P24", "T14-hs256", "test_L29_...", "(P18, P20)", "R16/R17". Letters
# and digits may not touch it (ES256, RS256, PS256, P2P, H0), "_" and "-" may (test names, ids);
# row numbers start at 1 (P0 and H0 are the decoded payload and header of a token, not rows).
# "L1 cache" / "L2 caches" are CPU caches.
ROW_ID = re.compile(r"(?<![A-Za-z0-9])[PTLR][1-9][0-9]?(?![0-9A-Za-z@])(?!\s*caches?\b)")
LIST_NAME = re.compile(r"\bcatalog(?:ue)?s?\b", re.IGNORECASE)

SCANNED_DIRS = ("jwt_wsgi", "tests", "bench", "examples", "docs", ".ci")
SCANNED_FILES = ("Makefile", "setup.cfg", "pyproject.toml", "conftest.py")  # and every top-level *.md
TEXT_SUFFIXES = {".py", ".md", ".rst", ".txt", ".html", ".ini", ".cfg", ".toml", ".sh", ""}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", "results", "test-artifacts"}


def scanned_files() -> list[Path]:
    files = sorted(ROOT.glob("*.md")) + [ROOT / name for name in SCANNED_FILES if (ROOT / name).is_file()]
    for top in SCANNED_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if (path.is_file() and path.suffix in TEXT_SUFFIXES and path != Path(__file__).resolve()
                    and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts)):
                files.append(path)
    return files


def offences(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if ROW_ID.search(line) or LIST_NAME.search(line):
            found.append(f"{number}: {line.strip()}")
    return found


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Login CSRF (" + "catalogue" + " L29): ...", id="name-and-row"),
        pytest.param("# " + "P" + "26: the application honours a method override", id="bare-row"),
        pytest.param("def test_" + "P" + "24_cors_preflight():", id="test-name"),
        pytest.param('row("' + "P" + '18-script-name-admin", "GET", "/admin/panel")', id="parametrize-id"),
        pytest.param('pytest.param(lambda c: c.T, id="' + "T" + '14-hs256-with-public-key")', id="pytest-param-id"),
        pytest.param("must not unprotect it (" + "P" + "18, " + "P" + "20, " + "P" + "21).", id="list"),
        pytest.param("(" + "R" + "16/" + "R" + "17)", id="slash-pair"),
        pytest.param("# -- " + "T" + "1–" + "T" + "3 ---", id="range"),
        pytest.param("see the security " + "Catalog" + " §2", id="name-capitalised"),
    ],
)
def test_the_pattern_finds_citations(text: str) -> None:
    assert offences(text), text


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("GET /api/me HTTP/1.1", id="http-version"),
        pytest.param("ES256 needs a P-256 key; RS256, PS256, HS256, EdDSA", id="algorithms-and-curves"),
        pytest.param("fits in the L1 cache; L2 caches are shared", id="cpu-caches"),
        pytest.param("J(H0) . J(P0) . T.s", id="token-placeholders"),
        pytest.param("alice / P@ss-alice", id="test-password"),
        pytest.param("a P2P network, an R2D2 droid, SHA-256, T-shirt", id="words"),
        pytest.param("threat model §3.2, RFC 8725 §3.1", id="section-references"),
    ],
)
def test_the_pattern_leaves_ordinary_text_alone(text: str) -> None:
    assert not offences(text), text


def test_no_citation_of_documents_outside_the_repository() -> None:
    found = {}
    for path in scanned_files():
        lines = offences(path.read_text(encoding="utf-8", errors="replace"))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert not found, (
        "cite docs/threat-model.md ('threat model §N') or explain in your own words instead:\n"
        + "\n".join(f"{name}:{line}" for name, lines in found.items() for line in lines)
    )


def threat_model_sections() -> set[str]:
    """``3`` for ``## 3. Paths and routing``, ``3.2`` for ``### 3.2 The property``."""
    sections = set()
    for line in THREAT_MODEL.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if match:
            sections.add(match[1])
    return sections


def test_threat_model_sections_cited_in_the_repository_exist() -> None:
    sections = threat_model_sections()
    assert {"1", "2", "3", "3.2", "10"} <= sections, sorted(sections)
    missing = []
    citation = re.compile(r"threat[ -]model(?:\.md)?,? (§\d+(?:\.\d+)?(?:(?:,| and) §\d+(?:\.\d+)?)*)", re.IGNORECASE)
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in citation.finditer(re.sub(r"\s+", " ", text)):
            for number in re.findall(r"§(\d+(?:\.\d+)?)", match[1]):
                if number not in sections:
                    missing.append(f"{path.relative_to(ROOT)}: §{number}")
    # The document's own cross-references (it cites no other document by section).
    for number in re.findall(r"§(\d+(?:\.\d+)?)", THREAT_MODEL.read_text(encoding="utf-8")):
        if number not in sections:
            missing.append(f"docs/threat-model.md: §{number}")
    assert not missing, missing


def test_threat_model_cites_tests_that_exist() -> None:
    """``tests/x.py::test_name`` (or ``::test_name`` after a file was named) must be a test there."""
    text = THREAT_MODEL.read_text(encoding="utf-8")
    current: str | None = None
    missing = []
    cited = 0
    for match in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?(?:\[[^\]`]*\])?`", text):
        file, name = match[1], match[2]
        if file is not None:
            current = file
            assert (ROOT / file).is_file(), file
        if name is None:
            continue
        assert current is not None, f"::{name} before any file"
        cited += 1
        source = (ROOT / current).read_text(encoding="utf-8")
        if not re.search(rf"^\s*(?:async )?def {name}\(", source, re.MULTILINE):
            missing.append(f"{current}::{name}")
    assert cited > 100
    assert not missing, missing


@pytest.mark.parametrize("name", ["README.md", "SECURITY.md"])
def test_the_threat_model_is_linked(name: str) -> None:
    assert "](docs/threat-model.md)" in (ROOT / name).read_text(encoding="utf-8")
