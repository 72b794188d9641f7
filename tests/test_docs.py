"""Every relative link and anchor in the project's Markdown resolves, as a code host renders it.

So do the places that point into the docs from outside Markdown: the alert rules' runbooks and
the unit's Documentation= pages. Anchors are GitHub's: the heading in lower case, punctuation
dropped but for `-` and `_`, spaces turned to `-`, repeats numbered `-1`, `-2`, ...
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from bench import report

REPO = Path(__file__).resolve().parent.parent
INSTALL_PREFIX = "/opt/totpd/"  # where deploy/install.sh puts the docs, as in the repository


def markdown_files(root: Path) -> list[Path]:
    """The project's own Markdown: top level, docs/, and under deploy/ and totpd/."""
    found = {*root.glob("*.md"), *root.glob("docs/*.md")}
    found |= {*root.glob("deploy/**/*.md"), *root.glob("totpd/**/*.md")}
    return sorted(found)


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_CODE_SPAN = re.compile(r"(`+).+?\1")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
_HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"")
_HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_OUTSIDE = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)
_LINE_ANCHOR = re.compile(r"L\d+(?:-L\d+)?")


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    fence = ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        opening = _FENCE.match(line)
        if fence:
            if opening and opening[1][0] == fence[0] and len(opening[1]) >= len(fence):
                fence = ""
            continue
        if opening:
            fence = opening[1]
            continue
        yield number, line


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading's text (before numbering repeats)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a reader can link to in a Markdown file."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    for _, line in prose_lines(path):
        heading = _HEADING.match(line)
        if heading:
            anchor = github_anchor(heading[2])
            seen = repeats.get(anchor, 0)
            repeats[anchor] = seen + 1
            found.add(f"{anchor}-{seen}" if seen else anchor)
        found.update(_HTML_ANCHOR.findall(line))
    return found


def links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) for every link and image in a Markdown file's prose."""
    for number, line in prose_lines(path):
        prose = _CODE_SPAN.sub("", line)
        for pattern in (_INLINE_LINK, _REFERENCE, _HTML_LINK):
            for target in pattern.findall(prose):
                yield number, target


def target_problem(root: Path, base: Path, target: str) -> str | None:
    """Why `target`, seen from directory `base`, leads nowhere; None when it resolves."""
    if _OUTSIDE.match(target):
        return None
    if _SCHEME.match(target):
        return "only http(s) and mailto links may leave the repository"
    file_part, _, fragment = target.partition("#")
    if not file_part:
        return None if not fragment else "a link to '#' alone"
    start = root if file_part.startswith("/") else base
    resolved = (start / unquote(file_part).lstrip("/")).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if not fragment:
        return None
    if resolved.suffix == ".md":
        if unquote(fragment) in anchors(resolved):
            return None
        return f"no heading in {resolved.relative_to(root.resolve())} has the anchor #{fragment}"
    if _LINE_ANCHOR.fullmatch(fragment):
        return None
    return f"#{fragment} is not an anchor a code host makes in {resolved.name}"


def problems(root: Path, path: Path) -> list[str]:
    """Every link of one Markdown file that leads nowhere, as `file:line: target: why`."""
    found = []
    for number, target in links(path):
        if target.startswith("#"):
            fragment = unquote(target[1:])
            why = None if fragment in anchors(path) else f"no heading has the anchor {target}"
        else:
            why = target_problem(root, path.parent, target)
        if why:
            found.append(f"{path.relative_to(root)}:{number}: {target}: {why}")
    return found


MARKDOWN = markdown_files(REPO)


def test_the_project_markdown_is_all_found() -> None:
    names = {str(p.relative_to(REPO)) for p in MARKDOWN}
    expected = {"README.md", "THREAT_MODEL.md", "CHANGELOG.md", "totpd/admin/VENDOR.md"}
    expected |= {f"docs/{page}.md" for page in ("deploying", "performance", "development")}
    assert expected <= names


@pytest.mark.parametrize("path", MARKDOWN, ids=[str(p.relative_to(REPO)) for p in MARKDOWN])
def test_every_relative_link_and_anchor_resolves(path: Path) -> None:
    assert problems(REPO, path) == []


def test_anchors_are_the_ones_github_makes() -> None:
    assert github_anchor("Sealing the key: `totpd secrets init`") == (
        "sealing-the-key-totpd-secrets-init"
    )
    assert github_anchor("totpd — a phone line to your authenticator") == (
        "totpd--a-phone-line-to-your-authenticator"
    )
    assert github_anchor("7. Alerts") == "7-alerts"
    assert github_anchor("Why these defaults (NIST SP 800-63B)") == (
        "why-these-defaults-nist-sp-800-63b"
    )
    assert github_anchor("The [vault](docs/secrets.md) and key_credential") == (
        "the-vault-and-key_credential"
    )


def test_broken_links_and_anchors_are_caught(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "# Guide\n\n## Setup\n\n## Setup\n\n```sh\n# Not a heading\n```\n"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "# Title\n\n"
        "[fine](docs/guide.md#setup-1) [fine](#title) [web](https://example.org/#x)\n"
        "[gone](docs/missing.md)\n"
        "[bad anchor](docs/guide.md#set-up)\n"
        "[third setup](docs/guide.md#setup-2)\n"
        "[fenced heading](docs/guide.md#not-a-heading)\n"
        "[here](#nowhere) ![picture](docs/picture.png)\n"
        "[out](../elsewhere.md) [file](file:///opt/totpd/README.md)\n"
        "`[in code](nowhere.md)`\n\n"
        "```\n[in a fence](nowhere.md)\n```\n"
    )
    found = problems(tmp_path, page)
    assert [line.split(": ", 2)[0:2] for line in found] == [
        ["README.md:4", "docs/missing.md"],
        ["README.md:5", "docs/guide.md#set-up"],
        ["README.md:6", "docs/guide.md#setup-2"],
        ["README.md:7", "docs/guide.md#not-a-heading"],
        ["README.md:8", "#nowhere"],
        ["README.md:8", "docs/picture.png"],
        ["README.md:9", "../elsewhere.md"],
        ["README.md:9", "file:///opt/totpd/README.md"],
    ]


def _runbooks(value: Any) -> Iterator[str]:
    """Every `runbook` annotation anywhere in a parsed YAML document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "runbook":
                yield item
            else:
                yield from _runbooks(item)
    elif isinstance(value, list):
        for item in value:
            yield from _runbooks(item)


@pytest.mark.parametrize("name", ["totpd-rules.yml", "totpd-rules.test.yml"])
def test_the_alert_runbooks_point_at_a_heading(name: str) -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / name).read_text())
    runbooks = list(_runbooks(rules))
    assert runbooks, "the brute-force and breaker alerts carry a runbook"
    for runbook in runbooks:
        assert "#" in runbook, runbook
        # A runbook is a path in the repository, as under /opt/totpd on an installed host.
        assert target_problem(REPO, REPO, runbook) is None, runbook


def test_the_unit_documentation_pages_are_in_the_repository() -> None:
    unit = (REPO / "deploy" / "totpd.service").read_text()
    links = [u for v in re.findall(r"^Documentation=(.+)$", unit, re.MULTILINE) for u in v.split()]
    pages = [u.removeprefix("file://") for u in links if u.startswith("file:")]
    assert pages
    for page in pages:
        assert page.startswith(INSTALL_PREFIX), page
        assert target_problem(REPO, REPO, page.removeprefix(INSTALL_PREFIX)) is None, page


def test_make_bench_rewrites_only_the_report_in_the_performance_page() -> None:
    page = (REPO / "docs" / "performance.md").read_text()
    updated = report.splice(page, "## This run\n\nA new report.\n")
    assert "A new report." in updated
    assert "## Argon2 isolation" not in updated  # the old report is gone
    before, _, _ = page.partition(report.REPORT_BEGIN)
    _, _, after = page.partition(report.REPORT_END)
    assert updated.startswith(before)
    assert updated.endswith(after)
    assert "## Reading these numbers" in after  # the hand-written notes stay
    current = page.partition(report.REPORT_BEGIN)[2].partition(report.REPORT_END)[0]
    assert report.splice(page, current) == page


def test_a_page_without_the_report_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one"):
        report.splice("# Performance\n\nNo markers here.\n", "## This run\n")
    twice = f"{report.REPORT_BEGIN}\n{report.REPORT_END}\n{report.REPORT_BEGIN}\n"
    with pytest.raises(ValueError, match="expected one"):
        report.splice(twice, "## This run\n")
