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

