"""The key derivations and ciphers of backup files, each behind a cap on what a file may ask.

A backup file names its own KDF cost. A file asking for scrypt N=2**40, a billion PBKDF2
rounds or 64 GiB of Argon2 is an attack on the machine (hours of CPU, or memory exhaustion),
so every cost is checked against a cap before any work starts. Each cap admits every export
the app itself writes, with room to spare; the reason is beside each one.
"""

import hashlib

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from totpd.errors import EnrolError

KEY_BYTES = 32
GCM_NONCE_BYTES = 12
GCM_TAG_BYTES = 16
# scrypt uses 128 * N * r bytes. Aegis always writes N=2**15, r=8, p=1 (32 MiB: what an
# Android app can afford); eight times that still fits a Raspberry Pi.
MAX_SCRYPT_BYTES = 256 << 20
MAX_SCRYPT_P = 16
# andOTP draws 140,000 to 160,000 PBKDF2-SHA1 rounds per backup; 2 million is over twelve
# times that and a few seconds of CPU here (a minute on a Pi Zero), where a billion is hours.
MAX_PBKDF2_ROUNDS = 2_000_000
# ente derives with libsodium's "sensitive" limits (1 GiB, 4 passes), halving the memory and
# doubling the passes on a phone short of memory: memory never above 1 GiB, and memory times
# passes never above 4 GiB.
MAX_ARGON2_BYTES = 1 << 30
MAX_ARGON2_WORK_BYTES = 4 << 30
MIN_ARGON2_BYTES = 8 << 10  # libsodium's own floor


def scrypt_key(passphrase: str, salt: bytes, n: int, r: int, p: int, what: str) -> bytes:
    """A 256-bit key by scrypt, refused when the parameters are malformed or too costly."""
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= MAX_SCRYPT_P:
        raise EnrolError(f"{what}: malformed scrypt parameters")
    if 128 * n * r > MAX_SCRYPT_BYTES:
        raise EnrolError(
            f"{what}: the file asks scrypt for {128 * n * r >> 20} MiB (N={n}, r={r}); the"
            f" limit is {MAX_SCRYPT_BYTES >> 20} MiB: refused as damaged or hostile"
        )
    derive = Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive
    return derive(passphrase.encode())


def pbkdf2_key(passphrase: str, salt: bytes, rounds: int, digest: str, what: str) -> bytes:
    """A 256-bit key by PBKDF2-HMAC, refused when the file asks for too many rounds."""
    if not 1 <= rounds <= MAX_PBKDF2_ROUNDS:
        raise EnrolError(
            f"{what}: the file asks for {rounds:,} PBKDF2 rounds; the limit is"
            f" {MAX_PBKDF2_ROUNDS:,}: refused as damaged or hostile"
        )
    return hashlib.pbkdf2_hmac(digest, passphrase.encode(), salt, rounds, KEY_BYTES)


def argon2id_key(passphrase: str, salt: bytes, passes: int, memory_bytes: int, what: str) -> bytes:
    """A 256-bit key by libsodium's crypto_pwhash (Argon2id v1.3, one lane), within the caps."""
    from nacl.bindings import crypto_pwhash_alg, crypto_pwhash_ALG_ARGON2ID13
    from nacl.exceptions import RuntimeError as SodiumError

    if not MIN_ARGON2_BYTES <= memory_bytes <= MAX_ARGON2_BYTES or passes < 1:
        raise EnrolError(
            f"{what}: the file asks Argon2 for {memory_bytes >> 20} MiB and {passes} passes; the"
            f" limit is {MAX_ARGON2_BYTES >> 20} MiB: refused as damaged or hostile"
        )
    if passes * memory_bytes > MAX_ARGON2_WORK_BYTES:
        raise EnrolError(
            f"{what}: the file asks Argon2 for {passes} passes over {memory_bytes >> 20} MiB;"
            f" the limit is {MAX_ARGON2_WORK_BYTES >> 30} GiB in all: refused as damaged or hostile"
        )
    try:
        key: bytes = crypto_pwhash_alg(
            KEY_BYTES, passphrase.encode(), salt, passes, memory_bytes, crypto_pwhash_ALG_ARGON2ID13
        )
    except (SodiumError, MemoryError):
        raise EnrolError(
            f"{what}: this machine cannot spare the {memory_bytes >> 20} MiB the key needs"
        ) from None
    return key


def open_gcm(key: bytes, nonce: bytes, sealed: bytes, refusal: str) -> bytes:
    """AES-256-GCM decryption of `sealed` (ciphertext then tag); `refusal` when it fails."""
    if len(nonce) != GCM_NONCE_BYTES or len(sealed) < GCM_TAG_BYTES:
        raise EnrolError(refusal)
    try:
        return AESGCM(key).decrypt(nonce, sealed, None)
    except InvalidTag:
        raise EnrolError(refusal) from None
