"""Sequence tagging tasks: CoNLL-2000 chunking and custom BIO/BIOES tasks
(docs/finetuning.md#tagging).

Input: CoNLL-style column files, one token per line, blank lines between
sentences, `-DOCSTART-` lines skipped (`chunk`: word = first column, tag =
last column, whitespace-separated). Span-level tasks re-encode the tags in
BIOES through their spans; the label ids are the sorted union of the encoded
tags of the train/dev/test files that exist, cached in
`<preprocessed_data_dir>/[debug_]<task>_label_mapping.pkl`.

Featurization (docs/finetuning.md#tagging-features, docs/data.md#tagging-word-pieces): one sequence
`[CLS] pieces [SEP]`; the first word-piece of every word is a labelled position. The head gathers
the encoder output at those positions: `task_specific/<task>/dense` [H, n_labels].

Quirks reproduced (docs/finetuning.md#quirks-and-fixes): the truncation test counts the
sentence's words plus the pieces so far (`#words + #pieces + 1 >
max_seq_length` stops, so long sentences are cut earlier than necessary, and
cut words are not evaluated); `segment_ids` are 1 for every real token;
words are always lower-cased and accent-stripped whatever `do_lower_case`;
the reported loss is doubled (see `tagging_metrics`); a word that cleans to no
piece still gets a labelled position (that of the next word's first piece);
a data word spelled "[CLS]"/"[SEP]" is kept as one token and not labelled.
Fixed: a last sentence without a trailing blank line is kept (the original
dropped it); a sentence whose pieces cannot fit raises a ValueError instead
of failing an assert.

Letters: B batch, L max_seq_length, H hidden size, C number of labels.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from finetune import feature_spec, input_files, scorer, task
from finetune.tagging import tagging_metrics, tagging_utils
from model import tokenization
from model.modeling import Dense
from util import files

logger = logging.getLogger("electra")

# docs/hparams.md#fine-tuning-debug-mode: stop once more than 100 sentences are read
DEBUG_MAX_SENTENCES = 100
LABEL_SPLITS = ("train", "dev", "test")
Sentence = Tuple[List[str], List[str]]  # (words, tags)


@dataclasses.dataclass(frozen=True)
class ColumnFormat:
  """Where a tagging task's files are and how to read them.

  Attributes:
    files: {split: file name}; relative names are under `raw_data_dir(task)`.
    token_column: 0-based column of the word (negative counts from the end).
    tag_column: column of the tag.
    delimiter: column separator; None splits on any whitespace.
    scheme: "BIO" or "BIOES" to validate the tags of the files; None: no check.
  """
  files: Mapping[str, str]
  token_column: int = 0
  tag_column: int = -1
  delimiter: Optional[str] = None
  scheme: Optional[str] = None


def read_conll(path: str, fmt: ColumnFormat, max_sentences: Optional[int] = None,
               check_tags: bool = True) -> List[Sentence]:
  """Reads the (words, tags) sentences of a CoNLL-style file.

  Args:
    path: the file.
    fmt: columns and delimiter.
    max_sentences: stop as soon as more than this many sentences are read.
    check_tags: validate the tags as `fmt.scheme` tags (any of B/I/E/S
      prefixes when the scheme is None); off for token-level tag sets.

  Returns:
    The sentences, including a last one not followed by a blank line (the
    original dropped it).

  Raises:
    DataError: a line that is not UTF-8, has too few columns or a tag that is
      malformed or not of `fmt.scheme` (file and line are named).
  """
  sentences: List[Sentence] = []
  sentence: List[Tuple[str, str]] = []

  def flush() -> None:
    if sentence:
      words, tags = zip(*sentence)
      sentences.append((list(words), list(tags)))
      sentence.clear()

  for line_number, line in input_files.read_lines(path):
    if not line.strip():
      flush()
      if max_sentences is not None and len(sentences) > max_sentences:
        return sentences
      continue
    columns = line.strip().split(fmt.delimiter)
    if columns[0] == "-DOCSTART-":
      continue
    try:
      word, tag = columns[fmt.token_column], columns[fmt.tag_column]
      if check_tags:
        tagging_utils.check_tag(tag, fmt.scheme or "BIOES")
    except (IndexError, ValueError) as e:
      detail = str(e) if isinstance(e, ValueError) else (
          f"{len(columns)} columns, token column {fmt.token_column} / tag column "
          f"{fmt.tag_column} requested")
      raise input_files.data_error(path, line_number, detail) from None
    sentence.append((word, tag))
  flush()  # FIX: keep a last sentence that has no trailing blank line.
  return sentences


def tokenize_and_align(tokenizer, words: Sequence[str], cased: bool = False
                       ) -> List[List[str]]:
  """Word pieces of `["[CLS]"] + words + ["[SEP]"]`, one list per word
  (docs/data.md#tagging-word-pieces).

  Each word is cleaned (basic tokenizer's clean step); "[CLS]"/"[SEP]" stay
  single tokens; other words are lower-cased and accent-stripped (unless
  `cased`; the tasks never pass it, so `do_lower_case` is ignored, as in the
  original), split on punctuation and WordPiece-tokenized. No CJK splitting.
  A word that cleans to nothing gets [].
  """
  basic_tokenizer = tokenizer.basic_tokenizer
  tokenized_words = []
  for word in ["[CLS]"] + list(words) + ["[SEP]"]:
    word = basic_tokenizer.clean_text(tokenization.convert_to_unicode(word))
    if word in ("[CLS]", "[SEP]"):
      word_toks = [word]
    else:
      if not cased:
        word = basic_tokenizer.run_strip_accents(word.lower())
      word_toks = basic_tokenizer.run_split_on_punc(word)
    pieces: List[str] = []
    for word_tok in word_toks:
      pieces += tokenizer.wordpiece_tokenizer.tokenize(word_tok)
    tokenized_words.append(pieces)
  return tokenized_words


class TaggingExample(task.Example):
  """A tagged sentence.

  Args:
    eid: int. Sentence index in its split.
    task_name: str.
    words: the sentence's words.
    tags: the raw tags (one per word).
    is_token_level: bool. Keep the raw tags; otherwise re-encode in BIOES.
    label_mapping: {tag: label id}.
  """

  def __init__(self, eid: int, task_name: str, words: Sequence[str], tags: Sequence[str],
               is_token_level: bool, label_mapping: Mapping[str, int]):
    super().__init__(eid, task_name)
    self.words = list(words)
    if not is_token_level:
      tags = tagging_utils.convert_tags(tags, tagging_utils.LABEL_ENCODING)
    self.tags = list(tags)
    self.labels = [label_mapping[tag] for tag in self.tags]


class TaggingTask(task.Task):
  """A word-level tagging task read from column files (docs/finetuning.md#tagging,
  docs/finetuning.md#task-interface).

  Args:
    config: the `FinetuningConfig`.
    name: str. Task name.
    tokenizer: a `FullTokenizer`.
    is_token_level: bool. True: token accuracy on the raw tags; False:
      span-level F1 on BIOES-encoded tags.
    fmt: optional `ColumnFormat`; default `<split>.txt`, word first column,
      tag last column, whitespace-separated.
  """

  def __init__(self, config, name: str, tokenizer, is_token_level: bool,
               fmt: Optional[ColumnFormat] = None):
    super().__init__(config, name)
    self._tokenizer = tokenizer
    self._is_token_level = is_token_level
    self._fmt = fmt or ColumnFormat(files={split: split + ".txt" for split in LABEL_SPLITS})
    self._label_mapping_path = os.path.join(
        config.preprocessed_data_dir,
        ("debug_" if config.debug else "") + name + "_label_mapping.pkl")
    self._label_mapping: Optional[Dict[str, int]] = None

  @property
  def label_mapping_path(self) -> str:
    return self._label_mapping_path

  def get_data_file(self, split: str) -> str:
    """Path of `split`'s file (absolute names are used as they are)."""
    file_name = self._fmt.files.get(split, split + ".txt")
    return os.path.join(self.config.raw_data_dir(self.name), file_name)

  def _get_labeled_sentences(self, split: str) -> List[Sentence]:
    path = self.get_data_file(split)
    input_files.require_file(path, self.name, split, "Expected CoNLL format: one token per "
                             "line, blank lines between sentences.")
    return read_conll(path, self._fmt, DEBUG_MAX_SENTENCES if self.config.debug else None,
                      check_tags=not self._is_token_level)

  def get_examples(self, split: str) -> List[TaggingExample]:
    sentences = self._get_labeled_sentences(split)
    label_mapping = self.get_label_mapping(split, sentences)
    examples = []
    for i, (words, tags) in enumerate(sentences):
      try:
        examples.append(TaggingExample(i, self.name, words, tags, self._is_token_level,
                                       label_mapping))
      except KeyError as e:
        raise input_files.data_error(
            self.get_data_file(split), None,
            f"task {self.name}: tag {e.args[0]!r} of sentence {i + 1} is not in the label "
            f"mapping {self._label_mapping_path}; delete that file to rebuild it from the "
            "current data.") from None
    return examples

  def _encode(self, tags: Sequence[str]) -> List[str]:
    if self._is_token_level:
      return list(tags)
    return tagging_utils.convert_tags(tags, tagging_utils.LABEL_ENCODING)

  def debug_data_note(self) -> str:
    return f"first {DEBUG_MAX_SENTENCES + 1} sentences of each file"

  def get_label_mapping(self, provided_split: Optional[str] = None,
                        provided_sentences: Optional[List[Sentence]] = None) -> Dict[str, int]:
    """{encoded tag: id}: loaded from the pickle, else built from the data and written.

    Built as the sorted union of the encoded tags of the train/dev/test files
    that exist (`provided_sentences` stand in for `provided_split`'s file).
    """
    if self._label_mapping is not None:
      return self._label_mapping
    if os.path.exists(self._label_mapping_path):
      self._label_mapping = files.load_pickle(self._label_mapping_path)
      return self._label_mapping
    logger.info("Writing label mapping for task %s", self.name)
    tag_counts = collections.Counter()
    for split in LABEL_SPLITS:
      if split == provided_split and provided_sentences is not None:
        split_sentences = provided_sentences
      elif os.path.isfile(self.get_data_file(split)):
        split_sentences = self._get_labeled_sentences(split)
      else:
        continue
      for _, tags in split_sentences:
        tag_counts.update(self._encode(tags))
    label_mapping = {label: i for i, label in enumerate(sorted(tag_counts))}
    files.write_pickle(label_mapping, self._label_mapping_path)
    self._label_mapping = label_mapping
    return label_mapping

  def get_fingerprint(self) -> Dict[str, object]:
    fmt = self._fmt
    return dict(super().get_fingerprint(), is_token_level=self._is_token_level,
                files=dict(fmt.files), token_column=fmt.token_column,
                tag_column=fmt.tag_column, delimiter=fmt.delimiter, scheme=fmt.scheme,
                label_mapping=sorted(self.get_label_mapping().items()))

  def get_feature_specs(self) -> List[feature_spec.FeatureSpec]:
    max_seq_length = self.config.max_seq_length
    return [feature_spec.FeatureSpec(self.name + "_eid", []),
            feature_spec.FeatureSpec(self.name + "_labels", [max_seq_length]),
            feature_spec.FeatureSpec(self.name + "_labels_mask", [max_seq_length],
                                     is_int_feature=False),
            feature_spec.FeatureSpec(self.name + "_labeled_positions", [max_seq_length])]

  def featurize(self, example: TaggingExample, is_training: bool,
                log: bool = False) -> Dict[str, Any]:
    """Features of one sentence (docs/finetuning.md#tagging-features).

    Raises:
      ValueError: if one word alone has more pieces than fit (the original
        failed an assert).
    """
    del is_training  # Same features for training and prediction.
    max_seq_length = self.config.max_seq_length
    vocab = self._tokenizer.vocab
    words_to_tokens = tokenize_and_align(self._tokenizer, example.words)
    input_ids: List[int] = []
    tagged_positions: List[int] = []
    for word_tokens in words_to_tokens:
      # Quirk (docs/finetuning.md#quirks-and-fixes): the test counts all the words plus the
      # pieces so far, so sentences are cut earlier than needed.
      if len(words_to_tokens) + len(input_ids) + 1 > max_seq_length:
        input_ids.append(vocab["[SEP]"])
        break
      if "[CLS]" not in word_tokens and "[SEP]" not in word_tokens:
        tagged_positions.append(len(input_ids))
      input_ids.extend(vocab[token] for token in word_tokens)
    if len(input_ids) > max_seq_length:
      raise ValueError(
          f"Task {self.name}: sentence {example.eid} needs {len(input_ids)} word pieces "
          f"(> max_seq_length {max_seq_length}) because of a very long word; increase "
          "max_seq_length or clean the data.")

    def pad(values: List, value=0) -> List:
      return values + [value] * (max_seq_length - len(values))

    features = {
        "input_ids": pad(input_ids),
        "input_mask": pad([1] * len(input_ids)),
        "segment_ids": pad([1] * len(input_ids)),  # Quirk: segment 1 for every token.
        "task_id": self.task_id,
        self.name + "_eid": example.eid,
        self.name + "_labels": pad(example.labels[:max_seq_length]),
        self.name + "_labels_mask": pad([1.0] * len(tagged_positions), 0.0),
        self.name + "_labeled_positions": pad(tagged_positions),
    }
    if log:
      logger.info("*** Example ***")
      logger.info("eid: %d, words: %s", example.eid, " ".join(example.words))
      logger.info("tags: %s", " ".join(example.tags))
      logger.info("pieces: %s", " ".join(" ".join(t) for t in words_to_tokens))
      lengths = {"input_ids": len(input_ids), "segment_ids": len(input_ids),
                 self.name + "_labels": min(len(example.labels), max_seq_length),
                 self.name + "_labeled_positions": len(tagged_positions)}
      for key, length in lengths.items():
        logger.info("%s: %s", key, task.format_padded(features[key], length))
    return features

  def create_head(self, hidden_size: int) -> "TaggingHead":
    return TaggingHead(self.name, hidden_size, len(self.get_label_mapping()))

  def get_scorer(self, split: str = "dev") -> scorer.Scorer:
    del split
    fix = bool(getattr(self.config, "fix_tagging_loss_double_count", False))
    if self._is_token_level:
      return tagging_metrics.AccuracyScorer(fix_double_count=fix)
    return tagging_metrics.EntityLevelF1Scorer(self.get_label_mapping(), fix_double_count=fix)


class TaggingHead(task.TaskHead):
  """Per-word softmax classifier on the first word-piece of each word
  (docs/finetuning.md#tagging-head).

  Variables: `task_specific/<task>/dense/kernel` [H, C], `.../dense/bias` [C].

  Args:
    task_name: str.
    hidden_size: int. H.
    n_labels: int. C, size of the label mapping.
  """

  def __init__(self, task_name: str, hidden_size: int, n_labels: int):
    super().__init__(task_name)
    self.n_labels = n_labels
    with self.name_scope:
      self.dense = Dense(self.scope + "/dense", hidden_size, n_labels)

  def __call__(self, bert_output, features: Dict[str, tf.Tensor], training: bool,
               seed: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    del training, seed  # No dropout in this head.
    name = self.task_name
    sequence = tf.cast(bert_output.sequence_output, tf.float32)  # [B, L, H]
    positions = tf.cast(features[name + "_labeled_positions"], tf.int32)  # [B, L]
    reprs = tf.gather(sequence, positions, batch_dims=1)  # [B, L, H]
    logits = self.dense(reprs)  # [B, L, C]
    labels = tf.cast(features[name + "_labels"], tf.int32)  # [B, L]
    labels_mask = tf.cast(features[name + "_labels_mask"], tf.float32)  # [B, L]
    losses = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.one_hot(labels, self.n_labels), logits=logits)  # [B, L]
    losses = tf.reduce_sum(losses * labels_mask, axis=-1)  # [B]
    return losses, dict(loss=losses, logits=logits,
                        predictions=tf.argmax(logits, axis=-1, output_type=tf.int32),
                        labels=labels, labels_mask=labels_mask, eid=features[name + "_eid"])


class Chunking(TaggingTask):
  """CoNLL-2000 chunking (`chunk`): span-level F1 on BIOES-encoded chunk tags."""

  def __init__(self, config, tokenizer):
    super().__init__(config, "chunk", tokenizer, is_token_level=False)


# === Custom tagging tasks (task_configs) ===

_CUSTOM_KEYS = ("name", "type", "train_file", "dev_file", "test_file", "token_column",
                "tag_column", "scheme", "delimiter")


def _check_custom_entry(entry: Mapping[str, Any]) -> None:
  """Validates a tagging `task_configs` entry; errors name the task and the field."""
  where = f"task_configs entry {entry.get('name')!r}"
  unknown = [key for key in entry if key not in _CUSTOM_KEYS]
  if unknown:
    raise ValueError(f"{where}: unknown field(s) {unknown} for a tagging task; allowed "
                     f"fields: {list(_CUSTOM_KEYS)}.")
  if entry.get("type") != "tagging":
    raise ValueError(f"{where}: field 'type' must be \"tagging\"; got {entry.get('type')!r}.")
  for key in ("train_file", "dev_file", "test_file"):
    if key in entry and (not isinstance(entry[key], str) or not entry[key]):
      raise ValueError(f"{where}: field {key!r} must be a non-empty file name; got "
                       f"{entry[key]!r}.")
  for key in ("token_column", "tag_column"):
    value = entry.get(key)
    if key in entry and (not isinstance(value, int) or isinstance(value, bool)):
      raise ValueError(f"{where}: field {key!r} must be an integer column index; got "
                       f"{value!r}.")
  if entry.get("scheme", "BIO") not in tagging_utils.SCHEMES:
    raise ValueError(f"{where}: field 'scheme' must be one of {list(tagging_utils.SCHEMES)}; "
                     f"got {entry['scheme']!r}.")
  delimiter = entry.get("delimiter")
  if delimiter is not None and (not isinstance(delimiter, str) or not delimiter
                                or delimiter == "\n"):
    raise ValueError(f"{where}: field 'delimiter' must be a non-empty column separator such "
                     f"as \" \" or \"\\t\", or null for any whitespace; got {delimiter!r}.")


def make_custom_tagging_task(config, task_config: Mapping[str, Any], tokenizer) -> TaggingTask:
  """Builds a span-level tagging task from a `task_configs` entry.

  Fields: `name`, `type` ("tagging"), `train_file`/`dev_file`/`test_file`
  (default `<split>.txt`, relative to `raw_data_dir(name)` unless absolute),
  `token_column` (default 0), `tag_column` (default -1, the last),
  `scheme` of the files' tags, "BIO" (default) or "BIOES" (validated on
  reading; the model always trains on BIOES and is scored on spans), and
  `delimiter` (default null: any whitespace).

  Example:
    {"name": "ner", "type": "tagging", "train_file": "train.txt",
     "dev_file": "dev.txt", "token_column": 0, "tag_column": 3,
     "scheme": "BIO", "delimiter": " "}

  Raises:
    ValueError: an unknown field or a field of the wrong type or value
      (the message names the field).
  """
  _check_custom_entry(task_config)
  fmt = ColumnFormat(
      files={split: task_config.get(split + "_file", split + ".txt") for split in LABEL_SPLITS},
      token_column=task_config.get("token_column", 0),
      tag_column=task_config.get("tag_column", -1),
      delimiter=task_config.get("delimiter"),
      scheme=task_config.get("scheme", "BIO"))
  return TaggingTask(config, task_config["name"], tokenizer, is_token_level=False, fmt=fmt)
