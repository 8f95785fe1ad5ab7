"""glore: graph-based global reasoning (GloRe) and global-context blocks for vision networks."""

__version__ = "0.1.0"
