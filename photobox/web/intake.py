"""Request bodies into temp files: how every uploaded file arrives.

The upload API (``POST /api/assets``), the phone's share target (``POST /share``), WebDAV
``PUT`` and a backup uploaded to restore all go through :func:`receive_body`. Each file is
written to ``data/tmp`` as it arrives, never whole in memory (Litestar's own form parser would
hold a 4 GB video), with its SHA-1 computed on the way (:class:`~photobox.datadir.storage.TempWriter`).

The ``disk_reserve_mb`` setting stays free on the data disk (:func:`room_for`, which the
resumable upload's chunks use too). A body whose size is announced is refused before a byte
is stored. A body of unknown size (chunked) is stopped once it would eat into the reserve.
Either way the answer is :class:`~photobox.datadir.storage.DiskFullError` (507), saying how
much space is needed. A body that fails half-way keeps nothing: malformed, cut short, too
many files, the disk full, or the client gone.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from litestar.exceptions import ClientException
from multipart import MultipartError, MultipartSegment, PushMultipartParser

from photobox.datadir.storage import TempWriter, ensure_space
from photobox.web.params import content_length

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["Multipart", "Received", "ReceivedFile", "receive_body", "room_for"]


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """One file of a request body, complete and fsync'd in ``data/tmp``."""

    path: Path
    sha1: bytes
    size: int
    #: The name the client gave it (``""`` for a raw body, or a form that named none).
    name: str


@dataclass(slots=True)
class Received:
    """What a request body brought: its files (the caller consumes or discards them) and
    the small text fields of a form."""

    files: list[ReceivedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete every file not yet consumed."""
        for f in self.files:
            f.path.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Multipart:
    """The multipart/form-data body a route takes.

    Files in ``file_fields`` are stored (at most ``max_files``, else 400); the values of
    ``text_fields`` are kept, up to ``max_field_bytes`` each (else 400); anything else is
    skipped (a share sheet's ``text`` can be long, and nobody reads it).
    ``not_multipart`` is the 400's message for a body of another type, and ``what`` names
    the body in the one for a malformed body ("the upload was cut short or malformed: …").
    """

    file_fields: tuple[str, ...]
    not_multipart: str
    text_fields: tuple[str, ...] = ()
    what: str = "the upload"
    max_files: int = 1
    max_segments: int = 20
    max_field_bytes: int = 4096


def room_for(box: Photobox, incoming: int, folder: Path | None = None) -> None:
    """Refuse ``incoming`` more bytes in ``folder`` (default ``data/tmp``) when they would leave
    less than the disk reserve free.

    Raises:
        DiskFullError: with how much is free, kept and needed (answered with 507).
    """
    ensure_space(folder or box.path("tmp"), incoming, box.settings.disk_reserve_bytes)


def _boundary(content_type: str, form: Multipart) -> str:
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ClientException(form.not_multipart)
    return content_type.split("boundary=", 1)[1].split(";")[0].strip().strip('"')


async def receive_body(box: Photobox, chunks: AsyncIterable[bytes], headers: Mapping[str, str], *,
                       form: Multipart | None = None) -> Received:
    """Stream a request body into temp files in ``data/tmp``, keeping the disk reserve.

    Without ``form`` the whole body is one file (a WebDAV ``PUT``), and it must have as many
    bytes as its Content-Length says. With ``form`` it is multipart/form-data (see
    :class:`Multipart`).

    Raises:
        ClientException: not the expected body, malformed, cut short or too many files (400).
        DiskFullError: the reserve would be eaten into (507).
        Whatever ``chunks`` raises (the client gone). In every case nothing is kept.
    """
    boundary = _boundary(headers.get("content-type", ""), form) if form is not None else ""
    length = content_length(headers)
    if length:
        room_for(box, length)
    received = Received()
    sink = _Sink(box, received)
    try:
        if form is None:
            sink.start("")
            async for chunk in chunks:
                await sink.write(chunk)
            await sink.end()
            size = received.files[0].size
            if length is not None and size != length:
                raise ClientException(f"the body has {size} bytes but Content-Length said {length}")
        else:
            await _receive_form(sink, chunks, boundary, length, form)
    except BaseException as exc:
        sink.abandon()
        received.discard()
        if isinstance(exc, MultipartError):
            what = form.what if form is not None else "the body"
            raise ClientException(f"{what} was cut short or malformed: {exc}") from None
        raise
    return received


class _Sink:
    """The file being received (at most one at a time) and the finished ones."""

    def __init__(self, box: Photobox, received: Received) -> None:
        self.box = box
        self.received = received
        self.writer: TempWriter | None = None
        self.name = ""

    def start(self, name: str) -> None:
        self.writer = TempWriter(self.box.path("tmp"), reserve=self.box.settings.disk_reserve_bytes)
        self.name = name

    async def write(self, data: bytes) -> None:
        assert self.writer is not None
        await self.writer.write(data)

    async def end(self) -> None:
        assert self.writer is not None
        path, sha1, size = await self.writer.finish()
        self.writer = None
        self.received.files.append(ReceivedFile(path, sha1, size, self.name))

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None


async def _receive_form(sink: _Sink, chunks: AsyncIterable[bytes], boundary: str, length: int | None,
                        form: Multipart) -> None:
    fields = sink.received.fields
    segment: MultipartSegment | None = None
    storing = False  # the current segment is a file being stored
    value = bytearray()
    files = 0
    with PushMultipartParser(boundary, content_length=-1 if length is None else length,
                             max_segment_count=form.max_segments) as parser:
        async for chunk in chunks:
            if not chunk:  # an empty chunk would tell the parser the input ended
                continue
            for event in parser.parse(chunk):
                if isinstance(event, MultipartSegment):
                    segment, value = event, bytearray()
                    storing = event.filename is not None and event.name in form.file_fields
                    if storing:
                        files += 1
                        if files > form.max_files:
                            noun = "file" if form.max_files == 1 else "files"
                            raise ClientException(f"send at most {form.max_files} {noun} in one request; "
                                                  f"nothing was stored")
                        sink.start(event.filename or "")
                elif event is None:  # the end of the segment
                    if storing:
                        await sink.end()
                    elif segment is not None and segment.filename is None and segment.name in form.text_fields:
                        fields[segment.name] = value.decode(errors="replace")
                    segment, storing = None, False
                elif storing:
                    await sink.write(event)
                elif segment is not None and segment.filename is None and segment.name in form.text_fields:
                    if len(value) + len(event) > form.max_field_bytes:
                        raise ClientException(f"form field {segment.name!r} is too long")
                    value.extend(event)
                # else: a field this route does not take: skipped
    # (Leaving the ``with`` tells the parser the input ended: it raises if the body was cut short.)
