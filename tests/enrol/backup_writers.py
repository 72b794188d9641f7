"""Backup files written here from the apps' published formats, for the import tests.

One writer per format, each encrypting as the app does (Aegis's docs/vault.md, 2FAS's
`servicesEncrypted`, andOTP's binary layout, ente's documented export). KDF costs are
lowered to keep tests fast; the formats carry them, so the reader does the same work either
way. ente's key comes from argon2-cffi rather than libsodium, the reader's library: the two
Argon2id implementations must agree for the test to pass.
"""

import base64
import hashlib
import json
import os
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium


@dataclass(frozen=True)
class Sample:
    """One account as an app stores it."""

    issuer: str
    name: str
    secret: str  # base32, no padding
    type_name: str  # totp, hotp, steam
    algorithm: str = "SHA1"
    digits: int = 6
    period_s: int = 30
    counter: int = 0


# Every type, algorithm and code length the importers promise, with odd periods and counters.
SAMPLES = (
    Sample("GitHub", "alice@example.com", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "totp"),
    Sample("Bank", "bob", "KVKFKRCPNZQUYMLXOVYDSQKJKZDTSRLD", "totp", "SHA256", 8, 60),
    Sample("Cloud", "carol", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "totp", "SHA512", 10, 20),
    Sample("Shop", "dan", "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U", "totp", "SHA1", 5, 45),
    Sample("Forge", "eve", "ONSWG4TFORSXG5DTMVRXEZLUOJSWG4TF", "hotp", "SHA1", 7, counter=42),
    Sample("Mail", "fay", "NBSWY3DPO5XXE3DEEBUGK3DMN4QGOZLS", "hotp", "SHA512", 9, counter=7),
    Sample("Steam", "gabe", "JRZCL47CMXVOQMNPZR2F7J4RGI", "steam", "SHA1", 5),
)
PASSPHRASE = "correct horse battery staple ünïcødé"
AEGIS_SCRYPT_N = 1 << 10
ANDOTP_ROUNDS = 1000
ENTE_PASSES, ENTE_MEMORY_BYTES = 2, 8 << 20


def _gcm(key: bytes, plain: bytes) -> tuple[bytes, bytes, bytes]:
    """(nonce, ciphertext, tag) of AES-256-GCM."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plain, None)
    return nonce, sealed[:-16], sealed[-16:]


def aegis_entry(sample: Sample) -> dict[str, Any]:
    """An entry of an Aegis vault's content."""
    info: dict[str, Any] = {
        "secret": sample.secret,
        "algo": sample.algorithm,
        "digits": sample.digits,
    }
    if sample.type_name == "hotp":
        info["counter"] = sample.counter
    else:
        info["period"] = sample.period_s
    return {
        "type": sample.type_name,
        "uuid": str(uuid.uuid4()),
        "name": sample.name,
        "issuer": sample.issuer,
        "note": "",
        "icon": None,
        "info": info,
    }


def aegis(samples: tuple[Sample, ...], passphrase: str | None = None, **slot: int) -> bytes:
    """An Aegis vault export; encrypted (one password slot, scrypt) when given a passphrase."""
    content = {"version": 3, "entries": [aegis_entry(s) for s in samples], "groups": []}
    if passphrase is None:
        document = {"version": 1, "header": {"slots": None, "params": None}, "db": content}
        return json.dumps(document).encode()
    n, r, p = slot.get("n", AEGIS_SCRYPT_N), slot.get("r", 8), slot.get("p", 1)
    master_key, salt = os.urandom(32), os.urandom(32)
    wrapping_key = hashlib.scrypt(passphrase.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    key_nonce, wrapped, key_tag = _gcm(wrapping_key, master_key)
    db_nonce, db, db_tag = _gcm(master_key, json.dumps(content).encode())
    password_slot = {
        "type": 1,
        "uuid": str(uuid.uuid4()),
        "key": wrapped.hex(),
        "key_params": {"nonce": key_nonce.hex(), "tag": key_tag.hex()},
        "n": n,
        "r": r,
        "p": p,
        "salt": salt.hex(),
        "repaired": True,
        "is_backup": False,
    }
    header = {"slots": [password_slot], "params": {"nonce": db_nonce.hex(), "tag": db_tag.hex()}}
    document = {"version": 1, "header": header, "db": base64.b64encode(db).decode()}
    return json.dumps(document).encode()


def twofas_service(sample: Sample, schema: int) -> dict[str, Any]:
    """A service of a 2FAS backup."""
    otp: dict[str, Any] = {
        "label": f"{sample.issuer}:{sample.name}",
        "account": sample.name,
        "issuer": sample.issuer,
        "digits": sample.digits,
        "algorithm": sample.algorithm,
        "source": "Link",
    }
    if schema >= 4:
        otp["tokenType"] = sample.type_name.upper()
    if sample.type_name == "hotp":
        otp["counter"] = sample.counter
    else:
        otp["period"] = sample.period_s
    return {
        "name": sample.issuer,
        "secret": sample.secret,
        "updatedAt": 1_700_000_000_000,
        "otp": otp,
        "order": {"position": 0},
    }


def twofas(samples: tuple[Sample, ...], passphrase: str | None = None, schema: int = 4) -> bytes:
    """A `.2fas` backup; encrypted (PBKDF2-SHA256, AES-GCM) when given a passphrase."""
    services = [twofas_service(s, schema) for s in samples]
    document: dict[str, Any] = {
        "services": services,
        "groups": [],
        "updatedAt": 1_700_000_000_000,
        "schemaVersion": schema,
        "appVersionCode": 5000009,
        "appOrigin": "android",
    }
    if passphrase is not None:
        salt = os.urandom(256)
        key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, 10_000, 32)

        def sealed(plain: bytes) -> str:
            nonce, ciphertext, tag = _gcm(key, plain)
            parts = (ciphertext + tag, salt, nonce)
            return ":".join(base64.b64encode(p).decode() for p in parts)

        document["services"] = []
        document["servicesEncrypted"] = sealed(json.dumps(services).encode())
        document["reference"] = sealed(b"a fixed text the app knows")
    return json.dumps(document).encode()


def andotp_entry(sample: Sample) -> dict[str, Any]:
    """An entry of an andOTP backup."""
    entry: dict[str, Any] = {
        "secret": sample.secret,
        "issuer": sample.issuer,
        "label": sample.name,
        "digits": sample.digits,
        "type": sample.type_name.upper(),
        "algorithm": sample.algorithm,
        "thumbnail": "Default",
        "last_used": 0,
        "used_frequency": 0,
        "tags": [],
    }
    if sample.type_name == "hotp":
        entry["counter"] = sample.counter
    else:
        entry["period"] = sample.period_s
    return entry


def andotp(
    samples: tuple[Sample, ...], passphrase: str | None = None, rounds: int = ANDOTP_ROUNDS
) -> bytes:
    """An andOTP backup: JSON, or rounds, salt, nonce and AES-GCM ciphertext with its tag."""
    plain = json.dumps([andotp_entry(s) for s in samples]).encode()
    if passphrase is None:
        return plain
    salt = os.urandom(12)
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), salt, rounds, 32)
    nonce, ciphertext, tag = _gcm(key, plain)
    return struct.pack(">I", rounds) + salt + nonce + ciphertext + tag


def otpauth_uri(sample: Sample) -> str:
    """The otpauth:// URI of a sample (ente's plain export is these, one per line)."""
    from urllib.parse import quote

    kind = "steam" if sample.type_name == "steam" else sample.type_name
    timing = f"counter={sample.counter}" if kind == "hotp" else f"period={sample.period_s}"
    return (
        f"otpauth://{kind}/{quote(sample.issuer)}:{quote(sample.name)}?secret={sample.secret}"
        f"&issuer={quote(sample.issuer)}&algorithm={sample.algorithm}&digits={sample.digits}"
        f"&{timing}"
    )


def uri_list(samples: tuple[Sample, ...]) -> bytes:
    """A text file of otpauth URIs, one per line."""
    return ("\n".join(otpauth_uri(s) for s in samples) + "\n").encode()


def ente(
    samples: tuple[Sample, ...],
    passphrase: str,
    passes: int = ENTE_PASSES,
    memory_bytes: int = ENTE_MEMORY_BYTES,
) -> bytes:
    """An ente Auth encrypted export: Argon2id key, one final XChaCha20-Poly1305 stream message."""
    salt = os.urandom(16)
    key = hash_secret_raw(
        passphrase.encode(), salt, passes, memory_bytes >> 10, 1, 32, Type.ID, version=19
    )
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    sealed = sodium.crypto_secretstream_xchacha20poly1305_push(
        state, uri_list(samples), None, sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
    )
    document = {
        "version": 1,
        "kdfParams": {
            "memLimit": memory_bytes,
            "opsLimit": passes,
            "salt": base64.b64encode(salt).decode(),
        },
        "encryptedData": base64.b64encode(sealed).decode(),
        "encryptionNonce": base64.b64encode(header).decode(),
    }
    return json.dumps(document).encode()
