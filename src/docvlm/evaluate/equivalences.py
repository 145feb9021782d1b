"""dinglehopper's character equivalences, for CER with ``text.normalization: dinglehopper``.

dinglehopper (qurator-spk/dinglehopper, the OCR-D evaluation tool) puts every line its command-line
tools read through ``normalize_sbb`` (``extracted_text.py``, version 0.11.0): NFC, then ligatures
split into their letters (``unjoin_ligatures``: ﬁ -> fi, MUFI/eMOP private-use ligatures such as
U+EBA6 -> ſſ), then ``substitute_equivalences`` (em dash and ``==`` -> en dash, ’ -> ', ⸗ -> -, a/o/u
with a combining small e -> ä/ö/ü, a few private-use umlauts). The tables are copied from its
source (Apache-2.0) because dinglehopper itself depends on the whole OCR-D stack; replacements run
in its order, as plain string replacements, with no NFC afterwards (q + U+0301 stays decomposed).
``tests/test_dinglehopper_reference.py`` checks CER with these tables against dinglehopper's own
definition on random Unicode.
"""

from __future__ import annotations

import unicodedata

LIGATURES = {  # unjoin_ligatures
    "\ueba6": "\u017f\u017f", "\ueba7": "\u017f\u017fi", "\uf502": "ch", "\ueec4": "ck", "\uf4f9": "ll",
    "\ueba2": "\u017fi", "\ueada": "\u017ft", "\ufb01": "fi", "\ufb00": "ff", "\ufb02": "fl", "\ufb03": "ffi",
    "\ueec5": "ct", "\ueedc": "tz", "\uf532": "as", "\uf533": "is", "\uf534": "us", "\uf535": "Qu",
    "\u0133": "ij", "\ue8bf": "q&", "\ueba5": "\u017fp", "\ufb06": "st",
}
EQUIVALENCES = {  # substitute_equivalences
    "\ue72b": "\xfc", "\ue42c": "\xe4", "==": "\u2013", "\u2014": "\u2013", "\ue644": "\xf6", "\u2019": "'",
    "\u2e17": "-", "a\u0364": "\xe4", "o\u0364": "\xf6", "u\u0364": "\xfc", "\uf50e": "q\u0301",
}


def dinglehopper_normalize(text: str) -> str:
    """``normalize_sbb`` of dinglehopper 0.11.0."""
    text = unicodedata.normalize("NFC", text)
    for table in (LIGATURES, EQUIVALENCES):
        for source, target in table.items():
            text = text.replace(source, target)
    return text
