"""Collects the Python code blocks of README.md and docs/*.md as tests (Sybil), so that a snippet
that drifts from the code fails the suite. A block that needs data or weights a test machine lacks is
marked with ``<!-- skip: next -->`` before it (its reason in a comment of its own). A page's blocks
run in order in one process (a skip marker and the names one block defines act on the blocks after
it), so ``make test`` runs them in a pytest run of their own, without pytest-xdist."""

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

pytest_collect_file = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()],
                            patterns=["README.md", "docs/*.md", "*.md"], excludes=["CHANGELOG.md"]).pytest()
