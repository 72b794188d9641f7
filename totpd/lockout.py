"""Brute-force bounds: sliding windows over PIN failures per caller, per user, and global.

While any layer is tripped no PIN is checked at all. The global layer counts every failure
from anywhere, because caller ID can be spoofed: it is what bounds an attacker.
"""

from dataclasses import dataclass
from enum import StrEnum

import limits
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from totpd.config import LockoutConfig
from totpd.errors import LockoutUnavailable

WITHHELD = "withheld"


class Layer(StrEnum):
    """One lockout layer; also its metric label."""

    CALLER = "caller"
    USER = "user"
    GLOBAL = "global"


@dataclass(frozen=True)
class Rule:
    """A layer, its limit, and the key it counts for one PIN attempt."""

    layer: Layer
    limit: limits.RateLimitItem
    key: str


class Lockout:
    """The three layers over one `limits` storage."""

    def __init__(self, config: LockoutConfig, storage: Storage | None = None) -> None:
        self.storage = storage or MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self.storage)
        self._limits = {
            Layer.CALLER: limits.parse(config.per_caller),
            Layer.USER: limits.parse(config.per_user),
            Layer.GLOBAL: limits.parse(config.global_),
        }

    def _rules(self, caller: str, user: str) -> list[Rule]:
        return [
            Rule(Layer.GLOBAL, self._limits[Layer.GLOBAL], "all"),
            Rule(Layer.CALLER, self._limits[Layer.CALLER], caller or WITHHELD),
            Rule(Layer.USER, self._limits[Layer.USER], user or "unknown"),
        ]

    async def tripped(self, caller: str, user: str) -> Layer | None:
        """The first layer that refuses another attempt, or None when a PIN may be checked."""
        try:
            for rule in self._rules(caller, user):
                if not await self._limiter.test(rule.limit, rule.layer, rule.key):
                    return rule.layer
        except Exception as exc:  # any storage failure: fail closed
            raise LockoutUnavailable(f"lockout storage: {type(exc).__name__}") from None
        return None

    async def record_failure(self, caller: str, user: str) -> None:
        """Count one failed PIN attempt in every layer."""
        try:
            for rule in self._rules(caller, user):
                await self._limiter.hit(rule.limit, rule.layer, rule.key)
        except Exception as exc:
            raise LockoutUnavailable(f"lockout storage: {type(exc).__name__}") from None
