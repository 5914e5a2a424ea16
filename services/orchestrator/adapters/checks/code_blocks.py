"""Fenced code blocks of a markdown proposal, and the language each one is written in.

Fences follow CommonMark loosely: a line of three or more backticks or tildes opens a block, the first word of
the info string is its tag, and a line of the same character at least as long closes it; an unclosed block
runs to the end of the text (LLM output is often cut off mid-block). Fences may be indented (code inside list
items); that indentation is removed from the block's lines.

Tags are mapped onto the languages the checks understand: python, yaml, json, shell, dockerfile. An untagged
block is sniffed only from unmistakable openings (a shebang, a Dockerfile `FROM`, a Kubernetes manifest's
`apiVersion:` and `kind:`); anything else keeps its tag as its language, and untagged prose stays "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PYTHON = "python"
YAML = "yaml"
JSON = "json"
SHELL = "shell"
DOCKERFILE = "dockerfile"

_LANGUAGES: dict[str, str] = {
    "python": PYTHON,
    "py": PYTHON,
    "python3": PYTHON,
    "py3": PYTHON,
    "yaml": YAML,
    "yml": YAML,
    "json": JSON,
    "bash": SHELL,
    "sh": SHELL,
    "shell": SHELL,
    "zsh": SHELL,
    "console": SHELL,
    "shell-session": SHELL,
    "dockerfile": DOCKERFILE,
    "docker": DOCKERFILE,
    "containerfile": DOCKERFILE,
}

_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_TAG = re.compile(r"[\w+#.-]+")
_SHEBANG = re.compile(r"^#!\S*?(?:/env\s+)?(?P<interpreter>[\w.-]+)")
_MANIFEST_API = re.compile(r"^apiVersion:\s*\S", re.MULTILINE)
_MANIFEST_KIND = re.compile(r"^kind:\s*\S", re.MULTILINE)


@dataclass(frozen=True)
class CodeBlock:
    language: str
    """python, yaml, json, shell or dockerfile; otherwise the tag as written (lowercased), "" when untagged."""
    code: str
    index: int
    """0-based position among all the fenced blocks of the text."""
    tag: str = ""
    """The info string's first word, lowercased ("console", "yml"...)."""
    start_line: int = 0
    """1-based line of the text on which the block's code starts."""


def extract_code_blocks(content: str) -> list[CodeBlock]:
    lines = content.splitlines()
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        # A backtick fence's info string cannot hold a backtick: "```x```" on one line is inline code.
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        end = _closing_line(lines, i + 1, opening["fence"])
        indent = len(opening["indent"])
        body = [_dedent(line, indent) for line in lines[i + 1 : end]]
        code = "\n".join(body) + "\n" if body else ""
        tag = _tag(opening["info"])
        blocks.append(CodeBlock(_language(tag, code), code, len(blocks), tag, i + 2))
        i = end + 1
    return blocks


def _closing_line(lines: list[str], start: int, fence: str) -> int:
    closing = re.compile(rf"{re.escape(fence[0])}{{{len(fence)},}}")
    for j in range(start, len(lines)):
        if closing.fullmatch(lines[j].strip()):
            return j
    return len(lines)


def _dedent(line: str, indent: int) -> str:
    stripped = 0
    while stripped < indent and stripped < len(line) and line[stripped] in " \t":
        stripped += 1
    return line[stripped:]


def _tag(info: str) -> str:
    match = _TAG.match(info.strip().lstrip("{."))
    return match.group(0).lower() if match else ""


def _language(tag: str, code: str) -> str:
    if tag:
        return _LANGUAGES.get(tag, tag)
    return _sniff(code)


def _sniff(code: str) -> str:
    first = next((line.strip() for line in code.splitlines() if line.strip()), "")
    shebang = _SHEBANG.match(first)
    if shebang:
        interpreter = shebang["interpreter"]
        if interpreter.startswith("python"):
            return PYTHON
        return SHELL if interpreter in ("sh", "bash", "zsh", "dash") else ""
    if re.match(r"FROM\s+\S", first):
        return DOCKERFILE
    if _MANIFEST_API.search(code) and _MANIFEST_KIND.search(code):
        return YAML
    return ""
