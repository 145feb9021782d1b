"""Answer metrics for document VQA, charts and VQAv2, as the reference implementations compute them.

Each function scores one prediction against every acceptable reference answer and returns a
number in [0, 1]; the corpus score is the mean over questions. Pure Python (no torch import).

- ANLS: the DocVQA / InfoVQA RRC definition as lmms-eval (``lmms_eval/api/metrics.py: anls``) and
  VLMEvalKit (``vlmeval/dataset/utils/vqa_eval.py: anls_compute, hit_calculate``) implement it:
  both strings stripped, lower-cased and whitespace-collapsed, Levenshtein distance between them
  divided by the longer length, 1 - that for the closest reference, and 0 when below the threshold
  (a similarity of exactly 0.5 is kept). They differ in the length: lmms-eval divides by the longer
  *raw* string (``len(x.upper())``), VLMEvalKit by the longer *normalized* one.
- Relaxed accuracy (ChartQA): pix2struct's ``relaxed_correctness`` (google-research/pix2struct
  metrics.py, copied by VLMEvalKit): numbers within 5% relative error, a trailing ``%`` divides by
  100, a zero or non-numeric target falls back to case-insensitive exact match; best reference.
  Like pix2struct, neither string is stripped (``"Yes\n"`` is not ``"Yes"``; Python's ``float``
  itself ignores surrounding whitespace, so ``"12\n"`` still equals ``"12"``); lmms-eval's
  ChartQA copy is the same. ``strip="prediction"`` strips the prediction only, as VLMEvalKit's
  ChartQA scoring does (``vqa_eval.py: process_line``); ``strip=True`` strips both (an option
  of docvlm's, no reference's).
- VQAv2 accuracy: the official GT-Vision-Lab ``vqaEval.py`` (``evaluate``): newlines and tabs
  become spaces and both sides are stripped; only when the human answers disagree
  (``len(set(gtAnswers)) > 1``) are the human answers *and* the prediction put through its answer
  normalization (punctuation rules, number words, articles, contractions), so ``no!`` against ten
  ``no`` scores 0; then min(1, matches / 3) averaged over the 10 leave-one-out subsets of the human
  answers. ``normalization="always"`` normalizes both sides always, as VLMEvalKit does;
  ``normalization="lmms-eval"`` is lmms-eval's mix: the prediction always normalized (lower-cased,
  commas and "?" removed, "'s" split off first), the human answers only when they disagree.
- Exact match: VLMEvalKit's ``accuracy`` method (stripped, case-insensitive equality, best reference).
- Contains: OCRBench's rule (the lower-cased, stripped reference occurs in the prediction).
"""

from __future__ import annotations

import re
from typing import Sequence

from rapidfuzz.distance import Levenshtein


def _collapse(text: str) -> str:
    return " ".join(text.strip().lower().split())


def anls(prediction: str, references: Sequence[str], threshold: float = 0.5, denominator: str = "raw") -> float:
    """Average Normalized Levenshtein Similarity of one answer (see the module docstring)."""
    if denominator not in ("raw", "normalized"):
        raise ValueError(f"ANLS denominator must be 'raw' or 'normalized', not {denominator!r}")
    predicted = _collapse(prediction)
    best = 0.0
    for reference in references:
        expected = _collapse(reference)
        distance = Levenshtein.distance(expected, predicted)
        if denominator == "raw":
            # lmms-eval measures the raw strings through .upper(), which can lengthen some letters (ß -> SS).
            length = max(len(reference.upper()), len(prediction.upper()))
        else:
            length = max(len(expected), len(predicted))
        best = max(best, 1.0 - (distance / length if length else 0.0))
    return 0.0 if best < threshold else best


def _to_float(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text.rstrip("%")) / 100.0
        return float(text)
    except ValueError:
        return None


RELAXED_STRIPS = (False, "prediction", True)
"""``relaxed_strip`` values: nothing stripped (pix2struct, lmms-eval), the prediction only
(VLMEvalKit), both sides (a docvlm option)."""


def relaxed_correct(prediction: str, target: str, tolerance: float = 0.05, strip: bool | str = False) -> bool:
    """pix2struct's relaxed correctness of one answer against one target (``strip``: one of
    :data:`RELAXED_STRIPS`)."""
    if strip not in RELAXED_STRIPS:
        raise ValueError(f"relaxed_strip must be one of {RELAXED_STRIPS}, not {strip!r}")
    if strip:
        prediction = prediction.strip()
    if strip is True:
        target = target.strip()
    predicted, expected = _to_float(prediction), _to_float(target)
    # ``expected`` is falsy for a zero target: relative error is undefined, so pix2struct compares text.
    if predicted is not None and expected:
        return abs(predicted - expected) / abs(expected) <= tolerance
    return prediction.lower() == target.lower()


def relaxed_accuracy(prediction: str, references: Sequence[str], tolerance: float = 0.05,
                     strip: bool | str = False) -> float:
    return float(any(relaxed_correct(prediction, r, tolerance, strip) for r in references))


def exact_match(prediction: str, references: Sequence[str]) -> float:
    predicted = prediction.strip().lower()
    return float(any(r.strip().lower() == predicted for r in references))


def contains(prediction: str, references: Sequence[str]) -> float:
    predicted = prediction.lower().strip().replace("\n", " ")
    return float(any(r.lower().strip().replace("\n", " ") in predicted for r in references))


# --------------------------------------------------------------------------------------------
# VQAv2: the official answer normalization (GT-Vision-Lab/VQA, vqaEval.py), tables verbatim in
# meaning. Quirks kept on purpose so scores match published numbers:
# - a punctuation mark is deleted when it touches a space or when the text holds a digit-comma-digit
#   group ("1,000" -> "1000"), otherwise it becomes a space ("yes/no" -> "yes no");
# - a period is deleted unless a digit follows it ("2.5" keeps its point); the original pattern
#   ``(?!<=\d)`` was meant as a look-behind but is a look-ahead that never blocks, and ``re.UNICODE``
#   (== 32) is passed as the *count*, so at most 32 periods go; count=32 keeps that;
# - colons and apostrophes are not in the list, so "don't" survives and "dont" becomes "don't".

_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}


def _vqa_punctuation(text: str, comma: re.Pattern = _COMMA_STRIP) -> str:
    out = text
    has_digit_comma = comma.search(text) is not None
    for mark in _PUNCTUATION:
        if mark + " " in text or " " + mark in text or has_digit_comma:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_STRIP.sub("", out, count=32)


def _vqa_digits_articles(text: str) -> str:
    kept = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    kept = [word for word in kept if word not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(word, word) for word in kept)


VQA_NORMALIZATIONS = ("official", "always", "lmms-eval")
_LMMS_COMMA = re.compile(r"(?<=\d)(\,)+(?=\d)")
"""lmms-eval's digit-comma-digit test (its EvalAIAnswerProcessor, from MMF): also "1,,000"."""


def _clean(answer: str) -> str:
    """What vqaEval.py does to every answer and prediction: newlines and tabs to spaces, strip."""
    return answer.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_answer(answer: str) -> str:
    return _vqa_digits_articles(_vqa_punctuation(_clean(answer)))


def _lmms_eval_normalize(answer: str) -> str:
    return _vqa_digits_articles(_vqa_punctuation(_clean(answer), _LMMS_COMMA))


def _lmms_eval_prediction(prediction: str) -> str:
    """lmms-eval's EvalAIAnswerProcessor: lower-cased, commas and question marks removed, "'s"
    split off ("man's" -> "man 's"), then cleaned and normalized."""
    return _lmms_eval_normalize(prediction.lower().replace(",", "").replace("?", "").replace("'s", " 's"))


VQA_SINGLE_REFERENCE = ("exact", "leave_one_out")


def vqa_accuracy(prediction: str, references: Sequence[str], normalization: str = "official",
                 single_reference: str = "exact") -> float:
    """VQAv2 accuracy: mean over each human answer left out of min(1, matching others / 3).

    ``official`` (GT-Vision-Lab vqaEval.py): both sides are cleaned (newlines/tabs to spaces,
    stripped) and normalized only when the human answers differ after cleaning. ``always``
    (VLMEvalKit): both sides normalized whatever the answers. ``lmms-eval`` (its
    ``vqav2_process_results``): the prediction always goes through its EvalAIAnswerProcessor, the
    answers are cleaned and, only when they differ, normalized (and the prediction once more). With
    a single reference the leave-one-out formula is always 0; ``single_reference="exact"`` (the
    default, a deviation from all three) scores that case as (cleaned or normalized) exact match,
    ``"leave_one_out"`` keeps their 0.
    """
    if normalization not in VQA_NORMALIZATIONS:
        raise ValueError(f"VQA normalization must be one of {VQA_NORMALIZATIONS}, not {normalization!r}")
    if single_reference not in VQA_SINGLE_REFERENCE:
        raise ValueError(f"VQA single_reference must be one of {VQA_SINGLE_REFERENCE}, not {single_reference!r}")
    predicted, answers = _clean(prediction), [_clean(r) for r in references]
    if normalization == "lmms-eval":
        predicted = _lmms_eval_prediction(predicted)
        if len(set(answers)) > 1:
            predicted = _lmms_eval_normalize(predicted)
            answers = [_lmms_eval_normalize(a) for a in answers]
    elif normalization == "always" or len(set(answers)) > 1:
        predicted = normalize_vqa_answer(predicted)
        answers = [normalize_vqa_answer(a) for a in answers]
    if len(answers) == 1 and single_reference == "exact":
        return float(answers[0] == predicted)
    matches = sum(a == predicted for a in answers)
    scores = [min(1.0, (matches - (a == predicted)) / 3) for a in answers]
    return sum(scores) / len(scores)
