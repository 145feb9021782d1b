"""Extended grapheme clusters (UAX #29) for CER with ``unit: grapheme``.

Why not ``regex``'s ``\\X``: since Unicode 15.1 rule GB9c joins a virama (InCB=Linker) to the
next consonant only when a consonant stands before the virama. ICU, dinglehopper (through
``uniseg``) and the official ``GraphemeBreakTest.txt`` of Unicode 15.1 to 17.0 give
``a + U+094D | U+0924`` two clusters; ``regex`` (2026.11.15) gives one: it follows Unicode 18.0
(September 2026), whose GB9c no longer needs the consonant before the Linker (it also joins
``U+1CF5 U+0995``, the other case that changed). Until ICU and dinglehopper move to 18.0, the
same prediction would get different grapheme CERs here and in those tools; Unicode 16.0 is what
they agree on for these cases.

Why not ``uniseg``'s own segmenter, which is what this module matches: it passes every one of the
1 093 cases of the official GraphemeBreakTest-16.0.0.txt, but it is ~100x slower than ``\\X``
(14 ms for a 124-character line), too slow for corpus scoring. So the character *properties*
(Grapheme_Cluster_Break, Indic_Conjunct_Break, Extended_Pictographic) come from uniseg's
Unicode 16.0.0 tables, and the rules GB3-GB999 of UAX #29 revision 45 run here as a small state
machine (one pass, constant state; 108 us for that line, regex 127 us, ``pyuegc`` 16.0.3, which
conforms too, 317 us). ``tests/test_graphemes.py`` checks it against uniseg on random strings over
every property value and against all 1 093 cases of the official GraphemeBreakTest-16.0.0.txt
(kept as a test fixture).
"""

from __future__ import annotations

from uniseg import unidata_version as UNICODE_VERSION  # noqa: F401  (stated in metrics files)
from uniseg.derived import indic_conjunct_break
from uniseg.emoji import extended_pictographic
from uniseg.graphemecluster import grapheme_cluster_break

# Grapheme_Cluster_Break values as small ints for the state machine.
OTHER, CR, LF, CONTROL, EXTEND, ZWJ, RI, PREPEND, SPACING, L, V, T, LV, LVT = range(14)
_GCB = {"Other": OTHER, "CR": CR, "LF": LF, "Control": CONTROL, "Extend": EXTEND, "ZWJ": ZWJ,
        "Regional_Indicator": RI, "Prepend": PREPEND, "SpacingMark": SPACING, "L": L, "V": V, "T": T,
        "LV": LV, "LVT": LVT}
# Indic_Conjunct_Break values.
NONE, CONSONANT, INCB_EXTEND, LINKER = range(4)
_INCB = {"None": NONE, "Consonant": CONSONANT, "Extend": INCB_EXTEND, "Linker": LINKER}
_CONTROLS = (CR, LF, CONTROL)


def properties(char: str) -> tuple[int, int, bool]:
    """(Grapheme_Cluster_Break, Indic_Conjunct_Break, Extended_Pictographic) of one code point."""
    found = _PROPERTIES.get(char)
    if found is None:
        found = (_GCB[grapheme_cluster_break(char).value], _INCB[indic_conjunct_break(char).value],
                 extended_pictographic(char))
        # One shared object for plain code points, so the segmenter's fast path tests identity.
        found = _PROPERTIES[char] = _PLAIN if found == _PLAIN else found
    return found


_PROPERTIES: dict[str, tuple[int, int, bool]] = {}
"""Cache of looked-up code points (a text uses few distinct ones; uniseg's lookup costs ~1 us)."""
_PLAIN = (OTHER, NONE, False)
"""A code point no rule joins to what precedes it, except GB9b (after Prepend): the common case."""


def _joins(prev: int, cur: int, incb: int, cur_incb: int, emoji: int, regional: int,
           cur_pict: bool) -> bool:
    """True when there is no boundary between two code points (rules GB3 to GB13)."""
    if prev == CR and cur == LF:  # GB3
        return True
    if prev in _CONTROLS or cur in _CONTROLS:  # GB4, GB5
        return False
    if prev == L and cur in (L, V, LV, LVT):  # GB6
        return True
    if prev in (LV, V) and cur in (V, T):  # GB7
        return True
    if prev in (LVT, T) and cur == T:  # GB8
        return True
    if cur in (EXTEND, ZWJ, SPACING) or prev == PREPEND:  # GB9, GB9a, GB9b
        return True
    if incb == 2 and cur_incb == CONSONANT:  # GB9c: Consonant [Extend Linker]* Linker [Extend Linker]* x Consonant
        return True
    if emoji == 2 and cur_pict:  # GB11: ExtPict Extend* ZWJ x ExtPict
        return True
    return prev == RI and cur == RI and regional % 2 == 1  # GB12, GB13


def grapheme_clusters(text: str) -> list[str]:
    """The extended grapheme clusters of ``text`` (UAX #29, Unicode 16.0 properties)."""
    if text.isascii() and "\r" not in text:
        return list(text)  # every ASCII code point but CR LF is a cluster of its own
    clusters: list[str] = []
    start = 0
    prev = -1
    incb = emoji = regional = 0
    for i, char in enumerate(text):
        found = _PROPERTIES.get(char) or properties(char)
        if found is _PLAIN and prev != PREPEND:
            # Fast path: before a plain code point every rule but GB9b gives a boundary, and it
            # resets the GB9c, GB11 and regional-indicator states.
            if i:
                clusters.append(text[start:i])
                start = i
            incb = emoji = regional = 0
            prev = OTHER
            continue
        cur, cur_incb, cur_pict = found
        if i and not _joins(prev, cur, incb, cur_incb, emoji, regional, cur_pict):
            clusters.append(text[start:i])
            start = i
        # State for GB9c: 0 nothing, 1 Consonant [Extend]*, 2 Consonant ... Linker [Extend Linker]*.
        if cur_incb == CONSONANT:
            incb = 1
        elif cur_incb == LINKER and incb:
            incb = 2
        elif cur_incb != INCB_EXTEND:
            incb = 0
        # State for GB11: 0 nothing, 1 ExtPict Extend*, 2 ExtPict Extend* ZWJ.
        if cur_pict:
            emoji = 1
        elif cur == EXTEND and emoji == 1:
            emoji = 1
        elif cur == ZWJ and emoji == 1:
            emoji = 2
        else:
            emoji = 0
        regional = regional + 1 if cur == RI else 0
        prev = cur
    if text:
        clusters.append(text[start:])
    return clusters
