"""The DHT's shell (node/dht.py) on a real loopback socket, in trio's virtual time."""

import trio
import trio.testing

from tidewire.node.dht import DhtService
from tidewire.protocol.dht import krpc


def test_a_dht_node_sleeps_until_its_next_deadline() -> None:
    """Its timer loop wakes for deadlines and new work, not for its own sends: after
    answering one query a node quiet for 100 s wakes a handful of times (it once spun,
    at 100% of a core, on a clock that was not trio's and on its own wake-ups)."""

    async def main() -> tuple[int, krpc.Message]:
        svc = DhtService.bind("127.0.0.1", 0)
        asker = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(svc.run)
                await asker.sendto(krpc.query(b"t1", "ping", bytes(20)), svc.address)
                with trio.fail_after(5):
                    answer = krpc.parse((await asker.recvfrom(1500))[0])
                await trio.sleep(100)
                nursery.cancel_scope.cancel()
        finally:
            svc.close()
            asker.close()
        return svc.wakeups, answer

    wakeups, answer = trio.run(main, clock=trio.testing.MockClock(rate=1000))  # 100 s in 0.1 s
    assert isinstance(answer, krpc.Response) and answer.t == b"t1"
    assert wakeups <= 3, wakeups
