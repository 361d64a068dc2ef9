"""Markup and escaping shared by every renderer, and the number formats of table cells.

Generated captions, headers and notes are *markup*: plain Unicode text in which ``$...$`` is LaTeX math
(typeset as math in LaTeX, turned into Unicode in Markdown) and ``\\$`` / ``\\\\`` are a literal dollar /
backslash. User-supplied text (method names, file names, caption overrides) enters markup only through
:func:`lit`. Cell text and row labels are plain user text, escaped by each renderer.
"""
from __future__ import annotations

import math
import re
import unicodedata

DAGGER = "†"  # significant vs the reference
DDAGGER = "‡"  # bound chain that is not a valid upper bound on TV
DASH = "–"  # no value


def fmt_number(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{float(x):.{digits}f}"


def fmt_int(n: int | None) -> str:
    return DASH if n is None else f"{int(n):,}"


def fmt_p(p: float | None) -> str:
    """p-values: three decimals down to 0.001, then scientific; an underflowed 0 reads ``<1e-300``."""
    if p is None or not math.isfinite(float(p)):
        return DASH
    p = float(p)
    if p == 0.0:
        return "<1e-300"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


def fmt_sci(x: float | None, digits: int = 1) -> str:
    """Small quantities (route penalties ~1e-5) in scientific notation; exact zero as 0."""
    if x is None or not math.isfinite(float(x)):
        return DASH
    x = float(x)
    if x == 0.0:
        return "0"
    return f"{x:.{digits}e}" if abs(x) < 1e-3 else f"{x:.4f}"


_MATH_TO_UNICODE = (
    (r"\hat{F}", "F̂"), (r"\mathrm", ""), (r"\text", ""), (r"\varphi", "φ"), (r"\phi", "φ"), (r"\tau", "τ"),
    (r"\pi", "π"), (r"\rho", "ρ"), (r"\beta", "β"), (r"\alpha", "α"), (r"\Delta", "Δ"), (r"\geq", "≥"),
    (r"\leq", "≤"), (r"\times", "×"), (r"\pm", "±"), (r"\downarrow", "↓"), (r"\uparrow", "↑"),
    (r"\log", "log"), (r"\dagger", "†"), (r"\,", ""), ("{", ""), ("}", ""),
)


def lit(s: str) -> str:
    r"""Quote user text for use inside markup (its $ and \ stay literal)."""
    return str(s).replace("\\", "\\\\").replace("$", "\\$")


def _markup_parts(s: str) -> list[tuple[bool, str]]:
    """Split markup into (is_math, text) runs."""
    parts, buf, math, i = [], [], False, 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and not math and i + 1 < len(s) and s[i + 1] in "$\\":
            buf.append(s[i + 1])
            i += 2
            continue
        if ch == "$":
            parts.append((math, "".join(buf)))
            buf, math = [], not math
        else:
            buf.append(ch)
        i += 1
    parts.append((math, "".join(buf)))
    return [(m, t) for m, t in parts if t]


def markup_to_plain(s: str) -> str:
    out = []
    for is_math, t in _markup_parts(s):
        if is_math:
            t = re.sub(r"\\sqrt\{([^{}]*)\}", r"√(\1)", t).replace("-", "−")
            for a, b in _MATH_TO_UNICODE:
                t = t.replace(a, b)
        out.append(t)
    return "".join(out)


def markup_to_latex(s: str) -> str:
    return "".join(f"${t}$" if is_math else latex_escape(t) for is_math, t in _markup_parts(s))


def md_escape(s: str) -> str:
    """GitHub pipe tables: only ``|`` needs escaping (nothing else is touched)."""
    return str(s).replace("|", r"\|")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_UNICODE = {
    "–": "--", "—": "---", "‘": "`", "’": "'", "“": "``", "”": "''", "…": r"\ldots{}", "\u00a0": "~",
    "±": r"\ensuremath{\pm}", "×": r"\ensuremath{\times}", "−": r"\ensuremath{-}", "≤": r"\ensuremath{\leq}",
    "≥": r"\ensuremath{\geq}", "≈": r"\ensuremath{\approx}", "→": r"\ensuremath{\rightarrow}",
    "↓": r"\ensuremath{\downarrow}", "↑": r"\ensuremath{\uparrow}", "†": r"\dag{}", "‡": r"\ddag{}",
    "°": r"\ensuremath{^\circ}", "·": r"\ensuremath{\cdot}", "•": r"\ensuremath{\bullet}", "ß": r"\ss{}",
    "æ": r"\ae{}", "Æ": r"\AE{}", "ø": r"\o{}", "Ø": r"\O{}", "œ": r"\oe{}", "Œ": r"\OE{}", "å": r"\aa{}",
    "Å": r"\AA{}", "ł": r"\l{}", "Ł": r"\L{}", "ı": r"\i{}", "¿": r"\textquestiondown{}", "¡": r"\textexclamdown{}",
    "µ": r"\ensuremath{\mu}", "F̂": r"\ensuremath{\hat{F}}",
    **{g: rf"\ensuremath{{\{n}}}" for g, n in zip("αβγδεθλμπρστφχψωΔΘΛΠΣΦΨΩ",
                                                  ["alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda",
                                                   "mu", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega",
                                                   "Delta", "Theta", "Lambda", "Pi", "Sigma", "Phi", "Psi", "Omega"])},
}
_LATEX_ACCENTS = {  # combining mark -> text-mode accent command
    "\u0300": "`", "\u0301": "'", "\u0302": "^", "\u0303": "~", "\u0304": "=", "\u0306": "u", "\u0307": ".",
    "\u0308": '"', "\u030a": "r", "\u030b": "H", "\u030c": "v", "\u0327": "c", "\u0328": "k", "\u0323": "d",
}


def latex_escape(s: str) -> str:
    """Escape text for LaTeX (T1 font encoding): the ten specials, ``< > |``, and every non-ASCII character.

    Accented letters become accent commands (``é`` -> ``\\'{e}``), common symbols and Greek letters their
    LaTeX forms; anything else (e.g. CJK) becomes a visible ``[U+XXXX]`` so the document still compiles under
    plain pdflatex.
    """
    out = []
    s = str(s).replace("F̂", "\0FHAT\0")
    for ch in s:
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ord(ch) < 128:
            out.append(ch)
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        else:
            out.append(_latex_accented(ch))
    return "".join(out).replace("\0FHAT\0", _LATEX_UNICODE["F̂"])


def _latex_accented(ch: str) -> str:
    decomposed = unicodedata.normalize("NFD", ch)
    base, marks = decomposed[0], decomposed[1:]
    if marks and ord(base) < 128 and all(m in _LATEX_ACCENTS for m in marks):
        inner = {"i": r"\i", "j": r"\j"}.get(base, base) if marks else base
        for m in marks:
            inner = f"\\{_LATEX_ACCENTS[m]}{{{inner}}}"
        return inner
    compat = unicodedata.normalize("NFKD", ch)
    if compat and all(ord(c) < 128 for c in compat):  # ligatures, full-width and super/subscript digits
        return latex_escape(compat)
    return f"[U+{ord(ch):04X}]"


_SCI = re.compile(r"^(<)?(-?\d+(?:\.\d+)?)e([+-]\d+)$")


def _latex_math_number(display: str) -> str:
    """'3.1e-152' -> '3.1\\times10^{-152}', '<1e-300' -> '<10^{-300}', '1,234' -> '1{,}234', '9.4×' -> '9.4\\times',
    '+12%' -> '+12\\%'."""
    m = _SCI.match(display)
    if m:
        less, mant, exp = m.groups()
        power = f"10^{{{int(exp)}}}"
        body = power if mant in ("1", "1.0") else f"{mant}\\times{power}"
        return ("<" if less else "") + body
    return display.replace(",", "{,}").replace("×", r"\times").replace("%", r"\%")
