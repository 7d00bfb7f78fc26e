"""Raw shapes: one parser per way agent datasets are written down.

A dataset is a YAML mapping onto one of these (``adp/mappings/<dataset>.yaml``), so a new
dataset in a known shape needs a mapping file, not code. Each module defines a
``Mapping`` dataclass (its options) and ``converter(mapping) -> (raw record -> ADP dict)``. The names are
``ember.adp.mapping.SHAPES``.
"""
