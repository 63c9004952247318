"""The Hugging Face tokenizers that an exported directory's tokenizer files configure."""
import json
import os
from typing import Callable, List

import pytest


def hf_tokenizers_from_dir(directory: str) -> List[Callable[[str], List[str]]]:
  """Tokenize functions built from `directory`'s vocab.txt and tokenizer_config.json.

  Always Hugging Face `tokenizers`' BertWordPieceTokenizer with the config's
  settings (the pipeline transformers' fast tokenizer builds); also
  transformers' BertTokenizer and ElectraTokenizerFast when transformers is
  installed. Skips the test when `tokenizers` is missing.
  """
  tokenizers = pytest.importorskip("tokenizers")
  with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
    config = json.load(f)
  fast = tokenizers.BertWordPieceTokenizer(
      os.path.join(directory, "vocab.txt"), lowercase=config["do_lower_case"],
      strip_accents=config["strip_accents"],
      handle_chinese_chars=config["tokenize_chinese_chars"], clean_text=True)
  found = [lambda text: fast.encode(text, add_special_tokens=False).tokens]
  try:
    import transformers  # pylint: disable=import-outside-toplevel
  except ImportError:
    return found
  return found + [cls.from_pretrained(directory).tokenize
                  for cls in (transformers.BertTokenizer, transformers.ElectraTokenizerFast)]
