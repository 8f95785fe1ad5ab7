"""Analysis: parameter/FLOP summaries, attention statistics, figures."""

from .._lazy import lazy_exports

# name -> module defining it. Owners add their public names here.
_EXPORTS = {
    "summary": "glore.analysis.summary",
    "average_cosine_distance": "glore.analysis.cosine",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
