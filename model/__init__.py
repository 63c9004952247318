"""Transformer, optimizer, tokenizer and checkpoint I/O (no training logic)."""
