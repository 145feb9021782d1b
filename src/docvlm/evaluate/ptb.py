"""coco-caption's caption tokenization, re-implemented in pure Python (no Java).

coco-caption (pycocoevalcap ``PTBTokenizer``) runs Stanford CoreNLP 3.4.1's ``PTBTokenizer
-preserveLines -lowerCase`` on every caption and then drops the tokens ``'' ' `` ` . ? ! , : - --
... ;``. BLEU-4 and CIDEr-D are computed on what is left, so published COCO numbers depend on that
tokenizer. Java is not guaranteed on a user's machine and the jar ships inside a ~100 MB wheel, so
this module reproduces its behaviour on caption text, written from its observed output (the
``tests/fixtures/caption`` fixture holds the Java tokenizer's output that the tests compare with):

- lower-cased; words keep inner hyphens, periods, slashes, ``@`` and ``_`` (``t-shirt``,
  ``www.a.com``, ``and/or``), numbers keep ``.,:/`` between digits and a leading sign (``1,000``,
  ``10:30``, ``-5``); a decimal or clock number followed by letters is split (``3.5m`` -> ``3.5 m``,
  but ``5km`` stays); a whole number followed by a fraction is one token joined by U+00A0
  (``3 1/2``);
- clitics split off: ``'s 'm 'd 're 've 'll`` and ``n't`` (``can't`` -> ``ca n't``), ``cannot``,
  ``gonna gotta wanna lemme gimme`` (-> ``gon na`` ...), ``'tis 'twas`` (-> ``'t is``); a plural
  possessive's apostrophe is dropped (``dogs'`` -> ``dogs``); ``'em 'til 'cause 'n' '90s`` and
  inner apostrophes (``o'clock``) stay;
- a final period stays on single letters, letter-period sequences (``u.s.``, ``a.m.``) and the
  abbreviations in :data:`ABBREVIATIONS` (``mr.``, ``st.``, ``etc.``; ``no.`` and ``ca.`` only
  before a number); otherwise it is split off and dropped;
- brackets become ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-`` and are *kept* (coco-caption's filter
  lists them upper-case, after the tokenizer has lower-cased them); quotes, dashes and ellipses
  (ASCII or typographic) are dropped; ``$ % # & * = + | ~ ^`` become tokens of their own
  (``$5`` -> ``$ 5``; ``#1`` -> ``# 1`` but ``#tag`` stays; ``AT&T`` and ``A+B`` stay when
  upper-case on both sides, ``C++`` stays); a ``+`` before a digit is the number's sign
  (``2+2`` -> ``2 +2``, but ``10+`` -> ``10 +``); ``£`` becomes ``#``, ``€`` ``$`` and ``¢``
  ``cents`` (PTB's currency normalization); runs of ``!``/``?`` longer than one are kept as one
  token (``!!``);
- the punctuation of other scripts (CJK ``、。``, full-width ``，！？（）``, Arabic ``، ؛ ؟``,
  Devanagari ``।``, Spanish ``¡ ¿``), box drawing and dingbats (``★ ✔ ❤``) are tokens of their
  own and are kept (coco-caption's filter does not list them); clitics standing alone keep their
  apostrophe (``dog 's`` as in already tokenized captions, ``U.S.'s`` -> ``u.s. 's``);
- what CoreNLP's lexer cannot tokenize it deletes, and the deletion ends the token
  (``dog🐶cat`` -> ``dog cat``): characters outside the Basic Multilingual Plane (most emoji),
  variation selectors (the U+FE0F of ``❤️``), bidi and invisible format characters, most currency
  signs (``₹ ₩ ₽``); CJK corner and angle brackets (``「」《》``) are dropped as quotes.

Not reproduced (rare in captions): SGML tags, phone numbers, ``j'ai``-style elisions (PTB splits
them; ``l'amour`` and ``o'clock`` stay whole here as there), ``don'ts``, the many BMP characters
outside the blocks above that PTB 3.4.1's Unicode tables do not know (it deletes them; here they
stay in their word), typographic apostrophes inside words (``ma’am``: PTB keeps ``’``, here
``'``), and two effects of coco-caption
tokenizing a whole corpus as the lines of one file: a rule may look into the next caption (``No.``
keeps its period when the next caption starts with a digit), and the very last caption of the file
has nothing after it, so a final clitic stays unsplit and loses its apostrophe (``you've`` at the
very end -> ``you ve``). ``tests/test_caption_reference.py`` checks 1 590 captions against the Java
tokenizer's stored output, and BLEU-4/CIDEr-D of 60 untokenized corpora against the whole
coco-caption pipeline; ``tests/test_ptb_review.py`` holds Java's tokens for the cases above.
"""

from __future__ import annotations

import re

DROPPED = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"])
"""coco-caption's ``PUNCTUATIONS`` as they can still match after lower-casing (its ``-LRB-``
and the like never do)."""

ABBREVIATIONS = frozenset("""
adm al ala alex apr ariz assn atty attys aug ave bancorp bhd blvd brig bros calif capt cf cie cmdr co
col colo comdr conn corp cos cpl dak dec dept det dr drs elec esq est etc ext feb fla fri ft ga gen gov
govs hon inc ind intl invt jan jos jr jul jun kan kans ky lieut lt ltd maj mar md messrs mich minn mo
mon mont mr mrs ms mt natl neb nev nov oct okla penn pfc ph plc pres prof profs pvt rd rep reps rev sen
sens sep sept seq sgt spc sq sr st ste supt supts sys tel tenn thu thurs treas tue tues univ va vs vt
wed wis wisc wm wyo ph.d ed.d
""".split())
"""Words whose final period PTBTokenizer keeps whatever follows, in any case (observed: the Java
tokenizer on each word lower-case, capitalized and upper-case, before a lower-case word, a
capitalized word, a number and the end of the caption)."""
CAPITALIZED_ABBREVIATIONS = frozenset("ark del ill la mass miss ore pa tex wash".split())
"""Kept only when not written lower-case (``Pa.`` but ``pa.`` is split)."""
NOT_UPPER_ABBREVIATIONS = frozenset("mfg mtg pty ptys".split())
"""Kept unless written all upper-case."""
NUMBER_ABBREVIATIONS = frozenset("art ca fig figs no nos op pp prop".split())
"""Kept only before a number (``No. 5``, ``fig. 3``)."""
SPLIT_WORDS = {"cannot": 3, "gonna": 3, "gotta": 3, "wanna": 3, "lemme": 3, "gimme": 3}
"""Words PTB splits after so many letters (``gon na``)."""
APOSTROPHE_WORDS = re.compile(r"'(?:em|till?|cause|n'?|[2-9]0s|s|m|d|re|ve|ll)", re.IGNORECASE)
"""Words that start with an apostrophe and stay whole (a clitic standing alone, as in already
tokenized text: "dog 's")."""
_PERIOD_CLITIC = re.compile(r"(.+\.)('(?:s|m|d|re|ve|ll))", re.IGNORECASE)
"""A clitic after a period ("U.S.'s"): split off, the word before keeps its period only where PTB
keeps it anyway ("u.s. 's", "dog 's")."""

_CHARACTERS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2039": "'", "\u203a": "'",
    "\u201c": '"', "\u201d": '"', "\u201f": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": " -- ", "\u2014": " -- ", "\u2015": " -- ", "\u2026": " ... ",
    "\u00a3": "#", "\u20ac": "$",
    # A fraction character becomes a token of its own, never joined to a number before it.
    "\u00bc": " \x001/4 ", "\u00bd": " \x001/2 ", "\u00be": " \x003/4 ", "\u2153": " \x001/3 ", "\u2154": " \x002/3 ",
    "\u200b": " ", "\u200c": " ", "\u200d": " ", "\u200e": " ", "\u200f": " ", "\ufeff": " ",
    "\u00ad": "",  # soft hyphen: removed from words
    "\u00a2": " cents ", "\u00a4": "$", "\u20a0": "$",
})
_DELETED = re.compile("[\U00010000-\U0010ffff\ufe00-\ufe0f\u202a-\u202e\u2060-\u206f\u2012\u2024\u2025\u2027"
                      "\u203c\u203d\u2047-\u2049\u20a1-\u20a3\u20a5-\u20c0\u3008-\u3011\u3014-\u301f\u3030"
                      "\ufe10-\ufe6f]")
"""Characters the lexer deletes (it cannot tokenize them) or turns into quotes that are dropped;
either way they end the token they stand in: characters outside the Basic Multilingual Plane
(most emoji), variation selectors (the U+FE0F of "❤️"), bidi and invisible format characters,
‒ ‥ ‼ ⁉, most currency signs (₹ ₩ ₽ ...), CJK angle and corner brackets, CJK compatibility
forms (observed on the Java tokenizer, each character between two letters)."""
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,:/]\d+)*|\.\d+)")
_NUMBER_UNIT = re.compile(r"(\d+[.:]\d+(?:[.,:/]\d+)*)([^\W\d_]+)")
_FRACTION = re.compile(r"[0-9]+/[0-9]+")
_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"([+-]\d+(?:[.,:]\d+)*)([^\d.,:].*)")
"""A signed number takes no slash or letters: "-1/2" -> "-1 / 2", "-5pm" -> "-5 pm"."""
_ACRONYM = re.compile(r"[^\W\d_](?:\.[^\W\d_])*")
_CLITIC = re.compile(r"(.*[^\W_])('(?:s|m|d|re|ve|ll))", re.IGNORECASE)
_NOT = re.compile(r"(.*[^\W\d_])(n't)", re.IGNORECASE)
_SYMBOLS = ("\u00a6-\u00a9\u00ac\u00ae-\u00b3\u00b6\u00b7\u00b9\u00d7\u00f7\u2020-\u2023\u2032-\u2038\u2044"
            "\u2100-\u214f\u2190-\u23ff\u2500-\u2bff"
            # Punctuation of other scripts, also kept by coco-caption's filter: ¡ ¿ ¥ ´ ¸, Armenian,
            # Hebrew and Arabic (، ؛ ؟ ٪ ۔), Devanagari danda, ‖ ‰ ※ ‾, CJK 、 。, full-width forms.
            "\u00a1\u00a5\u00b4\u00b8\u00bf\u0589\u05be\u05c0\u05c3\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060c"
            "\u0614\u061b\u061e\u061f\u066a\u066d\u06d4\u0964\u0965\u2016\u2017\u2030\u2031\u203b\u203e-\u2042"
            "\u20a4\u3001\u3002\u3012\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\uffe0\uffe1\uffe5\uffe6")
"""Symbols and punctuation PTB makes tokens of their own (degree sign, superscripts, arrows, math,
box drawing, dingbats, the punctuation of other scripts ...), observed on the Java tokenizer."""
_SEPARATORS = "()\\[\\]{}\"`=|~^%$;\u201e\u201a" + _SYMBOLS
# Pieces of a whitespace-separated chunk: separators that are always tokens of their own, runs of
# asterisks, dots, dashes and !/?, then anything else up to the next separator.
_PIECES = re.compile(rf"""
    (?P<sep>[{_SEPARATORS}]|\*+)
  | (?P<dots>\.{{2,}})
  | (?P<dashes>-{{2,}})
  | (?P<bangs>[!?]+)
  | (?P<other>[^{_SEPARATORS}*!?]+?)(?=[{_SEPARATORS}*!?]|\.{{2,}}|-{{2,}}|$)
""", re.VERBOSE)
_URL = re.compile(r"https?://[^\"<>|()]*[^\"<>|.!?(){},-]")
_INNER_PUNCTUATION = re.compile(r"(?<!\d)[,:]|[,:](?!\d)")
_UPPER_PLUS = re.compile(r"[A-Z]+(?:\+[A-Z]+)+")
"""Upper-case letters joined by "+" stay one token ("A+B"), as "AT&T" does."""
_UPPER_AMPERSAND = re.compile(r"[A-Z]+(?:&[A-Z]+)+")
SENTENCE_STARTS = frozenset("""
About According Additionally After An A As At But Earlier He Her Here However If In It Last Many More
Mr. Ms. Now Once One Other Our She Since So Some Such That The Then There These They This We When While
What Yet You""".split())
"""Capitalized words before which a single letter's period ends a sentence (observed, case-sensitive)."""
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


def ptb_tokenize(text: str) -> list[str]:
    """The tokens coco-caption's PTBTokenizer (plus its punctuation filter) gives ``text``."""
    text = _DELETED.sub(" ", text.translate(_CHARACTERS))
    chunks = text.split()
    tokens: list[str] = []
    for i, chunk in enumerate(chunks):
        following = chunks[i + 1] if i + 1 < len(chunks) else ""
        tokens += _chunk(chunk, following)
    tokens = [t.lstrip("\x00") for t in _join_fractions(tokens)]
    return [t.lower() for t in tokens if t.lower() not in DROPPED and t != '"']


def _join_fractions(tokens: list[str]) -> list[str]:
    """``3 1/2`` is one token in PTB, its space turned into U+00A0."""
    out: list[str] = []
    for token in tokens:
        if out and _FRACTION.fullmatch(token) and _DIGITS.fullmatch(out[-1]):
            out[-1] += "\u00a0" + token
        else:
            out.append(token)
    return out


def _chunk(chunk: str, following: str) -> list[str]:
    tokens: list[str] = []
    url = _URL.match(chunk)
    if url:  # a URL is one token, up to its trailing punctuation
        tokens.append(url.group())
        chunk = chunk[url.end():]
    previous = ""  # the kind of the piece before: dots join a word only, never a symbol ("x²...")
    for match in _PIECES.finditer(chunk):
        kind, piece = match.lastgroup, match.group()
        before, previous = previous, kind
        if kind == "sep":
            tokens.append(_BRACKETS.get(piece, piece))
        elif kind == "bangs":
            tokens.append(piece)
        elif kind == "dots" and before == "other" and tokens[-1][:1] != "'" and \
                _keeps_period(tokens[-1] + ".", following):
            tokens[-1] += "."  # "etc..." -> "etc." and the rest of the dots
        elif kind in ("dots", "dashes"):
            tokens.append("...")  # dropped either way
        else:
            rest = chunk[match.end():]
            tokens += _word_tokens(piece, following, not rest, rest[:1] == ";")
    return tokens


def _word_tokens(piece: str, following: str, ends_chunk: bool, before_semicolon: bool) -> list[str]:
    """A piece without brackets, quotes or symbols: punctuation around it, then the word."""
    lead: list[str] = []
    trail: list[str] = []
    while piece:
        last = piece[-1]
        if last in ",;:-" or (last in "_@/" and len(piece) > 1) or \
                (last == "'" and not _apostrophe_word(piece, ends_chunk)):
            trail.insert(0, last)
            piece = piece[:-1]
        elif last == "." and not (before_semicolon and not trail) and not (trail and trail[0] in ",;:") \
                and not _keeps_period(piece, following if ends_chunk and not trail else ""):
            # A period before , ; : stays on its word, whatever the word.
            trail.insert(0, ".")
            piece = piece[:-1]
        else:
            break
    while piece:
        if piece.startswith("''"):  # a closing double quote written with apostrophes
            lead.append("''")
            piece = piece[2:]
        elif piece[0] in ",;:'" and not (piece[0] == "'" and _apostrophe_word(piece, ends_chunk and not trail)):
            if piece[0] == "'" and piece[1:2].lower() == "t" and piece[1:].lower() in ("tis", "twas"):
                break
            lead.append(piece[0])
            piece = piece[1:]
        elif piece[0] in "_/" and len(piece) > 1:
            lead.append(piece[0])
            piece = piece[1:]
        elif piece[0] == "-" and not _NUMBER.match(piece):
            lead.append("-")
            piece = piece[1:]
        elif piece[0] == "#" and piece[1:2].isdigit():
            lead.append("#")
            piece = piece[1:]
        else:
            break
    clitic = _PERIOD_CLITIC.fullmatch(piece)
    if clitic:
        return lead + _word_tokens(clitic.group(1), clitic.group(2), True, False) + [clitic.group(2)] + trail
    # Inside a word, a comma or colon splits it unless digits stand on both sides ("1,000", "10:30").
    words = [piece] if _URL.fullmatch(piece) else [w for w in _INNER_PUNCTUATION.split(piece) if w]
    return lead + [t for w in words for t in _split_word(w)] + trail


def _apostrophe_word(piece: str, ends_chunk: bool) -> bool:
    """``'em``, ``'til``, ``'n'``, ``'90s`` ...; ``'50`` only when a space follows it."""
    return bool(APOSTROPHE_WORDS.fullmatch(piece) or (ends_chunk and re.fullmatch(r"'\d\d", piece)))


def _keeps_period(piece: str, following: str) -> bool:
    word = piece[:-1].lstrip(",;:'-")  # leading punctuation is split off later
    if not word or word.endswith(".") or APOSTROPHE_WORDS.fullmatch(piece[:-1].lstrip(",;:-")):
        return False  # "'s." is "'s" and a period, though "s." would keep it
    unit = _NUMBER_UNIT.fullmatch(word) or _SIGNED.fullmatch(word)
    if unit:  # "3.5m." -> "3.5" "m."
        word = unit.group(2)
    if "&" in word and not _UPPER_AMPERSAND.fullmatch(word):  # "at&t." -> "at" "&" "t."
        word = word.rsplit("&", 1)[1]
    if len(word) == 1 and following in SENTENCE_STARTS:
        return False  # "A. The dog": PTB takes "A." for the end of a sentence
    lower = word.lower()
    if _ACRONYM.fullmatch(word) or lower in ABBREVIATIONS:
        return True
    if (lower in CAPITALIZED_ABBREVIATIONS and word != lower) or (lower in NOT_UPPER_ABBREVIATIONS
                                                                   and word != word.upper()):
        return True
    return lower in NUMBER_ABBREVIATIONS and following[:1].isdigit()


def _split_word(word: str) -> list[str]:
    """Clitics, contractions, ampersands and number-unit pairs inside one word.

    Iterative, not recursive: a looping model can glue thousands of pieces into one word
    (``a+a+a+...``), deeper than Python's recursion limit."""
    tokens: list[str] = []
    stack: list[tuple[bool, str]] = [(True, word)]  # (still to split, text), next piece on top
    while stack:
        more, text = stack.pop()
        pieces = _split_once(text) if more and text else None
        if pieces is None:
            if text:
                tokens.append(text)
        else:
            stack.extend(reversed(pieces))
    return tokens


def _split_once(word: str) -> list[tuple[bool, str]] | None:
    """One split of ``word``: its pieces, each flagged whether it is split further; ``None`` when
    the word stays whole."""
    lower = word.lower()
    if lower in SPLIT_WORDS:
        cut = SPLIT_WORDS[lower]
        return [(False, word[:cut]), (False, word[cut:])]
    if lower in ("'tis", "'twas"):
        return [(False, word[:2]), (False, word[2:])]
    plus = word.find("+")
    if plus >= 0 and lower != "c++" and not _UPPER_PLUS.fullmatch(word):
        # "+" is a token, or the sign of the number after it ("2+2" -> "2 +2", "10+" -> "10 +").
        if plus > 0:
            return [(True, word[:plus]), (True, word[plus:])]
        if not word[1:2].isdigit():
            return [(False, "+"), (True, word[1:])]
    if "&" in word and not _UPPER_AMPERSAND.fullmatch(word):
        parts = word.split("&")
        pieces = [(True, parts[0])]
        for part in parts[1:]:
            pieces += [(False, "&"), (True, part)]
        return pieces
    if "'n'" in lower[1:]:  # "rock'n'roll" -> "rock 'n' roll"
        cut = lower.index("'n'", 1)
        return [(True, word[:cut]), (False, word[cut:cut + 3]), (True, word[cut + 3:])]
    if lower.startswith("y'") and len(word) > 2:
        return [(False, word[:2]), (True, word[2:])]
    unit = _NUMBER_UNIT.fullmatch(word[:-1] if word.endswith(".") else word)
    if unit:  # a kept final period goes with the unit ("3.5m." -> "3.5" "m.")
        return [(False, unit.group(1)), (False, word[unit.end(1):])]
    signed = _SIGNED.fullmatch(word)
    if signed:
        rest = signed.group(2)
        if rest[0] == "/":
            return [(False, signed.group(1)), (False, "/"), (True, rest[1:])]
        return [(False, signed.group(1)), (True, rest)]
    for pattern in (_NOT, _CLITIC):
        match = pattern.fullmatch(word)
        if match:
            return [(True, match.group(1)), (False, match.group(2))]
    if lower.endswith("'n") and len(word) > 2 and lower != "cap'n":  # more'n
        return [(False, word[:-2]), (False, word[-2:])]
    return None
