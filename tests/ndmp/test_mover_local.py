"""The mover's LOCAL data connection, the interface the DATA service will
plug into: the data side gets its end from ``Mover.attach_local`` and
asks for restore ranges with ``Mover.request_read``.  A real tape; the
session is reduced to what the mover asks of it."""

from __future__ import annotations

import os

import trio

from ndmp.drive import NdmpTape, ServedDrives
from ndmp.mover import Mover
from ndmp.protocol import AddrType, Message, MoverHaltReason, MoverMode, MoverState
from tapelib import Shelf


class Host:
    """What a session gives its mover."""

    def __init__(self, tape: NdmpTape, nursery: trio.Nursery) -> None:
        self.tape = tape
        self.nursery = nursery
        self.posts: list[tuple[int, object]] = []

    def data_is_idle(self) -> bool:
        return True

    def local_address(self) -> str:
        return "127.0.0.1"

    async def post(self, code: Message, body: object) -> None:
        self.posts.append((code, body))

    async def log_message(self, text: str, log_type: int = 0) -> None:
        self.posts.append((Message.LOG_MESSAGE, text))


async def _halted(host: Host) -> object:
    with trio.fail_after(10):
        while True:
            for code, body in host.posts:
                if code == Message.NOTIFY_MOVER_HALTED:
                    host.posts.clear()
                    return body
            await trio.sleep(0.01)


def test_local_backup_and_restore_through_the_data_side_end(shelf: Shelf, nst0: str) -> None:
    image = os.urandom(2500)

    async def main() -> None:
        tape = NdmpTape(ServedDrives([shelf.path]).lookup(nst0), writable=True)
        async with trio.open_nursery() as nursery:
            host = Host(tape, nursery)
            mover = Mover(host)
            mover.set_record_size(1024)
            addr = await mover.listen(MoverMode.READ, AddrType.LOCAL)
            assert addr.addr_type == AddrType.LOCAL
            data = mover.attach_local()
            assert mover.state == MoverState.ACTIVE
            await data.send_all(image)
            await data.send_eof()
            assert (await _halted(host)).reason == MoverHaltReason.CONNECT_CLOSED
            assert (mover.record_num, mover.bytes_moved) == (3, 3072)
            mover.stop()
            tape.rewind()

            mover.set_record_size(1024)
            await mover.listen(MoverMode.WRITE, AddrType.LOCAL)
            data = mover.attach_local()
            mover.request_read(1000, 1500)  # from inside record 0 into record 1
            got = b""
            with trio.fail_after(10):
                while len(got) < 1500:
                    got += await data.receive_some()
            assert got == image[1000:2500]
            await data.aclose()  # the data side has what it needs
            assert (await _halted(host)).reason == MoverHaltReason.CONNECT_CLOSED
            nursery.cancel_scope.cancel()
        tape.close()

    trio.run(main)
    drive = shelf.open_drive(0)
    drive.rewind()
    assert [drive.read(4096) for _ in range(3)] == [image[:1024], image[1024:2048], image[2048:] + bytes(572)]
    drive.close()


def test_local_backup_of_pieces_that_straddle_records(shelf: Shelf, nst0: str) -> None:
    """The mover cuts the stream into records whatever the pieces it comes
    in: pieces smaller than a record, ending inside one, spanning several;
    the records on tape are the stream's, the last one zero-padded."""
    image = os.urandom(10_000)
    cuts = [0, 100, 300, 1023, 1024, 1025, 4000, 4001, 9000, 10_000]

    async def main() -> None:
        tape = NdmpTape(ServedDrives([shelf.path]).lookup(nst0), writable=True)
        async with trio.open_nursery() as nursery:
            host = Host(tape, nursery)
            mover = Mover(host)
            mover.set_record_size(1024)
            await mover.listen(MoverMode.READ, AddrType.LOCAL)
            data = mover.attach_local()
            for start, end in zip(cuts, cuts[1:]):
                await data.send_all(image[start:end])
                await trio.sleep(0.01)  # (the mover takes each piece alone)
            await data.send_eof()
            assert (await _halted(host)).reason == MoverHaltReason.CONNECT_CLOSED
            assert (mover.record_num, mover.bytes_moved) == (10, 10 * 1024)
            nursery.cancel_scope.cancel()
        tape.close()

    trio.run(main)
    drive = shelf.open_drive(0)
    drive.rewind()
    padded = image + bytes(10 * 1024 - len(image))
    assert [drive.read(4096) for _ in range(10)] == [padded[i:i + 1024] for i in range(0, len(padded), 1024)]
    drive.close()
