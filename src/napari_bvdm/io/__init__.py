"""Real data in, annotated data out: readers, the CTC writer, the CTC validator and lineage tools."""
