"""Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, replayed through protocol/noise.py byte for byte.

Source: the cacophony test vector set (haskell-cryptography/cacophony,
vectors/cacophony.txt), the entry whose protocol_name is
"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s". Values below are copied from it
unchanged. WireGuard is this pattern with its identifier string as the prologue,
a TAI64N timestamp as the first payload and an empty second payload; the
vector's prologue and payloads are arbitrary, which is why the pattern code
takes them as arguments.
"""

from tidewire.protocol.link import crypto, noise
from tidewire.protocol.link.profile import CONSTRUCTION

H = bytes.fromhex
PROLOGUE = H("4a6f686e2047616c74")
PSK = H("54686973206973206d7920417573747269616e20706572737065637469766521")
INIT_STATIC = H("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1")
INIT_EPHEMERAL = H("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a")
RESP_STATIC = H("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893")
RESP_EPHEMERAL = H("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b")
HANDSHAKE_HASH = "f5191b875290abcd41347ac3622d9679688a7e980229cb937ef748336cfde0e5"
MESSAGES = [
    (
        "4c756477696720766f6e204d69736573",
        "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944001e21de9f98ddd8e2ad"
        "57527207feb56253c9c94a9e496782ecfcb2a75fbcaf1b52948cc48daefe660c62119ab5000980c84831"
        "215f2441eba616548e832985464cf17e51ee93109008399a21f7e13f",
    ),
    (
        "4d757272617920526f746862617264",
        "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843cb765f2caef0751b8f00"
        "7572dab0322217755c0632f365717edbf34d33e87a",
    ),
    ("462e20412e20486179656b", "8153ca9833bc3c1b91a7e66e5f4d4f5b59bf9e64c2f20d15f0bba7"),
    ("4361726c204d656e676572", "07af0c9c86e1b4e80f36b04ff7688d51141af3debd0332f0a705ef"),
    (
        "4a65616e2d426170746973746520536179",
        "6ab1467c0448cc78394494abaaf23afce0e234315d6e2624dcbfa8a21c1c4d073d",
    ),
    (
        "457567656e2042f6686d20766f6e2042617765726b",
        "dfc346c0d2296ae6cf1acf6f12b8456a1dba228cf8d8b774aacf1c47fc53aa80ebc7a4c292",
    ),
]


def _fresh() -> noise.SymmetricState:
    st = noise.SymmetricState.initialize(CONSTRUCTION, PROLOGUE)
    st.mix_hash(crypto.public_key(RESP_STATIC))  # pre-message: <- s
    return st


def test_initiator_writes_the_vector() -> None:
    st = _fresh()
    e_pub = crypto.public_key(INIT_EPHEMERAL)
    enc_s, enc_p = noise.write_message1(
        st,
        e_priv=INIT_EPHEMERAL,
        e_pub=e_pub,
        s_priv=INIT_STATIC,
        s_pub=crypto.public_key(INIT_STATIC),
        rs=crypto.public_key(RESP_STATIC),
        payload=H(MESSAGES[0][0]),
    )
    assert (e_pub + enc_s + enc_p).hex() == MESSAGES[0][1]
    msg2 = H(MESSAGES[1][1])
    payload = noise.read_message2(
        st, e_priv=INIT_EPHEMERAL, s_priv=INIT_STATIC, re=msg2[:32], psk=PSK, enc_payload=msg2[32:]
    )
    assert payload == H(MESSAGES[1][0])
    assert st.h.hex() == HANDSHAKE_HASH


def test_responder_reads_and_writes_the_vector_then_transport() -> None:
    st = _fresh()
    msg1 = H(MESSAGES[0][1])
    rs = noise.read_message1_static(st, s_priv=RESP_STATIC, re=msg1[:32], enc_static=msg1[32:80])
    assert rs == crypto.public_key(INIT_STATIC)
    payload = noise.read_message1_payload(st, s_priv=RESP_STATIC, rs=rs, enc_payload=msg1[80:])
    assert payload == H(MESSAGES[0][0])
    e_pub = crypto.public_key(RESP_EPHEMERAL)
    enc = noise.write_message2(
        st,
        e_priv=RESP_EPHEMERAL,
        e_pub=e_pub,
        re=msg1[:32],
        rs=rs,
        psk=PSK,
        payload=H(MESSAGES[1][0]),
    )
    assert (e_pub + enc).hex() == MESSAGES[1][1]
    assert st.h.hex() == HANDSHAKE_HASH

    # Transport: messages alternate initiator -> responder and back, each key counting from 0.
    i2r, r2i = st.split()
    counters = {i2r: 0, r2i: 0}
    for n, (plain, cipher) in enumerate(MESSAGES[2:]):
        key = i2r if n % 2 == 0 else r2i
        out = crypto.aead_encrypt(key, counters[key], H(plain), b"")
        counters[key] += 1
        assert out.hex() == cipher
