"""Find and parse XMP packets, defensively.

XMP is XML written by anything from cameras to web tools, so the parser must
survive junk: DOCTYPE/ENTITY declarations are refused before parsing (no
billion-laughs or external entities), the packet size is capped, and when the
XML is malformed a small regex fallback still recovers simple properties.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

# Packets bigger than this are depth maps or thumbnails stuffed into XMP;
# none of the properties we want need that much.
MAX_PACKET = 4 * 1024 * 1024
# JPEG APP1 signatures.
JPEG_STD_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"

NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_EXIFEX = "http://cipa.jp/exif/1.0/"
NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_PS = "http://ns.adobe.com/photoshop/1.0/"
NS_AUX = "http://ns.adobe.com/exif/1.0/aux/"
NS_GCAMERA = "http://ns.google.com/photos/1.0/camera/"
NS_CONTAINER = "http://ns.google.com/photos/1.0/container/"
NS_ITEM = "http://ns.google.com/photos/1.0/container/item/"
NS_NOTE = "http://ns.adobe.com/xmp/note/"

# Prefix -> namespace for the regex fallback (used when the XML is broken and
# prefixes cannot be resolved properly; these are the customary prefixes).
_PREFIXES = {"exif": NS_EXIF, "exifEX": NS_EXIFEX, "tiff": NS_TIFF, "xmp": NS_XMP,
             "xap": NS_XMP, "photoshop": NS_PS, "aux": NS_AUX, "GCamera": NS_GCAMERA,
             "xmpNote": NS_NOTE}
_DANGEROUS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PACKET_RE = re.compile(rb"<x:xmpmeta[\s>].*?</x:xmpmeta\s*>", re.DOTALL)
_RDF_RE = re.compile(rb"<rdf:RDF[\s>].*?</rdf:RDF\s*>", re.DOTALL)
_ATTR_RE = re.compile(r"""\b([A-Za-z][\w.-]*):([A-Za-z][\w.-]*)\s*=\s*(["'])(.*?)\3""", re.DOTALL)
_ELEM_RE = re.compile(r"<([A-Za-z][\w.-]*):([A-Za-z][\w.-]*)>([^<]*)</\1:\2>")


@dataclasses.dataclass(slots=True)
class ContainerItem:
    """One entry of a Google ``Container:Directory`` (Motion/Ultra HDR photos)."""

    semantic: str | None
    mime: str | None
    length: int | None
    padding: int | None


@dataclasses.dataclass(slots=True)
class Xmp:
    """The subset of XMP photobox uses; ``props`` maps (namespace, name) to text."""

    props: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    items: list[ContainerItem] = dataclasses.field(default_factory=list)
    dangerous: bool = False
    broken: bool = False

    def get(self, ns: str, name: str) -> str | None:
        """Return a property's text, stripped, or None."""
        value = self.props.get((ns, name))
        if value is None:
            return None
        value = value.strip()
        return value or None

    def merge(self, other: Xmp) -> None:
        """Add properties from ``other`` (e.g. extended XMP) without overriding."""
        for key, value in other.props.items():
            self.props.setdefault(key, value)
        if not self.items:
            self.items = other.items


def parse(packet: bytes | str | None) -> Xmp | None:
    """Parse an XMP packet.

    Args:
        packet: Raw packet bytes (any of UTF-8/16 with or without BOM).

    Returns:
        An Xmp (with ``dangerous``/``broken`` flags when applicable), or None
        when there is nothing to parse.
    """
    if not packet:
        return None
    if isinstance(packet, str):
        packet = packet.encode("utf-8", "replace")
    packet = packet[:MAX_PACKET]
    if _DANGEROUS.search(packet):
        # Entity declarations have no business in XMP: refuse the whole packet
        # rather than risk entity expansion.
        return Xmp(dangerous=True)
    text = _decode(packet)
    body = _PACKET_RE.search(text.encode("utf-8")) or _RDF_RE.search(text.encode("utf-8"))
    xml_bytes = body.group(0) if body else text.encode("utf-8")
    try:
        root = ET.fromstring(xml_bytes)
    except (ET.ParseError, ValueError):
        result = _regex_fallback(text)
        result.broken = True
        return result
    result = Xmp()
    _collect(root, result)
    return result


def scan(data: bytes) -> bytes | None:
    """Find an ``<x:xmpmeta>`` packet inside arbitrary bytes (bounded by caller)."""
    match = _PACKET_RE.search(data)
    return match.group(0) if match else None


def join_extended(chunks: list[bytes], guid: str | None) -> bytes | None:
    """Reassemble JPEG extended XMP from its APP1 payloads.

    Args:
        chunks: APP1 payloads with the extension signature already removed:
            32-byte GUID, u32 total length, u32 offset, data.
        guid: The ``xmpNote:HasExtendedXMP`` GUID of the main packet.

    Returns:
        The extended packet, or None when missing, incomplete or too big.
    """
    if not chunks or not guid:
        return None
    parts: dict[int, bytes] = {}
    total = 0
    for chunk in chunks:
        if len(chunk) < 40 or chunk[:32].decode("latin-1") != guid:
            continue
        total = int.from_bytes(chunk[32:36], "big")
        parts[int.from_bytes(chunk[36:40], "big")] = chunk[40:]
    if not parts or total > MAX_PACKET:
        return None
    data = b"".join(parts[k] for k in sorted(parts))
    return data if len(data) == total else None


def _decode(packet: bytes) -> str:
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        return packet.decode("utf-16", "replace")
    return packet.decode("utf-8", "replace").lstrip("\ufeff").replace("\x00", "")


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _collect(root: ET.Element, out: Xmp) -> None:
    for desc in root.iter(f"{{{NS_RDF}}}Description"):
        _collect_node(desc, out)
    for directory in root.iter(f"{{{NS_CONTAINER}}}Directory"):
        for li in directory.iter(f"{{{NS_RDF}}}li"):
            out.items.append(_container_item(li))


def _collect_node(node: ET.Element, out: Xmp, depth: int = 0) -> None:
    # Properties appear either as attributes of rdf:Description or as child
    # elements (simple text, or an rdf:Seq/Alt/Bag whose first li we take).
    if depth > 8:   # nested structs deeper than this are not ours (and could recurse forever)
        return
    for key, value in node.attrib.items():
        out.props.setdefault(_split(key), value)
    for child in node:
        key = _split(child.tag)
        if key[0] == NS_RDF:
            continue
        text = (child.text or "").strip()
        if not text:
            li = child.find(f".//{{{NS_RDF}}}li")
            text = (li.text or "").strip() if li is not None else ""
        if text:
            out.props.setdefault(key, text)
        elif len(child) and child.get(f"{{{NS_RDF}}}parseType") == "Resource":
            _collect_node(child, out, depth + 1)


def _container_item(li: ET.Element) -> ContainerItem:
    # Writers use both <Container:Item Item:Mime="..."/> and child elements.
    fields: dict[str, str] = {}
    for element in li.iter():
        for key, value in element.attrib.items():
            ns, local = _split(key)
            if ns == NS_ITEM:
                fields.setdefault(local, value)
        ns, local = _split(element.tag)
        if ns == NS_ITEM and element.text and element.text.strip():
            fields.setdefault(local, element.text.strip())
    return ContainerItem(fields.get("Semantic"), fields.get("Mime"),
                         _int(fields.get("Length")), _int(fields.get("Padding")))


def _regex_fallback(text: str) -> Xmp:
    out = Xmp()
    for prefix, name, _, value in _ATTR_RE.findall(text):
        if prefix in _PREFIXES:
            out.props.setdefault((_PREFIXES[prefix], name), value)
    for prefix, name, value in _ELEM_RE.findall(text):
        if prefix in _PREFIXES and value.strip():
            out.props.setdefault((_PREFIXES[prefix], name), value)
    return out


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None
