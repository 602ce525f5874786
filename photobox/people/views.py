"""People: the grid of people, a person's photos, naming, hiding, merging, and fixing faces."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Response
from msgspec import Struct

from photobox.library.paths import derived_path
from photobox.library.timeline import Scope
from photobox.library.views.timeline import render_grid_page
from photobox.people import store
from photobox.web.deps import Box, Read
from photobox.web.files import serve_file
from photobox.web.params import Id, query_int
from photobox.web.render import page
from photobox.web.security import local_path

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class PersonForm(Struct):
    name: str | None = None
    birth_date: str | None = None
    csrf_token: str = ""


class MergeForm(Struct):
    other: Id
    csrf_token: str = ""


class FaceForm(Struct):
    person_id: Id | None = None
    new_name: str = ""
    back: str = "/people"
    csrf_token: str = ""


@get("/people", include_in_schema=False)
async def people_page(request: Request, box: Box, read: Read,
                      hidden: FromQuery[bool] = False) -> Response:
    people = await read(lambda c: store.list_people(c, hidden=hidden))
    return page(request, "people.html", people=people, showing_hidden=hidden, face_models=box.face_models.status())


async def _person(read: Read, person_id: int) -> store.Person:
    person = await read(store.get_person, person_id)
    if person is None:
        raise NotFoundException("no such person")
    return person


@get("/people/{person_id:int}", include_in_schema=False)
async def person_page(request: Request, read: Read, person_id: FromPath[int]) -> Response:
    person = await _person(read, person_id)

    def load(conn):
        return ([p for p in store.list_people(conn) if p.id != person_id],
                store.merge_suggestions(conn, person_id))

    others, suggestions = await read(load)
    return await render_grid_page(request, read, Scope("person", person_id=person_id), title=person.label,
                                  person=person, merge_choices=others, suggestions=suggestions)


@get("/people/unassigned", include_in_schema=False)
async def unassigned(request: Request, read: Read, after: FromQuery[Id] = 0) -> Response:
    def load(conn):
        return store.unassigned_faces(conn, after_id=after), store.list_people(conn)

    faces, people = await read(load)
    return page(request, "unassigned.html", faces=faces, people=people,
                more=faces[-1][0] if len(faces) == 60 else None)


@post("/people/{person_id:int}", include_in_schema=False)
async def update(box: Box, read: Read, person_id: FromPath[int],
                 data: Annotated[PersonForm, Form]) -> Response:
    await _person(read, person_id)
    await box.db.write(
        lambda c: store.update_person(c, person_id, name=data.name, birth_date=data.birth_date))
    return Redirect(f"/people/{person_id}", status_code=303)


@post("/people/{person_id:int}/hide", include_in_schema=False)
async def hide(box: Box, read: Read, person_id: FromPath[int]) -> Response:
    person = await _person(read, person_id)
    await box.db.write(lambda c: store.update_person(c, person_id, hidden=not person.hidden))
    return Redirect("/people", status_code=303)


@post("/people/{person_id:int}/merge", include_in_schema=False)
async def merge(box: Box, read: Read, person_id: FromPath[int],
                data: Annotated[MergeForm, Form]) -> Response:
    await _person(read, person_id)
    await _person(read, data.other)
    await box.db.write(lambda c: store.merge_people(c, person_id, data.other))
    return Redirect(f"/people/{person_id}", status_code=303)


@post("/faces/{face_id:int}/not", include_in_schema=False)
async def not_this_person(box: Box, face_id: FromPath[int], data: Annotated[FaceForm, Form]) -> Response:
    person_id = data.person_id
    if person_id is not None:
        await box.db.write(lambda c: store.not_this_person(c, face_id, person_id))
    return Redirect(local_path(data.back, "/people"), status_code=303)


@post("/faces/{face_id:int}/assign", include_in_schema=False)
async def assign(box: Box, face_id: FromPath[int], data: Annotated[FaceForm, Form]) -> Response:
    await box.db.write(
        lambda c: store.assign_face(c, face_id, data.person_id, new_name=data.new_name))
    return Redirect(local_path(data.back, "/people"), status_code=303)


@post("/people/{person_id:int}/cover", include_in_schema=False)
async def cover(request: Request, box: Box, person_id: FromPath[int],
                data: Annotated[FaceForm, Form]) -> Response:
    face_id = query_int(request, "face", 0)
    await box.db.write(lambda c: store.set_cover(c, person_id, face_id))
    return Redirect(local_path(data.back, "/people"), status_code=303)


def _crop_face(box, face):
    """Cut a face out of its photo's preview into cache/faces (square, with some margin)."""
    from PIL import Image

    asset_id, x1, y1, x2, y2 = face
    with Image.open(derived_path(box, "preview", asset_id)) as im:
        w, h = im.size
        cx, cy = (x1 + x2) / 2 * w, (y1 + y2) / 2 * h
        side = max((x2 - x1) * w, (y2 - y1) * h) * 1.5
        crop = im.convert("RGB").crop((int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2)))
        return crop.resize((160, 160))


@get("/api/faces/{face_id:int}/thumbnail", tags=["people"], summary="A face, cropped from its photo (160 px)")
async def face_thumbnail(request: Request, box: Box, read: Read, face_id: FromPath[int]) -> Response:
    face = await read(lambda c: c.execute(
        "SELECT asset_id, x1, y1, x2, y2 FROM faces WHERE id = ?", (face_id,)).fetchone())
    if face is None:
        raise NotFoundException("no such face")
    path = box.path("cache", "faces", f"{face_id // 1000:04d}", f"{face_id}.webp")
    if not path.exists():
        def make() -> None:
            crop = _crop_face(box, face)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            crop.save(tmp, "WEBP", quality=80)
            tmp.replace(path)

        try:
            await asyncio.to_thread(make)
        except FileNotFoundError:
            raise NotFoundException("the photo has no preview yet") from None
    return serve_file(request, path, media_type="image/webp", etag=f'"face-{face_id}"',
                      cache_control="private, max-age=86400")


ROUTES = [people_page, unassigned, person_page, update, hide, merge, not_this_person, assign, cover, face_thumbnail]
