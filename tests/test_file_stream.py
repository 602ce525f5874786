"""The one file server's thread reader (photobox.web.files.in_thread) when a client leaves
mid-download: the read running in a thread is left to finish, then the file is closed; no
"generator already executing", which the load test saw as server-log tracebacks."""

from __future__ import annotations

import asyncio
import threading

from photobox.web.files import file_range, in_thread


def test_a_client_leaving_during_a_read_closes_the_file_after_the_read(tmp_path):
    entered, release, closed = threading.Event(), threading.Event(), threading.Event()

    def slow_blocks():
        try:
            yield b"first"
            entered.set()
            release.wait(5)  # the disk is slow: the client leaves while this read runs
            yield b"second"
        finally:
            closed.set()

    async def main():
        stream = in_thread(slow_blocks())
        assert await stream.__anext__() == b"first"
        reader = asyncio.ensure_future(stream.__anext__())
        await asyncio.to_thread(entered.wait, 5)
        reader.cancel()  # what the server does to the response when the client disconnects
        try:
            await reader
        except asyncio.CancelledError:
            pass
        await stream.aclose()  # must not raise "generator already executing"
        assert not closed.is_set()
        release.set()
        await asyncio.to_thread(closed.wait, 5)
        return closed.is_set()

    assert asyncio.run(main())


def test_whole_file_streams_in_blocks(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 1000)

    async def main():
        return b"".join([block async for block in in_thread(file_range(path, 10, 200_000))])

    assert asyncio.run(main()) == path.read_bytes()[10:200_010]
