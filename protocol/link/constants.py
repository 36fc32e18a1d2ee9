"""Protocol constants, in one place as wireguard-go keeps them (device/constants.go).

Times are seconds; sizes are bytes. Section numbers refer to the WireGuard
whitepaper ("WireGuard: Next Generation Kernel Network Tunnel", 2020-06-01).
"""

from typing import Final

# Timers (whitepaper section 6.1)
REKEY_AFTER_MESSAGES: Final = 1 << 60
REJECT_AFTER_MESSAGES: Final = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME: Final = 120.0
REJECT_AFTER_TIME: Final = 180.0
REKEY_ATTEMPT_TIME: Final = 90.0
REKEY_TIMEOUT: Final = 5.0
REKEY_TIMEOUT_JITTER_MAX_MS: Final = 334  # jitter is 0..333 ms inclusive
KEEPALIVE_TIMEOUT: Final = 10.0
COOKIE_REFRESH_TIME: Final = 120.0
HANDSHAKE_INITIATION_RATE: Final = 1.0 / 50  # one consumed initiation per peer per 20 ms
MAX_TIMER_HANDSHAKES: Final = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)  # 18 retries
ZERO_KEYS_AFTER: Final = REJECT_AFTER_TIME * 3  # 540 s

# Message types and sizes (whitepaper section 5.4)
MESSAGE_INITIATION: Final = 1
MESSAGE_RESPONSE: Final = 2
MESSAGE_COOKIE_REPLY: Final = 3
MESSAGE_TRANSPORT: Final = 4

INITIATION_SIZE: Final = 148
RESPONSE_SIZE: Final = 92
COOKIE_REPLY_SIZE: Final = 64
TRANSPORT_HEADER_SIZE: Final = 16
TAG_SIZE: Final = 16
KEEPALIVE_SIZE: Final = TRANSPORT_HEADER_SIZE + TAG_SIZE
PADDING_MULTIPLE: Final = 16
MAX_TRANSPORT_SIZE: Final = 65535 + TRANSPORT_HEADER_SIZE + TAG_SIZE

KEY_SIZE: Final = 32
TIMESTAMP_SIZE: Final = 12
MAC_SIZE: Final = 16
COOKIE_NONCE_SIZE: Final = 24

# Replay window (RFC 6479 as wireguard-go's replay.go sizes it)
REPLAY_BLOCK_BITS: Final = 64
REPLAY_RING_BLOCKS: Final = 128
REPLAY_WINDOW: Final = (REPLAY_RING_BLOCKS - 1) * REPLAY_BLOCK_BITS  # 8128

# Bounded queues
MAX_STAGED_PACKETS: Final = 128
MAX_OUTBOX: Final = 4096
MAX_EVENTS: Final = 4096
