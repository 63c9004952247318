"""Span question answering tasks: SQuAD 2.0 / 1.1 and the MRQA 2019 tasks
(docs/finetuning.md#question-answering).

Readers (docs/finetuning.md#qa-examples): SQuAD JSON (`<split>.json`, `<split>-debug.json` in
debug mode) and MRQA JSONL (`<split>.jsonl`, header line skipped, first 11
lines in debug mode). Answers are resolved for the train split only; an
answer whose offsets do not reproduce its text is logged, counted and
skipped (`<n> examples created, <m> failures`).

Featurization (docs/finetuning.md#qa-windows): `[CLS] question [SEP] doc-window [SEP]` windows of
`max_seq_length` tokens moving by `doc_stride`, max-context bookkeeping for
post-processing, answer-span improvement, feature ids `1000·eid + window`.

Head: `finetune.qa.qa_head.QAHead` (docs/finetuning.md#qa-head); post-processing and metrics:
`finetune.qa.qa_metrics.SpanBasedQAScorer` (docs/metrics.md#answer-extraction).

Quirk reproduced (docs/finetuning.md#quirks-and-fixes): an answer outside a training window
keeps the window with target [CLS] and `is_impossible = 0`.
Fixed: a document yielding >= 1000 windows raises instead of producing
colliding feature ids; a window budget <= 0 (max_seq_length too small for
max_query_length) raises instead of looping forever; a train question with no
answer that is not marked impossible is logged and counted as a failure (the
original crashed with an IndexError).
"""
from __future__ import annotations

import abc
import logging
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from finetune import feature_spec, input_files, task
from finetune.qa import mrqa_official_eval, qa_metrics
from finetune.qa.qa_head import QAHead
from model import tokenization

logger = logging.getLogger("electra")

MAX_WINDOWS_PER_EXAMPLE = 1000  # feature id = 1000 · eid + window index
# docs/hparams.md#fine-tuning-debug-mode: MRQA debug reads lines 0..10
MRQA_DEBUG_LINES = 11


class QAExample(task.Example):
  """One question about one context.

  Args:
    task_name: str.
    eid: int. Running index of the example in its split.
    qas_id: SQuAD question id (None for MRQA).
    qid: MRQA question id (None for SQuAD).
    question_text: str.
    doc_tokens: the context's whitespace-separated words (shared by the
      questions of one paragraph).
    orig_answer_text: answer text (train split only; "" if impossible).
    start_position, end_position: answer word indexes (train only; -1 if
      impossible).
    is_impossible: bool (SQuAD 2.0 train only).
  """

  def __init__(self, task_name: str, eid: int, qas_id: Optional[str], qid: Optional[str],
               question_text: str, doc_tokens: List[str],
               orig_answer_text: Optional[str] = None, start_position: Optional[int] = None,
               end_position: Optional[int] = None, is_impossible: bool = False):
    super().__init__(eid, task_name)
    self.qas_id = qas_id
    self.qid = qid
    self.question_text = question_text
    self.doc_tokens = doc_tokens
    self.orig_answer_text = orig_answer_text
    self.start_position = start_position
    self.end_position = end_position
    self.is_impossible = is_impossible

  def __repr__(self) -> str:
    return (f"QAExample(eid={self.eid}, id={self.qas_id or self.qid!r}, "
            f"question={self.question_text!r}, answer={self.orig_answer_text!r})")


class DocSpan(NamedTuple):
  """A window of the document's sub-tokens: `length` tokens from `start`."""
  start: int
  length: int


def _is_whitespace(c: str) -> bool:
  """The QA context splitter's whitespace: space, \\t, \\r, \\n and U+202F."""
  return c in (" ", "\t", "\r", "\n") or ord(c) == 0x202F


def split_context(text: str) -> Tuple[List[str], List[int]]:
  """Whitespace-splits a context (docs/finetuning.md#qa-examples).

  Returns:
    (doc_tokens, char_to_word_offset): the maximal runs of non-whitespace
    characters, and for every character the index of the last word started
    at or before it (-1 for leading whitespace).
  """
  doc_tokens: List[str] = []
  char_to_word_offset: List[int] = []
  prev_is_whitespace = True
  for c in text:
    if _is_whitespace(c):
      prev_is_whitespace = True
    else:
      if prev_is_whitespace:
        doc_tokens.append(c)
      else:
        doc_tokens[-1] += c
      prev_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def get_doc_spans(n_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> List[DocSpan]:
  """Sliding windows over `n_tokens` sub-tokens (docs/finetuning.md#qa-windows).

  Raises:
    ValueError: if `max_tokens_for_doc` or `doc_stride` is not positive.
  """
  if max_tokens_for_doc <= 0:
    raise ValueError(f"No room for document tokens: max_seq_length leaves "
                     f"{max_tokens_for_doc} tokens after the question and [CLS]/[SEP]; "
                     "increase max_seq_length or decrease max_query_length.")
  if doc_stride <= 0:
    raise ValueError(f"doc_stride must be positive; got {doc_stride}.")
  doc_spans = []
  start_offset = 0
  while start_offset < n_tokens:
    length = min(n_tokens - start_offset, max_tokens_for_doc)
    doc_spans.append(DocSpan(start_offset, length))
    if start_offset + length == n_tokens:
      break
    start_offset += min(length, doc_stride)
  return doc_spans


def check_is_max_context(doc_spans: Sequence[DocSpan], cur_span_index: int,
                         position: int) -> bool:
  """Whether window `cur_span_index` is the max-context window of sub-token `position`.

  Score of a window containing p: min(left context, right context) + 0.01 ·
  window length; the first window with the strictly highest score wins.
  """
  best_score = None
  best_span_index = None
  for span_index, doc_span in enumerate(doc_spans):
    end = doc_span.start + doc_span.length - 1
    if position < doc_span.start or position > end:
      continue
    score = min(position - doc_span.start, end - position) + 0.01 * doc_span.length
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return cur_span_index == best_span_index


def improve_answer_span(doc_tokens: Sequence[str], input_start: int, input_end: int,
                        tokenizer, orig_answer_text: str) -> Tuple[int, int]:
  """The first sub-span of [input_start, input_end] whose tokens spell the tokenized answer.

  E.g. answer "1895" in the word "(1895)": the word-level span covers "(",
  "1895", ")"; this narrows it to "1895". Unchanged if nothing matches.
  """
  tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
        return new_start, new_end
  return input_start, input_end


class _DocTokenization(NamedTuple):
  doc_tokens: List[str]       # the words (kept to compare identity)
  all_doc_tokens: List[str]   # sub-tokens
  tok_to_orig_index: List[int]
  orig_to_tok_index: List[int]


class QATask(task.Task):
  """A span-extraction QA task (docs/finetuning.md#question-answering,
  docs/finetuning.md#task-interface).

  Subclasses implement `get_data_file(split)` and `_read_paragraphs(split)`.

  Args:
    config: the `FinetuningConfig`.
    name: str. Task name.
    tokenizer: a `FullTokenizer`.
    v2: bool. SQuAD 2.0 semantics (unanswerable questions, null odds).
  """

  def __init__(self, config, name: str, tokenizer, v2: bool = False):
    super().__init__(config, name)
    self._tokenizer = tokenizer
    self.v2 = v2
    self._examples: Dict[str, List[QAExample]] = {}
    self._last_doc: Optional[_DocTokenization] = None

  # === Reading ===

  @abc.abstractmethod
  def get_data_file(self, split: str) -> str:
    """Path of the raw file of `split` (also read by the official evaluators)."""

  @abc.abstractmethod
  def _read_paragraphs(self, split: str) -> List[dict]:
    """The paragraph objects `{context, qas}` of `split`."""

  def get_examples(self, split: str) -> List[QAExample]:
    """Reads (once per split, then cached) the examples of `split`."""
    if split not in self._examples:
      examples: List[QAExample] = []
      failures = [0]
      path = self.get_data_file(split)
      for i, paragraph in enumerate(self._read_paragraphs(split)):
        try:
          self._add_examples(examples, failures, paragraph, split)
        except (KeyError, TypeError, IndexError, AttributeError) as e:
          raise input_files.data_error(
              path, None, f"paragraph {i + 1} is not in {self.data_format.upper()} format "
              f"({type(e).__name__}: {e}): each paragraph needs a \"context\" string and "
              "\"qas\", a list of questions with \"question\" and an id"
              + (" and, in the train split, answers" if split == "train" else "")
              + ".") from None
      logger.info("%d examples created, %d failures", len(examples), failures[0])
      self._examples[split] = examples
    return self._examples[split]

  def _add_examples(self, examples: List[QAExample], failures: List[int], paragraph: dict,
                    split: str) -> None:
    """Appends one example per question of `paragraph` (docs/finetuning.md#qa-examples)."""
    doc_tokens, char_to_word_offset = split_context(paragraph["context"])
    for qa in paragraph["qas"]:
      start_position = end_position = orig_answer_text = None
      is_impossible = False
      if split == "train":
        if self.v2:
          is_impossible = bool(qa["is_impossible"])
        if is_impossible:
          start_position, end_position, orig_answer_text = -1, -1, ""
        else:
          resolved = self._resolve_answer(qa, doc_tokens, char_to_word_offset)
          if resolved is None:
            failures[0] += 1
            continue
          orig_answer_text, start_position, end_position = resolved
      examples.append(QAExample(
          task_name=self.name, eid=len(examples), qas_id=qa.get("id"), qid=qa.get("qid"),
          question_text=qa["question"], doc_tokens=doc_tokens,
          orig_answer_text=orig_answer_text, start_position=start_position,
          end_position=end_position, is_impossible=is_impossible))

  @staticmethod
  def _resolve_answer(qa: dict, doc_tokens: List[str], char_to_word_offset: List[int]
                      ) -> Optional[Tuple[str, int, int]]:
    """(answer text, start word, end word) of the first answer, or None (logged) if broken."""
    answers = qa.get("detected_answers", qa.get("answers"))
    if not answers:
      logger.info("Question %s has no answer but is not marked impossible",
                  qa.get("id", qa.get("qid")))
      return None
    if "detected_answers" in qa:  # MRQA
      answer = qa["detected_answers"][0]
      answer_offset = answer["char_spans"][0][0]
    else:  # SQuAD
      answer = qa["answers"][0]
      answer_offset = answer["answer_start"]
    orig_answer_text = answer["text"]
    if answer_offset + len(orig_answer_text) - 1 >= len(char_to_word_offset):
      logger.info("End position is out of document!")
      return None
    start_position = char_to_word_offset[answer_offset]
    end_position = char_to_word_offset[answer_offset + len(orig_answer_text) - 1]
    # Keep only answers whose text is recovered from the document (offsets off
    # or odd Unicode otherwise); so not every training question is kept.
    actual_text = " ".join(doc_tokens[start_position:end_position + 1]).lower()
    cleaned_answer_text = " ".join(tokenization.whitespace_tokenize(orig_answer_text)).lower()
    if actual_text.find(cleaned_answer_text) == -1:
      logger.info("Could not find answer: '%s' in doc vs. '%s' in provided answer",
                  actual_text, cleaned_answer_text)
      return None
    return orig_answer_text, start_position, end_position

  # === Featurization ===

  def get_feature_specs(self) -> List[feature_spec.FeatureSpec]:
    return [feature_spec.FeatureSpec(self.name + "_eid", []),
            feature_spec.FeatureSpec(self.name + "_start_positions", []),
            feature_spec.FeatureSpec(self.name + "_end_positions", []),
            feature_spec.FeatureSpec(self.name + "_is_impossible", [])]

  def _tokenize_doc(self, doc_tokens: List[str]) -> _DocTokenization:
    """Sub-tokenizes the words; memoizes the last document (questions share paragraphs)."""
    if self._last_doc is not None and self._last_doc.doc_tokens is doc_tokens:
      return self._last_doc
    all_doc_tokens: List[str] = []
    tok_to_orig_index: List[int] = []
    orig_to_tok_index: List[int] = []
    for i, token in enumerate(doc_tokens):
      orig_to_tok_index.append(len(all_doc_tokens))
      for sub_token in self._tokenizer.tokenize(token):
        tok_to_orig_index.append(i)
        all_doc_tokens.append(sub_token)
    self._last_doc = _DocTokenization(doc_tokens, all_doc_tokens, tok_to_orig_index,
                                      orig_to_tok_index)
    return self._last_doc

  def _answer_token_span(self, example: QAExample, doc: _DocTokenization) -> Tuple[int, int]:
    """Sub-token (start, end) of a training answer; (-1, -1) if impossible."""
    if example.is_impossible:
      return -1, -1
    start = doc.orig_to_tok_index[example.start_position]
    if example.end_position < len(example.doc_tokens) - 1:
      end = doc.orig_to_tok_index[example.end_position + 1] - 1
    else:
      end = len(doc.all_doc_tokens) - 1
    return improve_answer_span(doc.all_doc_tokens, start, end, self._tokenizer,
                               example.orig_answer_text)

  def featurize(self, example: QAExample, is_training: bool, log: bool = False,
                for_eval: bool = False) -> List[Dict[str, object]]:
    """One feature dict per document window (docs/finetuning.md#qa-windows).

    Args:
      example: the question.
      is_training: add the training targets (`_start_positions`,
        `_end_positions`, `_is_impossible`).
      log: log the features of every window.
      for_eval: also return the post-processing fields `_doc_span_index`,
        `_tokens`, `_token_to_orig_map`, `_token_is_max_context` (never
        serialized).

    Raises:
      ValueError: the document yields >= 1000 windows, or no room is left for
        document tokens.
    """
    max_seq_length = self.config.max_seq_length
    query_tokens = self._tokenizer.tokenize(example.question_text)
    query_tokens = query_tokens[:self.config.max_query_length]
    doc = self._tokenize_doc(example.doc_tokens)
    if is_training:
      tok_start, tok_end = self._answer_token_span(example, doc)
    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3  # [CLS], [SEP], [SEP]
    doc_spans = get_doc_spans(len(doc.all_doc_tokens), max_tokens_for_doc,
                              self.config.doc_stride)
    if len(doc_spans) >= MAX_WINDOWS_PER_EXAMPLE:
      raise ValueError(
          f"Task {self.name}: example {example!r} yields {len(doc_spans)} windows; feature "
          f"ids 1000·eid + window need fewer than {MAX_WINDOWS_PER_EXAMPLE}. Increase "
          "doc_stride or max_seq_length, or split the context.")
    all_features = []
    for span_index, doc_span in enumerate(doc_spans):
      tokens, token_to_orig_map, token_is_max_context = _window_tokens(
          query_tokens, doc, doc_spans, span_index)
      segment_ids = [0] * (len(query_tokens) + 2) + [1] * (doc_span.length + 1)
      input_ids = self._tokenizer.convert_tokens_to_ids(tokens)
      padding = [0] * (max_seq_length - len(input_ids))
      features = {
          "task_id": self.task_id,
          self.name + "_eid": MAX_WINDOWS_PER_EXAMPLE * example.eid + span_index,
          "input_ids": input_ids + padding,
          "input_mask": [1] * len(input_ids) + padding,
          "segment_ids": segment_ids + padding,
      }
      if is_training:
        start_position, end_position = _window_positions(
            example.is_impossible, tok_start, tok_end, doc_span, len(query_tokens))
        features.update({self.name + "_start_positions": start_position,
                         self.name + "_end_positions": end_position,
                         self.name + "_is_impossible": int(example.is_impossible)})
      if log:
        self._log_window(example, span_index, tokens, token_to_orig_map,
                         token_is_max_context, features)
      if for_eval:
        features.update({self.name + "_doc_span_index": span_index,
                         self.name + "_tokens": tokens,
                         self.name + "_token_to_orig_map": token_to_orig_map,
                         self.name + "_token_is_max_context": token_is_max_context})
      all_features.append(features)
    return all_features

  def _log_window(self, example, span_index, tokens, token_to_orig_map,
                  token_is_max_context, features) -> None:
    """Logs one window's featurization (log_examples)."""
    logger.info("*** Example ***")
    logger.info("eid: %s, doc_span_index: %d", features[self.name + "_eid"], span_index)
    logger.info("tokens: %s", " ".join(tokens))
    logger.info("token_to_orig_map: %s",
                " ".join(f"{k}:{v}" for k, v in token_to_orig_map.items()))
    logger.info("token_is_max_context: %s",
                " ".join(f"{k}:{v}" for k, v in token_is_max_context.items()))
    for key in ("input_ids", "input_mask", "segment_ids"):
      logger.info("%s: %s", key, task.format_padded(features[key], len(tokens)))
    if self.name + "_start_positions" in features:
      start = features[self.name + "_start_positions"]
      end = features[self.name + "_end_positions"]
      logger.info("start_position: %d, end_position: %d, is_impossible: %s, answer: %s",
                  start, end, example.is_impossible, " ".join(tokens[start:end + 1]))

  # === Head and scorer ===

  def create_head(self, hidden_size: int) -> "QAHead":
    c = self.config
    return QAHead(self.name, hidden_size, joint_prediction=c.joint_prediction,
                  beam_size=c.beam_size, answerable_classifier=c.answerable_classifier,
                  answerable_uses_start_logits=c.answerable_uses_start_logits,
                  answerable_weight=c.answerable_weight)

  def get_scorer(self, split: str = "dev") -> qa_metrics.SpanBasedQAScorer:
    """A scorer that post-processes predictions for the examples of `split`.

    Built for the split actually predicted: the original always used `dev`,
    which broke SQuAD test-output writing (docs/finetuning.md#quirks-and-fixes).
    """
    return qa_metrics.SpanBasedQAScorer(self.config, self, split, self.v2)


def _window_tokens(query_tokens: List[str], doc: _DocTokenization,
                   doc_spans: Sequence[DocSpan], span_index: int
                   ) -> Tuple[List[str], Dict[int, int], Dict[int, bool]]:
  """`[CLS] query [SEP] window [SEP]`, and for each window position its word index
  and whether this window is its max-context window."""
  doc_span = doc_spans[span_index]
  tokens = ["[CLS]"] + query_tokens + ["[SEP]"]
  token_to_orig_map: Dict[int, int] = {}
  token_is_max_context: Dict[int, bool] = {}
  for i in range(doc_span.start, doc_span.start + doc_span.length):
    token_to_orig_map[len(tokens)] = doc.tok_to_orig_index[i]
    token_is_max_context[len(tokens)] = check_is_max_context(doc_spans, span_index, i)
    tokens.append(doc.all_doc_tokens[i])
  tokens.append("[SEP]")
  return tokens, token_to_orig_map, token_is_max_context


def _window_positions(is_impossible: bool, tok_start: int, tok_end: int, doc_span: DocSpan,
                      query_length: int) -> Tuple[int, int]:
  """Training targets in one window: answer positions, or (0, 0) = [CLS]."""
  doc_end = doc_span.start + doc_span.length - 1
  if is_impossible or not (tok_start >= doc_span.start and tok_end <= doc_end):
    return 0, 0  # Quirk: out-of-window answers keep the window, pointing at [CLS].
  doc_offset = query_length + 2
  return tok_start - doc_span.start + doc_offset, tok_end - doc_span.start + doc_offset


class SQuADTask(QATask):
  """SQuAD JSON files: `<raw_data_dir>/<split>[-debug].json`; question ids are `id`."""

  data_format = "squad"

  def get_data_file(self, split: str) -> str:
    return os.path.join(self.config.raw_data_dir(self.name),
                        split + ("-debug" if self.config.debug else "") + ".json")

  def debug_data_note(self) -> str:
    return "<split>-debug.json instead of <split>.json"

  def _read_paragraphs(self, split: str) -> List[dict]:
    path = self.get_data_file(split)
    debug = (" (debug mode reads <split>-debug.json, e.g. a small slice of "
             f"{split}.json)" if self.config.debug else "")
    input_files.require_file(
        path, self.name, split, f"Expected <data_dir>/finetuning_data/{self.name}/"
        f"{os.path.basename(path)} in SQuAD JSON format{debug}.")
    data = input_files.load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
      raise input_files.data_error(path, None, "not a SQuAD file: no top-level \"data\" list.")
    try:
      return [paragraph for article in data["data"] for paragraph in article["paragraphs"]]
    except (KeyError, TypeError) as e:
      raise input_files.data_error(path, None, "not a SQuAD file: every entry of \"data\" "
                                   f"needs a \"paragraphs\" list ({type(e).__name__}: {e})."
                                   ) from None


class MRQATask(QATask):
  """MRQA JSONL files: `<raw_data_dir>/<split>.jsonl` (first 11 lines in debug mode); ids `qid`."""

  data_format = "mrqa"

  def get_data_file(self, split: str) -> str:
    return os.path.join(self.config.raw_data_dir(self.name), split + ".jsonl")

  def debug_data_note(self) -> str:
    return f"first {MRQA_DEBUG_LINES} lines (header included) of each .jsonl file"

  def _read_paragraphs(self, split: str) -> List[dict]:
    path = self.get_data_file(split)
    input_files.require_file(path, self.name, split, f"Expected <data_dir>/finetuning_data/"
                             f"{self.name}/{os.path.basename(path)} in MRQA JSONL format.")
    return list(mrqa_official_eval.read_mrqa_lines(
        self.get_data_file(split), MRQA_DEBUG_LINES if self.config.debug else None))


class SQuAD(SQuADTask):
  """SQuAD 2.0 (`squad`): unanswerable questions, null odds, `qa_na_threshold`."""

  def __init__(self, config, tokenizer):
    super().__init__(config, "squad", tokenizer, v2=True)


class SQuADv1(SQuADTask):
  """SQuAD 1.1 (`squadv1`)."""

  def __init__(self, config, tokenizer):
    super().__init__(config, "squadv1", tokenizer)


class NewsQA(MRQATask):
  def __init__(self, config, tokenizer):
    super().__init__(config, "newsqa", tokenizer)


class NaturalQuestions(MRQATask):
  def __init__(self, config, tokenizer):
    super().__init__(config, "naturalqs", tokenizer)


class SearchQA(MRQATask):
  def __init__(self, config, tokenizer):
    super().__init__(config, "searchqa", tokenizer)


class TriviaQA(MRQATask):
  def __init__(self, config, tokenizer):
    super().__init__(config, "triviaqa", tokenizer)
