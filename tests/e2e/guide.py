"""The fenced blocks of deploy/README.md and the marks that say which
setup's test runs them (see tests/e2e/test-guide.py for the convention).

    import guide
    blocks = guide.read()                 # every fenced block, in order
    mine = guide.for_setup(blocks, "setup1")
    problems = guide.unmarked(blocks, "setup1", ("Common steps", "1. "))
"""

import os
import re

import testlib

PATH = os.path.join(testlib.SRCDIR, "deploy", "README.md")

# <!-- test: SETUP [KIND][: REASON] -->
MARK = re.compile(r"^\s*<!--\s*test:\s*([a-z0-9]+)(?:\s+([a-z]+))?"
                  r"(?:\s*:\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```\s*([A-Za-z0-9_-]*)\s*$")
KINDS = ("run", "skip", "installed", "hook", "verify", "events", "crontab")


class GuideError(Exception):
    pass


class Block:
    """One fenced block: its text (dedented to its fence), its language
    (sh, or "" for a bare fence), the line of its opening fence, the
    `## ` section it lies in, and its mark (setup, kind, reason; setup
    None when unmarked)."""

    def __init__(self, text, lang, line, section, setup, kind, reason):
        self.text = text
        self.lang = lang
        self.line = line
        self.section = section
        self.setup = setup
        self.kind = kind
        self.reason = reason

    def first_line(self):
        for ln in self.text.splitlines():
            if ln.strip() and not ln.lstrip().startswith("#"):
                return ln.strip()
        return ""

    def name(self):
        """A short name for TAP: the line and the first command."""
        first = self.first_line()
        if len(first) > 60:
            first = first[:57] + "..."
        return "deploy/README.md:%d `%s`" % (self.line, first)


def parse(text):
    """Every fenced block of text, in order.  Raises GuideError for a
    mark that is malformed, names an unknown kind or precedes no block."""
    lines = text.splitlines()
    blocks = []
    section = ""
    mark = None      # (setup, kind, reason, line)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        m = MARK.match(line)
        if m is not None:
            if mark is not None:
                raise GuideError("line %d: a mark before the mark of line "
                                 "%d's block" % (i + 1, mark[3]))
            kind = m.group(2) or "run"
            if kind not in KINDS:
                raise GuideError("line %d: unknown kind %r (known: %s)" % (
                    i + 1, kind, ", ".join(KINDS)))
            if (kind == "skip") != bool(m.group(3)):
                raise GuideError("line %d: a reason goes with skip, and "
                                 "skip needs one" % (i + 1))
            mark = (m.group(1), kind, m.group(3), i + 1)
            i += 1
            continue
        elif "<!--" in line and "test:" in line:
            raise GuideError("line %d: malformed mark: %s" % (i + 1, line))
        f = FENCE.match(line)
        if f is None:
            if mark is not None and line.strip():
                raise GuideError("line %d: the mark is not followed by a "
                                 "fenced block" % mark[3])
            i += 1
            continue
        indent, lang = f.group(1), f.group(2)
        body = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            ln = lines[j]
            body.append(ln[len(indent):] if ln.startswith(indent) else
                        ln.lstrip())
            j += 1
        if j >= len(lines):
            raise GuideError("line %d: unterminated fenced block" % (i + 1))
        setup, kind, reason = (mark[:3] if mark is not None else
                               (None, None, None))
        blocks.append(Block("\n".join(body) + "\n", lang, i + 1, section,
                            setup, kind, reason))
        mark = None
        i = j + 1
    if mark is not None:
        raise GuideError("line %d: the mark is not followed by a fenced "
                         "block" % mark[3])
    return blocks


def read(path=PATH):
    with open(path, encoding="utf-8") as f:
        return parse(f.read())


def for_setup(blocks, setup):
    return [b for b in blocks if b.setup == setup]


def unmarked(blocks, setup, sections):
    """The shell blocks (sh, or bare) of the sections whose titles start
    with one of sections that are not marked for setup: each must be run
    or skipped with a reason, so that none drifts untested."""
    return [b for b in blocks
            if b.lang in ("sh", "") and b.setup != setup and
            any(b.section.startswith(s) for s in sections)]
