"""Every theory label the project cites is defined exactly once on a documentation page.

A label is an equation label such as LA-22, SF-19a, SM-30 or DL-6 (the deep-linear plug-in example), or a
check label such as SM-C12 or SM-C12c (pattern ``(LA|SF|SM|DL|LR|WD)-C?<digits>[a-z]?``). The rule for defining
one, stated in ``docs/theory/index.md``:

* equation label L: an anchor ``<a id="L"></a>`` followed (before the next anchor) by a display-math block
  carrying ``\\tag{L}``;
* check label L: an anchor ``<a id="L"></a>`` followed on the same line by the label in bold, ``**L**``
  (linear-attention checks, anchored LA-C1, LA-C2, ..., are shown in bold under the notes' names **C1**,
  **C2**, ...; softmax checks SF-C1, ... as **check 1**, ...).

The test reads the project's code and text (not the notes in ../shared/theory, which are outside the repo),
collects every cited label, and fails listing each label that no page under docs/ defines, every label
defined twice, and every anchor or tag that breaks the rule. Plain text only; it runs in milliseconds.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# Where labels are cited. tests/ and docs/ are included too: a page or a test that cites a label the docs do
# not define is as much a dangling reference as a module that does.
CITING = ["reduced_dynamics", "derivations", "scripts", "benchmarks", "examples", "tests", "docs", "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".txt", ".rst", ".cfg", ".toml", ".yml", ".yaml"}

LABEL = r"(?:LA|SF|SM|DL|LRA|LR|WD|SGD)-C?\d+[a-z]?"
CITED = re.compile(rf"\b({LABEL})\b")
ANCHOR = re.compile(rf'<a id="({LABEL})"></a>')
TAG = re.compile(rf"\\tag\{{({LABEL})\}}")
CHECK_ID = re.compile(r"^(?:LA|SF|SM|DL|LRA|LR|WD|SGD)-C\d+[a-z]?$")


def _files(entry: str):
    path = ROOT / entry
    if path.is_file():
        yield path
    elif path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts:
                yield p


def cited_labels() -> dict[str, list[str]]:
    """label -> files (relative) that cite it."""
    this = Path(__file__).resolve()
    where: dict[str, list[str]] = {}
    for entry in CITING:
        for path in _files(entry):
            if path.resolve() == this:
                continue
            for label in set(CITED.findall(path.read_text(encoding="utf-8", errors="replace"))):
                where.setdefault(label, []).append(str(path.relative_to(ROOT)))
    return where


def _check_display(label: str) -> str:
    """The bold name a check label is shown under: LA-C6 -> C6, SF-C10 -> check 10, SM-C12c -> SM-C12c."""
    if label.startswith("LA-C"):
        return label[3:]
    if label.startswith("SF-C"):
        return "check " + label[4:]
    return label


def defined_labels() -> tuple[Counter, list[str]]:
    """(label -> number of definitions, problems with the rule) over every page under docs/."""
    counts: Counter = Counter()
    problems: list[str] = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        name = str(page.relative_to(ROOT))
        anchors = list(ANCHOR.finditer(text))
        for i, m in enumerate(anchors):
            label = m.group(1)
            counts[label] += 1
            end = anchors[i + 1].start() if i + 1 < len(anchors) else len(text)
            after = text[m.end():end]
            if CHECK_ID.match(label):
                line = after.split("\n", 1)[0]
                if f"**{_check_display(label)}**" not in line:
                    problems.append(f"{name}: anchor {label} is not followed by **{_check_display(label)}** "
                                    "on its line")
            else:
                block = re.match(r"\s*(\\\[|\$\$)(.*?)(\\\]|\$\$)", after, re.S)
                if not block or f"\\tag{{{label}}}" not in block.group(2):
                    problems.append(f"{name}: anchor {label} is not followed by a display block with "
                                    f"\\tag{{{label}}}")
        tags = Counter(TAG.findall(text))
        anchored = Counter(m.group(1) for m in anchors)
        for label, n in tags.items():
            if n > 1:
                problems.append(f"{name}: \\tag{{{label}}} appears {n} times")
            if label not in anchored:
                problems.append(f"{name}: \\tag{{{label}}} has no anchor <a id=\"{label}\"></a>")
    return counts, problems


def test_every_cited_label_is_defined_once():
    cited = cited_labels()
    counts, problems = defined_labels()
    missing = sorted(set(cited) - set(counts), key=_sort_key)
    twice = sorted((label for label, n in counts.items() if n > 1), key=_sort_key)
    report = []
    if missing:
        report.append("labels cited but defined on no page under docs/ (rule: docs/theory/index.md):")
        report += [f"  {label}  (cited in {', '.join(sorted(cited[label])[:4])})" for label in missing]
    if twice:
        report.append("labels defined more than once: " + ", ".join(f"{l} ×{counts[l]}" for l in twice))
    if problems:
        report.append("definitions that break the rule:")
        report += ["  " + p for p in problems]
    assert not report, "\n".join(report)


def test_the_collector_sees_the_citations():
    # Guard against a regex or path change that silently collects nothing.
    cited = cited_labels()
    assert {"LA-22", "SF-19a", "SM-C12c", "DL-6"} <= set(cited)


def _sort_key(label: str):
    m = re.match(r"(\w\w)-(C?)(\d+)([a-z]?)", label)
    return (m.group(1), m.group(2), int(m.group(3)), m.group(4)) if m else (label, "", 0, "")
