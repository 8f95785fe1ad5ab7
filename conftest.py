"""Collects the Python code blocks of README.md and docs/*.md as tests (Sybil), so that a snippet
that drifts from the code fails the suite. A block that needs data or weights a test machine lacks is
marked with ``<!-- skip: next -->`` before it."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

pytest_collect_file = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()],
                            patterns=["README.md", "docs/*.md", "*.md"], excludes=["CHANGELOG.md"]).pytest()
