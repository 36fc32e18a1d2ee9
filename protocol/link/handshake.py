"""WireGuard's handshake messages on top of the Noise pattern (whitepaper section 5.4.2-5.4.3).

One `Handshake` per peer holds the in-flight state. Its moves follow one
transition table; an illegal move raises LocalProtocolError naming the state
and the event. Reading a message never changes the state until every check has
passed: the work happens on a copy of the symmetric state that is kept only on
success, so a forged message leaves no trace but a drop counter.
"""

from dataclasses import dataclass, field
from enum import Enum, auto

from ..errors import LocalProtocolError, RemoteProtocolError
from . import noise
from .constants import HANDSHAKE_INITIATION_RATE, KEY_SIZE, RESPONSE_SIZE, TIMESTAMP_SIZE
from .crypto import dh, public_key
from .messages import (
    Initiation,
    Response,
    build_initiation,
    build_response,
)
from .profile import Profile


class State(Enum):
    ZEROED = auto()
    INITIATION_CREATED = auto()
    INITIATION_CONSUMED = auto()
    RESPONSE_CREATED = auto()
    RESPONSE_CONSUMED = auto()


class Event(Enum):
    CREATE_INITIATION = auto()
    CONSUME_INITIATION = auto()
    CREATE_RESPONSE = auto()
    CONSUME_RESPONSE = auto()
    BEGIN_SESSION = auto()
    CLEAR = auto()


_ANY = tuple(State)
TRANSITIONS: dict[tuple[State, Event], State] = {
    **{(s, Event.CREATE_INITIATION): State.INITIATION_CREATED for s in _ANY},
    **{(s, Event.CONSUME_INITIATION): State.INITIATION_CONSUMED for s in _ANY},
    **{(s, Event.CLEAR): State.ZEROED for s in _ANY},
    (State.INITIATION_CONSUMED, Event.CREATE_RESPONSE): State.RESPONSE_CREATED,
    (State.INITIATION_CREATED, Event.CONSUME_RESPONSE): State.RESPONSE_CONSUMED,
    (State.RESPONSE_CREATED, Event.BEGIN_SESSION): State.ZEROED,
    (State.RESPONSE_CONSUMED, Event.BEGIN_SESSION): State.ZEROED,
}


@dataclass(slots=True)
class SessionKeys:
    send: bytes
    recv: bytes
    is_initiator: bool
    local_index: int
    remote_index: int


@dataclass(slots=True)
class Handshake:
    """Per-peer handshake state (wireguard-go's `Handshake` struct)."""

    profile: Profile
    local_private: bytes
    local_public: bytes
    remote_static: bytes
    preshared_key: bytes = bytes(KEY_SIZE)
    state: State = State.ZEROED
    sym: noise.SymmetricState | None = None
    ephemeral_private: bytes = b""
    local_index: int = 0
    remote_index: int = 0
    remote_ephemeral: bytes = b""
    last_timestamp: bytes | None = None  # newest accepted from this peer
    last_initiation_consumption: float | None = None
    last_sent_initiation: float | None = None
    static_static: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        # DH(S_local, S_remote) is fixed per peer: computed once (wireguard-go
        # calls it precomputedStaticStatic). A low-order remote key is a
        # configuration error, caught when the peer is added.
        try:
            self.static_static = dh(self.local_private, self.remote_static)
        except RemoteProtocolError:
            raise LocalProtocolError("public_key: a low-order point, not a usable key") from None

    def move(self, event: Event) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(
                f"handshake: event {event.name} is illegal in state {self.state.name}"
            ) from None

    def clear(self) -> None:
        self.move(Event.CLEAR)
        self.sym = None
        self.ephemeral_private = b""
        self.remote_ephemeral = b""
        self.local_index = 0
        self.remote_index = 0

    def _initial(self) -> noise.SymmetricState:
        return noise.SymmetricState.from_initial(
            self.profile.initial_chain_key, self.profile.initial_hash
        )

    # -- initiator ---------------------------------------------------------

    def create_initiation(
        self, *, ephemeral_private: bytes, local_index: int, timestamp: bytes
    ) -> bytearray:
        """The initiation with mac1/mac2 left zero for the cookie generator to fill."""
        if len(timestamp) != TIMESTAMP_SIZE:
            raise LocalProtocolError("create_initiation: a timestamp is 12 bytes")
        sym = self._initial()
        sym.mix_hash(self.remote_static)
        e_pub = public_key(ephemeral_private)
        enc_static, enc_ts = noise.write_message1(
            sym,
            e_priv=ephemeral_private,
            e_pub=e_pub,
            s_priv=self.local_private,
            s_pub=self.local_public,
            rs=self.remote_static,
            payload=timestamp,
        )
        self.move(Event.CREATE_INITIATION)
        self.sym = sym
        self.ephemeral_private = ephemeral_private
        self.local_index = local_index
        msg = Initiation(
            sender=local_index,
            ephemeral=e_pub,
            encrypted_static=enc_static,
            encrypted_timestamp=enc_ts,
            mac1=bytes(16),
            mac2=bytes(16),
        )
        return bytearray(build_initiation(msg))

    def consume_response(self, msg: Response) -> SessionKeys:
        """Check a response against our initiation; on success derive the session."""
        if self.state is not State.INITIATION_CREATED or msg.receiver != self.local_index:
            raise RemoteProtocolError("response_unexpected")
        assert self.sym is not None
        sym = noise.SymmetricState(ck=self.sym.ck, h=self.sym.h)
        noise.read_message2(
            sym,
            e_priv=self.ephemeral_private,
            s_priv=self.local_private,
            re=msg.ephemeral,
            psk=self.preshared_key,
            enc_payload=msg.encrypted_nothing,
        )
        self.move(Event.CONSUME_RESPONSE)
        self.sym = sym
        self.remote_index = msg.sender
        self.remote_ephemeral = msg.ephemeral
        return self._begin_session(is_initiator=True)

    # -- responder ---------------------------------------------------------

    def create_response(
        self, *, ephemeral_private: bytes, local_index: int
    ) -> tuple[bytearray, SessionKeys]:
        if self.state is not State.INITIATION_CONSUMED or self.sym is None:
            raise LocalProtocolError(
                f"handshake: event CREATE_RESPONSE is illegal in state {self.state.name}"
            )
        e_pub = public_key(ephemeral_private)
        enc_nothing = noise.write_message2(
            self.sym,
            e_priv=ephemeral_private,
            e_pub=e_pub,
            re=self.remote_ephemeral,
            rs=self.remote_static,
            psk=self.preshared_key,
            payload=b"",
        )
        self.move(Event.CREATE_RESPONSE)
        self.local_index = local_index
        msg = Response(
            sender=local_index,
            receiver=self.remote_index,
            ephemeral=e_pub,
            encrypted_nothing=enc_nothing,
            mac1=bytes(16),
            mac2=bytes(16),
        )
        out = bytearray(build_response(msg))
        assert len(out) == RESPONSE_SIZE
        return out, self._begin_session(is_initiator=False)

    def _begin_session(self, *, is_initiator: bool) -> SessionKeys:
        assert self.sym is not None
        k1, k2 = self.sym.split()
        keys = SessionKeys(
            send=k1 if is_initiator else k2,
            recv=k2 if is_initiator else k1,
            is_initiator=is_initiator,
            local_index=self.local_index,
            remote_index=self.remote_index,
        )
        self.move(Event.BEGIN_SESSION)
        self.sym = None
        self.ephemeral_private = b""
        return keys


@dataclass(slots=True)
class ConsumedInitiation:
    """The first half of a responder's read: who sent it, and the state to continue from."""

    remote_static: bytes
    sym: noise.SymmetricState
    msg: Initiation


def open_initiation(
    profile: Profile, local_private: bytes, local_public: bytes, msg: Initiation
) -> ConsumedInitiation:
    """Decrypt the initiator's static key (before the peer is known)."""
    sym = noise.SymmetricState.from_initial(profile.initial_chain_key, profile.initial_hash)
    sym.mix_hash(local_public)
    rs = noise.read_message1_static(
        sym, s_priv=local_private, re=msg.ephemeral, enc_static=msg.encrypted_static
    )
    return ConsumedInitiation(remote_static=rs, sym=sym, msg=msg)


def finish_initiation(hs: Handshake, opened: ConsumedInitiation, *, now: float) -> bytes:
    """Decrypt the timestamp with the peer's precomputed static-static DH and apply the checks.

    Raises RemoteProtocolError (and leaves `hs` as it was) if the timestamp is
    not newer than the last accepted one, or the peer floods initiations.
    """
    sym = opened.sym
    key = sym.mix_key(hs.static_static)
    timestamp = sym.decrypt_and_hash(key, opened.msg.encrypted_timestamp)
    if hs.last_timestamp is not None and timestamp <= hs.last_timestamp:
        raise RemoteProtocolError("initiation_stale_timestamp")
    if (
        hs.last_initiation_consumption is not None
        and now - hs.last_initiation_consumption < HANDSHAKE_INITIATION_RATE
    ):
        raise RemoteProtocolError("initiation_flood")
    hs.move(Event.CONSUME_INITIATION)
    hs.sym = sym
    hs.remote_ephemeral = opened.msg.ephemeral
    hs.remote_index = opened.msg.sender
    hs.last_timestamp = timestamp
    hs.last_initiation_consumption = now
    return timestamp
