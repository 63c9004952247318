"""Exports: a TensorFlow SavedModel for serving (`saved_model.py`) and Hugging Face
`transformers` directories, both ways (`hf.py`); `export_model.py` and `convert_hf.py` are their
command lines."""
