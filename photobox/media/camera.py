"""The camera's name as people say it, from the EXIF Make and Model tags.

Cameras write the maker twice ("Canon" + "Canon EOS 6D") or as a company name
("NIKON CORPORATION" + "NIKON D750", "OLYMPUS IMAGING CORP." + "E-M5"). Joining the two
tags gives "Canon Canon EOS 6D"; :func:`camera_name` gives "Canon EOS 6D", "Nikon D750",
"Olympus E-M5", as exiftool's and Immich's displays do. The viewer, the share page and
the search page's camera filter all use this one function, so the name a filter offers
is the name the viewer shows.
"""

from __future__ import annotations

import re

__all__ = ["camera_name"]

# Company words after the brand ("NIKON CORPORATION", "CASIO COMPUTER CO.,LTD.",
# "EASTMAN KODAK COMPANY"), compared without dots, commas and case.
_COMPANY_WORDS = frozenset({
    "corporation", "corp", "co", "ltd", "coltd", "inc", "company", "limited", "gmbh", "ag", "sa",
    "imaging", "optical", "electric", "electronics", "computer", "digital", "camera",
})


def camera_name(make: str | None, model: str | None) -> str | None:
    """One line naming the camera, or None when neither tag says anything.

    The maker is dropped when the model already starts with it (in any case, and also
    when the model starts with the maker's last word: "EASTMAN KODAK" + "KODAK C713").
    A maker written in capitals (or all lower case) gets the usual capitalisation,
    "NIKON" -> "Nikon"; short ones stay as they are (DJI, HTC, LG).
    """
    make, model = _clean(make), _clean(model)
    if not make:
        return model
    brand = _brand(make)
    if not model:
        return _nice(brand)
    lowered = model.lower()
    words = brand.split()
    for prefix in dict.fromkeys((brand, words[-1], words[0])):
        if lowered.startswith(prefix.lower()) and not model[len(prefix):len(prefix) + 1].isalnum():
            return _nice(prefix) + model[len(prefix):]
    return f"{_nice(brand)} {model}"


def _clean(text: str | None) -> str | None:
    if not text:
        return None
    text = " ".join(str(text).split())
    return text or None


def _brand(make: str) -> str:
    """The maker without its company words ("OLYMPUS IMAGING CORP." -> "OLYMPUS")."""
    words = make.split()
    while len(words) > 1 and re.sub(r"[.,]", "", words[-1]).lower() in _COMPANY_WORDS:
        words.pop()
    return " ".join(words).rstrip(",")


def _nice(brand: str) -> str:
    return " ".join(_nice_word(w) for w in brand.split())


def _nice_word(word: str) -> str:
    if len(word) > 3 and word.isalpha() and (word.isupper() or word.islower()):
        return word.capitalize()
    if len(word) > 1 and word.isalpha() and word.islower():
        return word.capitalize()  # "samsung" -> "Samsung"; capitals of 3 letters (DJI, HTC) stay
    return word
