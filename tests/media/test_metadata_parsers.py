"""Unit tests for the small parsers behind `extract`."""

from __future__ import annotations

import datetime as dt
import io
import struct

import pytest
from PIL import Image

from photobox.media import _dates, _quicktime, _readers, _sniff, _xmp
from photobox.media.filenames import date_from_filename
from photobox.media.metadata import extract

NOW = dt.datetime(2026, 1, 1)


# --------------------------------------------------------------------------
# File names


@pytest.mark.parametrize("name, when, has_time", [
    ("IMG_20190526_103320.jpg", "2019-05-26 10:33:20", True),
    ("IMG_20190526_103320_HDR.jpg", "2019-05-26 10:33:20", True),
    ("VID_20190526_103320.mp4", "2019-05-26 10:33:20", True),
    ("PXL_20210101_123456789.MP.jpg", "2021-01-01 12:34:56.789000", True),
    ("20190526_103320.jpg", "2019-05-26 10:33:20", True),
    ("Screenshot_2019-05-26-10-33-20.png", "2019-05-26 10:33:20", True),
    ("Screenshot_20190526-103320_Chrome.jpg", "2019-05-26 10:33:20", True),
    ("Screenshot 2019-05-26 at 10.33.20 PM.png", "2019-05-26 22:33:20", True),
    ("signal-2019-05-26-103320.jpg", "2019-05-26 10:33:20", True),
    ("2019-05-26 10.33.20.jpg", "2019-05-26 10:33:20", True),
    ("2018-04-12_19_24_49.mov", "2018-04-12 19:24:49", True),
    ("IMG-20190526-WA0001.jpg", "2019-05-26 00:00:00", False),
    ("PHOTO-2019-05-26-10-33-20.jpg", "2019-05-26 10:33:20", True),
])
def test_filename_dates(name: str, when: str, has_time: bool) -> None:
    found = date_from_filename(name, now=NOW)
    assert found is not None
    assert str(found[0]) == when and found[1] is None and found[2] is has_time


def test_facebook_epoch_name_is_utc() -> None:
    when, offset, _ = date_from_filename("FB_IMG_1558866800000.jpg", now=NOW)
    assert (str(when), offset) == ("2019-05-26 10:33:20", 0)


@pytest.mark.parametrize("name", ["DSC01234.JPG", "IMG_1234.JPG", "152020101500.jpg",
                                  "IMG_20191331_103320.jpg", "IMG_20300101_000000.jpg",
                                  "scan_1899-01-01.jpg"])
def test_filename_without_plausible_date(name: str) -> None:
    assert date_from_filename(name, now=NOW) is None


# --------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize("text, iso, offset", [
    ("2019:05:26 10:33:20", "2019-05-26T10:33:20", None),
    ("2019-05-26T10:33:20.12+02:00", "2019-05-26T10:33:20.120", 120),
    ("2021-04-10T11:43:59+0100", "2021-04-10T11:43:59", 60),
    ("2016-05-31T17:01:35.000000Z", "2016-05-31T17:01:35", 0),
    ("2015:02:12 03:11", "2015-02-12T03:11:00", None),
    ("2019:05:26 10:33:20\x00\x00", "2019-05-26T10:33:20", None),
    (b"2019:05:26 10:33:20", "2019-05-26T10:33:20", None),
])
def test_parse_datetime(text, iso: str, offset) -> None:
    stamp = _dates.parse_datetime(text)
    assert (stamp.iso(), stamp.offset_min) == (iso, offset)


@pytest.mark.parametrize("text", ["0000:00:00 00:00:00", "    :  :     :  :  ", "", None,
                                  "2019:13:01 00:00:00", "garbage", "2010-07"])
def test_parse_datetime_rejects(text) -> None:
    assert _dates.parse_datetime(text) is None


def test_subsec_and_offset_arguments() -> None:
    stamp = _dates.parse_datetime("2008:07:01 17:27:03", subsec="02", offset="-04:30")
    assert (stamp.iso(), stamp.offset_min) == ("2008-07-01T17:27:03.020", -270)
    assert _dates.parse_offset("+15:00") is None and _dates.parse_offset("   ") is None


def test_plausible() -> None:
    now = dt.datetime(2026, 11, 23, 9, 0)
    assert _dates.plausible(_dates.parse_datetime("2026:11:24 08:00:00"), now)
    assert not _dates.plausible(_dates.parse_datetime("2026:11:24 14:41:16"), now)
    assert not _dates.plausible(_dates.parse_datetime("1825:12:31 00:00:00"), now)
    assert _dates.plausible(_dates.parse_datetime("1919:05:04 05:59:26"), now)


# --------------------------------------------------------------------------
# XMP and ISO 6709


def test_xmp_attribute_and_element_forms() -> None:
    packet = b"""<?xpacket begin='\xef\xbb\xbf'?><x:xmpmeta xmlns:x="adobe:ns:meta/">
    <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreateDate="2015-06-11T10:29:26.69"/>
    <rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
        xmlns:aux="http://ns.adobe.com/exif/1.0/aux/">
      <photoshop:DateCreated>2015-06-11T10:29:26.69</photoshop:DateCreated>
      <aux:Lens><rdf:Alt><rdf:li xml:lang="x-default">EF-S15-85mm</rdf:li></rdf:Alt></aux:Lens>
    </rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"""
    xmp = _xmp.parse(packet)
    assert xmp.get(_xmp.NS_XMP, "CreateDate") == "2015-06-11T10:29:26.69"
    assert xmp.get(_xmp.NS_PS, "DateCreated") == "2015-06-11T10:29:26.69"
    assert xmp.get(_xmp.NS_AUX, "Lens") == "EF-S15-85mm"


def test_xmp_container_items_in_both_spellings() -> None:
    packet = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
      xmlns:Container="http://ns.google.com/photos/1.0/container/"
      xmlns:Item="http://ns.google.com/photos/1.0/container/item/"><Container:Directory><rdf:Seq>
      <rdf:li rdf:parseType="Resource"><Container:Item Item:Semantic="Primary" Item:Mime="image/jpeg"/></rdf:li>
      <rdf:li rdf:parseType="Resource"><Container:Item><Item:Semantic>MotionPhoto</Item:Semantic>
        <Item:Length>8730</Item:Length></Container:Item></rdf:li>
      </rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>"""
    items = _xmp.parse(packet).items
    assert [(i.semantic, i.length) for i in items] == [("Primary", None), ("MotionPhoto", 8730)]


def test_broken_xmp_falls_back_to_regex() -> None:
    xmp = _xmp.parse(b'<x:xmpmeta><rdf:Description exif:DateTimeOriginal="2020-01-01T00:00:00" '
                     b'GCamera:MicroVideo="1">&bogus;<unclosed>')
    assert xmp.broken
    assert xmp.get(_xmp.NS_EXIF, "DateTimeOriginal") == "2020-01-01T00:00:00"
    assert xmp.get(_xmp.NS_GCAMERA, "MicroVideo") == "1"


def test_xmp_byte_scan_in_gif(md_build) -> None:
    packet = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
              b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
              b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreateDate="2001-02-03T04:05:06"/>'
              b"</rdf:RDF></x:xmpmeta>")
    buf = io.BytesIO()
    Image.new("P", (5, 4)).save(buf, "GIF")
    data = buf.getvalue()
    # An application extension block carrying the packet, before the trailer.
    gif = data[:-1] + b"\x21\xff\x0bXMP DataXMP" + packet + b"\x00" + data[-1:]
    md = extract(md_build.write("a.gif", gif))
    assert (md.width, md.height, md.taken_at) == (5, 4, "2001-02-03T04:05:06")


def test_extended_xmp_reassembly() -> None:
    guid = "A" * 32
    full = b"<x:xmpmeta>extended</x:xmpmeta>"
    chunks = [guid.encode() + struct.pack(">II", len(full), off) + full[off:off + 10]
              for off in range(0, len(full), 10)]
    assert _xmp.join_extended(list(reversed(chunks)), guid) == full
    assert _xmp.join_extended(chunks[:-1], guid) is None      # incomplete


@pytest.mark.parametrize("text, expect", [
    ("+52.2097-000.8955+103.640/", (52.2097, -0.8955, 103.64)),
    ("+34.0754-118.2543/", (34.0754, -118.2543, None)),
    ("+4012.5-07530.0/", (40.208333, -75.5, None)),          # DDMM.mm
    ("junk", (None, None, None)),
])
def test_iso6709(text: str, expect) -> None:
    got = _readers.iso6709(text)
    assert got == pytest.approx(expect) if expect[0] is not None else got == expect


# --------------------------------------------------------------------------
# Sniffing


@pytest.mark.parametrize("head, mime", [
    (b"\xff\xd8\xff\xe1", "image/jpeg"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "image/heif"),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "video/quicktime"),
    (b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x01\x003gp5", "video/3gpp"),
    (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom", "image/x-canon-cr3"),
    (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00isomiso2mp41", "video/mp4"),
    (b"IIU\x00\x18\x00\x00\x00", "image/x-panasonic-rw2"),
    (b"IIRO\x08\x00\x00\x00", "image/x-olympus-orf"),
    (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "image/x-canon-cr2"),
    (b"FUJIFILMCCD-RAW 0201", "image/x-fuji-raf"),
    (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f\x42\x86\x81\x01webm", "video/webm"),
    (bytes([0x47] + [0] * 187) * 3, "video/mp2t"),
    ((b"\x00" * 4 + bytes([0x47] + [0] * 187)) * 3, "video/mp2t"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    (b"<?xml version='1.0'?><!DOCTYPE html><html>", "text/html"),
])
def test_sniff(head: bytes, mime: str) -> None:
    assert _sniff.sniff(head)[0] == mime


# --------------------------------------------------------------------------
# Box parser bounds


def test_box_sizes_are_clamped_to_parent(tmp_path) -> None:
    data = struct.pack(">I4s", 16, b"ftyp") + b"isom\x00\x00\x00\x00" + struct.pack(">I4s", 10**9, b"mdat")
    with open(tmp_path.joinpath("x.mp4").__fspath__(), "wb") as f:
        f.write(data + b"\x00" * 100)
    with open(tmp_path / "x.mp4", "rb") as f:
        boxes = list(_quicktime.iter_boxes(_quicktime.Reader(f, len(data) + 100), 0, len(data) + 100))
    assert [b.type for b in boxes] == [b"ftyp", b"mdat"]
    assert boxes[1].truncated and boxes[1].end == len(data) + 100


def test_reader_budget(tmp_path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00" * 1000)
    with open(path, "rb") as f:
        reader = _quicktime.Reader(f, 1000, budget=100)
        assert len(reader.read(0, 60)) == 60
        with pytest.raises(_quicktime.BudgetExceeded):
            reader.read(0, 60)
        assert reader.read(5000, 10) == b""


# --------------------------------------------------------------------------
# TIFF-based RAW magic numbers


def _tiff(tags: dict[int, object]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 16)).save(buf, "TIFF", tiffinfo=tags)
    return buf.getvalue()


def test_orf_magic_is_read_as_tiff(md_build) -> None:
    data = b"IIRO" + _tiff({271: "OLYMPUS IMAGING CORP.", 272: "E-M10"})[4:]
    md = extract(md_build.write("P1010001.ORF", data))
    assert md.mime == "image/x-olympus-orf" and not md.ext_mismatch
    assert (md.make, md.model, md.width, md.height) == ("OLYMPUS IMAGING CORP.", "E-M10", 24, 16)


def test_rw2_sensor_borders_give_size(md_build) -> None:
    data = b"IIU\x00" + _tiff({271: "Panasonic", 4: 6, 5: 8, 6: 2742, 7: 3656})[4:]
    md = extract(md_build.write("P1000001.RW2", data))
    assert md.mime == "image/x-panasonic-rw2"
    assert (md.width, md.height) == (3648, 2736)


def test_nef_by_extension(md_build) -> None:
    md = extract(md_build.write("DSC_0001.NEF", _tiff({271: "NIKON CORPORATION"})))
    assert md.mime == "image/x-nikon-nef" and not md.ext_mismatch
