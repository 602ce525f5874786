"""photobox.media.camera.camera_name: the camera line of the viewer, the share page and the search filter."""

from __future__ import annotations

import pytest

from photobox.media.camera import camera_name


@pytest.mark.parametrize("make, model, name", [
    ("Canon", "Canon EOS 6D", "Canon EOS 6D"),                 # the issue: not "Canon Canon EOS 6D"
    ("NIKON CORPORATION", "NIKON D750", "Nikon D750"),         # as exiftool/Immich show it
    ("Nikon", "D750", "Nikon D750"),
    ("canon", "CANON EOS R5", "Canon EOS R5"),                 # the make, in any case
    ("OLYMPUS IMAGING CORP.", "E-M5", "Olympus E-M5"),
    ("CASIO COMPUTER CO.,LTD.", "EX-Z750", "Casio EX-Z750"),
    ("EASTMAN KODAK COMPANY", "KODAK C713 ZOOM DIGITAL CAMERA", "Kodak C713 ZOOM DIGITAL CAMERA"),
    ("PENTAX Corporation", "PENTAX K-5", "Pentax K-5"),
    ("Leica Camera AG", "LEICA M (Typ 240)", "Leica M (Typ 240)"),
    ("LG Electronics", "LG-H870", "LG-H870"),
    ("samsung", "SM-G991B", "Samsung SM-G991B"),
    ("Apple", "iPhone 12", "Apple iPhone 12"),
    ("OnePlus", "ONEPLUS A6003", "OnePlus A6003"),
    ("DJI", "FC220", "DJI FC220"),
    ("HTC", "HTC One", "HTC One"),
    ("Canon", "CanonScan 9000F", "Canon CanonScan 9000F"),     # a prefix only counts as a whole word
    ("  Google ", " Pixel  8 ", "Google Pixel 8"),
    (None, "X100", "X100"),
    ("FUJIFILM", None, "Fujifilm"),
    ("", "  ", None),
    (None, None, None),
])
def test_camera_name(make, model, name):
    assert camera_name(make, model) == name
