"""Sequence tagging: CoNLL-2000 chunking and custom BIO/BIOES tasks."""
