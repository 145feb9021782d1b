"""docvlm's PTB tokenizer against Stanford PTBTokenizer 3.4.1 (coco-caption's options) on inputs
the stored fixture does not cover. Expected tokens were taken from the Java tokenizer itself
(``java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer -preserveLines
-lowerCase``, each caption followed by an unrelated line, then coco-caption's punctuation filter).
"""

from __future__ import annotations

import pytest

from docvlm.evaluate.ptb import ptb_tokenize


@pytest.mark.parametrize("text, count", [
    ("a+" * 2000 + "a", 4001), ("-1/" * 1500 + "a", 3001), ("y'" * 1500 + "a", 1501), ("a'n'" * 1500 + "a", 3001),
])
def test_long_degenerate_words_do_not_exhaust_the_stack(text, count):
    # A looping model can write thousands of glued pieces; the Java tokenizer splits them all.
    tokens = ptb_tokenize(text)
    assert len(tokens) == count
    assert tokens[:3] == ptb_tokenize(text[:12])[:3]



JAVA_TOKENS = [  # (caption, PTBTokenizer 3.4.1 tokens after coco-caption's filter)
    # What the lexer cannot tokenize it deletes, and the deletion ends the token: emoji outside the
    # BMP, variation selectors (the U+FE0F of "❤️"), bidi and invisible format characters.
    ("dog🐶cat", ["dog", "cat"]), ("emoji👍here", ["emoji", "here"]), ("❤️ love", ["❤", "love"]),
    ("✔️ done ✅", ["✔", "done", "✅"]), ("❤️❤️❤️", ["❤", "❤", "❤"]), ("I ‼️ it", ["i", "it"]),
    ("ab\u202ecd", ["ab", "cd"]), ("a\u2060b", ["a", "b"]), ("a‒b", ["a", "b"]),
    # CJK, full-width, Arabic, Devanagari and Spanish punctuation: tokens of their own, kept (not in
    # coco-caption's filter); CJK corner and angle brackets are dropped.
    ("一只狗在草地上奔跑。", ["一只狗在草地上奔跑", "。"]), ("两个人，一只猫！", ["两个人", "，", "一只猫", "！"]),
    ("日本語、テスト。", ["日本語", "、", "テスト", "。"]),
    ("看板に「止まれ」と書いてある", ["看板に", "止まれ", "と書いてある"]),
    ("《红楼梦》的封面", ["红楼梦", "的封面"]), ("（括弧）", ["（", "括弧", "）"]), ("a dog。", ["a", "dog", "。"]),
    ("مرحبا، عالم؟", ["مرحبا", "،", "عالم", "؟"]), ("नमस्ते।", ["नमस्ते", "।"]),
    ("¿Qué es esto? ¡Hola!", ["¿", "qué", "es", "esto", "¡", "hola"]),
    # Currency: ¥ and ‰ are tokens; ¢ becomes "cents"; most other currency signs are deleted.
    ("costs ¥100 or 5¢", ["costs", "¥", "100", "or", "5", "cents"]), ("100‰", ["100", "‰"]),
    ("₹500 and ₩100 and ₽5", ["500", "and", "100", "and", "5"]),
    ("a ★ and a ⬆ arrow", ["a", "★", "and", "a", "⬆", "arrow"]),
]


@pytest.mark.parametrize("text, expected", JAVA_TOKENS)
def test_unicode_punctuation_symbols_and_emoji_as_the_java_tokenizer(text, expected):
    assert ptb_tokenize(text) == expected


@pytest.mark.parametrize("text, expected", [
    # Already PTB-tokenized captions (Flickr30k style) keep their clitics: "dog 's" is the same
    # tokens as "dog's", as in the Java tokenizer. docvlm used to drop the apostrophe ("s").
    ("the man 's hat , and the dog 's bone .", ["the", "man", "'s", "hat", "and", "the", "dog", "'s", "bone"]),
    ("they 're here", ["they", "'re", "here"]), ("we 've", ["we", "'ve"]), ("I 'm", ["i", "'m"]),
    ("he 'd", ["he", "'d"]), ("we 'll", ["we", "'ll"]), ("DOG 'S", ["dog", "'s"]),
    ("the dog 's.", ["the", "dog", "'s"]),
    ("'s dog", ["'s", "dog"]), ("('s)", ["-lrb-", "'s", "-rrb-"]), ("'S'", ["'s"]), ("-'s", ["'s"]),
    # A clitic after a period: the word before keeps its period only if PTB keeps it anyway.
    ("U.S.'s economy", ["u.s.", "'s", "economy"]), ("the N.F.L.'s rules", ["the", "n.f.l.", "'s", "rules"]),
    ("U.S.'ve", ["u.s.", "'ve"]), ("Mr.'s", ["mr.", "'s"]), ("A.'s", ["a.", "'s"]), ("etc.'s", ["etc.", "'s"]),
    ("dog.'s", ["dog", "'s"]), ("end.'s here", ["end", "'s", "here"]), ("No.'s", ["no", "'s"]),
    ("1.'s", ["1", "'s"]),
    ("a..'s", ["a.", "'s"]),
])
def test_clitics_standing_alone_or_after_a_period_as_the_java_tokenizer(text, expected):
    assert ptb_tokenize(text) == expected


def test_dots_after_a_symbol_token_are_dropped():
    # "²" is alphanumeric to Python, but a symbol token to PTB: it takes no period from "...".
    assert ptb_tokenize("x²... two") == ["x", "²", "two"]


@pytest.mark.parametrize("text, expected", [
    # "+" is a token of its own, or the sign of a number right after it; only "C++" and
    # upper-case "A+B" stay whole. docvlm used to keep "10+" and "A+" whole and split "2+2" as "2 + 2".
    ("10+ people", ["10", "+", "people"]), ("18+", ["18", "+"]), ("10+.", ["10", "+"]),
    ("A+ grade", ["a", "+", "grade"]), ("2+2=4", ["2", "+2", "=", "4"]), ("5+5+5", ["5", "+5", "+5"]),
    ("a+1", ["a", "+1"]), ("+1+2", ["+1", "+2"]), ("a+1.5", ["a", "+1.5"]), ("a+1b", ["a", "+1", "b"]),
    ("x+1/2", ["x", "+1", "/", "2"]), ("1+a", ["1", "+", "a"]), ("a+b", ["a", "+", "b"]),
    ("a++b", ["a", "+", "+", "b"]), ("g++", ["g", "+", "+"]), ("++", ["+", "+"]),
    ("C++", ["c++"]), ("c++", ["c++"]), ("C++.", ["c++"]), ("A+B", ["a+b"]), ("AT&T+1", ["at&t", "+1"]),
])
def test_plus_signs_as_the_java_tokenizer(text, expected):
    assert ptb_tokenize(text) == expected
