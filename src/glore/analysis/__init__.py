"""Analysis: parameter/FLOP summaries, attention statistics, figures."""

from .._lazy import lazy_exports

# name -> module defining it. Owners add their public names here.
_EXPORTS = {
    "summary": "glore.analysis.complexity",
    "average_cosine_distance": "glore.analysis.cosine",
    # forward hooks and the analyses built on them (glore analyze ...)
    "BlockRecord": "glore.analysis.hooks",
    "BlockRecorder": "glore.analysis.hooks",
    "record_blocks": "glore.analysis.hooks",
    "find_blocks": "glore.analysis.hooks",
    "projection_maps": "glore.analysis.projections",
    "select_nodes": "glore.analysis.projections",
    "attention_maps": "glore.analysis.attention",
    "query_positions": "glore.analysis.attention",
    "graph_adjacency": "glore.analysis.graph",
    "node_feature_norms": "glore.analysis.graph",
    "query_independence_statistics": "glore.analysis.query_independence",
    "query_independence_table": "glore.analysis.query_independence",
    "stage_statistics": "glore.analysis.query_independence",
    "nonlocal_statistics": "glore.analysis.fine_grained",
    "nonlocal_statistics_table": "glore.analysis.fine_grained",
    "class_means": "glore.analysis.selectivity",
    "class_selectivity_index": "glore.analysis.selectivity",
    "stage_blocks": "glore.analysis.selectivity",
    "transform_modules": "glore.analysis.selectivity",
    "save_selectivity_histograms": "glore.analysis.figures",
    "save_class_activations": "glore.analysis.figures",
    "save_map_grid": "glore.analysis.figures",
    "save_graph_figure": "glore.analysis.figures",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
