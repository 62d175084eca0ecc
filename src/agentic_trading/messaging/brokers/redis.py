"""A broker on Redis: a hash per experiment, a set of ids and a stream of events per namespace.

Keys (``{ns}`` is a Redis Cluster hash tag, so a namespace's keys share one slot and can be
written in one transaction)::

    at:{ns}:exp:<experiment_id>   HASH    event (newest event JSON), config (JSON), stop (JSON)
    at:{ns}:experiments           SET     experiment ids
    at:{ns}:events                STREAM  entries {"data": <event JSON>}, trimmed to ~maxlen
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentic_trading.config import Settings
from agentic_trading.messaging.brokers.base import (
    EVENT_FIELD,
    STOP_FIELD,
    BrokerError,
    BrokerUnavailableError,
    WriteResult,
)

__all__ = ["RedisBroker", "redis_client_from_settings"]

KEY_PREFIX = "at"
T = TypeVar("T")

# One round trip per write: append the event, set the record's fields, refresh the expiries, and
# report whether the record existed and its stop flag. Keys share a hash slot (Cluster-safe).
_WRITE_SCRIPT = """
local existed = redis.call('EXISTS', KEYS[1])
local id = false
if ARGV[4] ~= '' then
  id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'data', ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[1])
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'EVENT_FIELD', ARGV[4])
  end
end
if #ARGV > 5 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6))
end
if #ARGV > 5 or ARGV[5] == '1' then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return {existed, redis.call('HGET', KEYS[1], 'STOP_FIELD'), id}
""".replace("STOP_FIELD", STOP_FIELD).replace("EVENT_FIELD", EVENT_FIELD)
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT.encode()).hexdigest()  # the name Redis gives the script


def redis_client_from_settings(settings: Settings) -> aioredis.Redis:
    """An asyncio Redis client for ``settings`` that fails fast instead of retrying for long.

    redis-py's defaults retry a dead server for seconds; the channel has its own back-off, so
    here a call makes one retry (for a pooled connection the server closed) and gives up.
    """
    common: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "retry": Retry(NoBackoff(), 1),
        "health_check_interval": 30,
        "client_name": "agentic-trading",
    }
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    tls = {
        name: value
        for name, value in (
            ("ssl_ca_certs", settings.redis_ssl_ca_certs),
            ("ssl_certfile", settings.redis_ssl_certfile),
            ("ssl_keyfile", settings.redis_ssl_keyfile),
        )
        if value
    }
    if settings.redis_ssl or (settings.redis_url or "").startswith("rediss://"):
        common.update(tls)
    if settings.redis_sentinels:
        return _sentinel_master(settings, common, password)
    if settings.redis_url:
        extra: dict[str, Any] = {}
        if settings.redis_username:
            extra["username"] = settings.redis_username
        if password:
            extra["password"] = password
        return aioredis.Redis.from_url(settings.redis_url, **common, **extra)
    return aioredis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        username=settings.redis_username,
        password=password,
        ssl=settings.redis_ssl,
        **common,
    )


def _sentinel_master(
    settings: Settings, common: dict[str, Any], password: str | None
) -> aioredis.Redis:
    """A client of the primary that ``REDIS_SENTINELS`` name for ``REDIS_SENTINEL_MASTER``;
    after a failover its next connection goes to the new primary."""
    from redis.asyncio.sentinel import Sentinel

    sentinel_password = (
        settings.redis_sentinel_password.get_secret_value()
        if settings.redis_sentinel_password
        else None
    )
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        settings.sentinel_addresses(),
        sentinel_kwargs={
            "socket_timeout": settings.redis_socket_timeout,
            "socket_connect_timeout": settings.redis_connect_timeout,
            "password": sentinel_password,
            "decode_responses": True,
        },
    )
    master: aioredis.Redis = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=aioredis.Redis,
        username=settings.redis_username,
        password=password,
        db=settings.redis_db,
        ssl=settings.redis_ssl,
        **common,
    )
    return master


class RedisBroker:
    """Records and event logs in Redis, readable by any Redis client.

    The client is created lazily in the event loop that first uses the broker; a broker belongs
    to that loop.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[Settings], aioredis.Redis] = redis_client_from_settings,
    ) -> None:
        self._settings = settings
        self._client_factory = client_factory
        self._client: aioredis.Redis | None = None
        self._ttl = max(1, round(settings.message_ttl_seconds))
        self._maxlen = settings.message_stream_maxlen

    @property
    def location(self) -> str:
        return self._settings.redis_location()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = self._client_factory(self._settings)
        return self._client

    async def _evalsha(self, *keys_and_args: Any) -> Any:
        # EVALSHA straight through execute_command: redis-py's Script wrapper costs ~30 us more.
        try:
            return await self.client.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", _WRITE_SHA, 3, *keys_and_args
            )
        except NoScriptError:  # a new or restarted server: EVAL also caches the script
            return await self.client.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", _WRITE_SCRIPT, 3, *keys_and_args
            )

    @staticmethod
    def _record_key(namespace: str, experiment_id: str) -> str:
        return f"{KEY_PREFIX}:{{{namespace}}}:exp:{experiment_id}"

    @staticmethod
    def _index_key(namespace: str) -> str:
        return f"{KEY_PREFIX}:{{{namespace}}}:experiments"

    @staticmethod
    def _stream_key(namespace: str) -> str:
        return f"{KEY_PREFIX}:{{{namespace}}}:events"

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
        try:
            return await operation()
        except Exception:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py may turn a cancellation into a timeout; keep it a cancellation.
                raise asyncio.CancelledError from None
            return self._translate()

    def _translate(self) -> NoReturn:
        """Re-raise the exception being handled as one of the broker's errors."""
        try:
            raise
        except (AuthenticationError, AuthorizationError) as exc:
            raise BrokerUnavailableError(
                f"Redis at {self.location} refused the credentials (check REDIS_USERNAME and "
                f"REDIS_PASSWORD): {exc}"
            ) from None
        except (TimeoutError, RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BrokerUnavailableError(
                f"Redis at {self.location} is unreachable: {exc}"
            ) from None
        except ReadOnlyError as exc:  # a replica: a failover is under way
            raise BrokerUnavailableError(
                f"Redis at {self.location} is a read-only replica now: {exc}"
            ) from None
        except ResponseError as exc:
            text = str(exc)
            if "NOAUTH" in text or "WRONGPASS" in text:
                raise BrokerUnavailableError(
                    f"Redis at {self.location} needs a password (set REDIS_PASSWORD): {exc}"
                ) from None
            # Refused writes are an outage, not a bad command: they pass when memory is freed
            # (maxmemory with noeviction) or a failover ends (a replica), and then we resend.
            if isinstance(exc, OutOfMemoryError) or "used memory > 'maxmemory'" in text:
                raise BrokerUnavailableError(
                    f"Redis at {self.location} refuses writes: it is out of memory (maxmemory "
                    f"with the noeviction policy): {exc}"
                ) from None
            if "READONLY" in text:
                raise BrokerUnavailableError(
                    f"Redis at {self.location} refuses writes: it is a read-only replica: {exc}"
                ) from None
            raise BrokerError(f"Redis at {self.location} refused a command: {exc}") from None
        except RedisError as exc:
            raise BrokerError(f"Redis at {self.location} failed: {exc}") from None

    async def write(
        self,
        namespace: str,
        experiment_id: str,
        fields: Mapping[str, str],
        event: str | None,
        *,
        record_event: bool = False,
    ) -> WriteResult:
        key = self._record_key(namespace, experiment_id)
        index = self._index_key(namespace)
        stream = self._stream_key(namespace)

        args: list[str | int] = [key, index, stream, self._ttl, self._maxlen, experiment_id]
        args += [event or "", "1" if record_event and event is not None else "0"]
        for name, value in fields.items():
            args += [name, value]
        existed, stop, event_id = await self._call(lambda: self._evalsha(*args))
        return WriteResult(event_id, not existed, stop)

    async def read(self, namespace: str, experiment_id: str) -> dict[str, str] | None:
        key = self._record_key(namespace, experiment_id)
        record: dict[str, str] = await self._call(lambda: self.client.hgetall(key))  # type: ignore[arg-type,return-value]
        return record or None

    async def read_all(self, namespace: str) -> dict[str, dict[str, str]]:
        index = self._index_key(namespace)

        async def run() -> dict[str, dict[str, str]]:
            ids: list[str] = sorted(await self.client.smembers(index))  # type: ignore[arg-type]
            if not ids:
                return {}
            pipe = self.client.pipeline(transaction=False)
            for experiment_id in ids:
                pipe.hgetall(self._record_key(namespace, experiment_id))
            records = await pipe.execute()
            gone = [i for i, r in zip(ids, records, strict=True) if not r]
            if gone:  # their records expired; keep the index small
                await self.client.srem(index, *gone)
            return {i: r for i, r in zip(ids, records, strict=True) if r}

        return await self._call(run)

    async def delete(self, namespace: str, experiment_id: str, event: str | None) -> bool:
        async def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._record_key(namespace, experiment_id))
            pipe.srem(self._index_key(namespace), experiment_id)
            if event is not None:
                pipe.xadd(
                    self._stream_key(namespace),
                    {"data": event},
                    maxlen=self._maxlen,
                    approximate=True,
                )
            return await pipe.execute()

        result = await self._call(run)
        return bool(result[0])

    async def read_events(
        self, namespace: str, after: str, *, block: float, count: int
    ) -> list[tuple[str, str]]:
        stream = self._stream_key(namespace)
        block_ms = int(block * 1000) if block > 0 else None  # BLOCK 0 would wait forever

        async def run() -> Any:
            return await self.client.xread({stream: after}, count=count, block=block_ms)

        reply = await self._call(run)
        if not reply:
            return []
        entries = reply[0][1] if isinstance(reply, list) else reply.get(stream, [[]])[0]
        return [(str(eid), fields.get("data", "")) for eid, fields in entries]

    async def last_event_id(self, namespace: str) -> str:
        stream = self._stream_key(namespace)
        newest = await self._call(lambda: self.client.xrevrange(stream, count=1))
        return str(newest[0][0]) if newest else "0"

    async def ping(self) -> None:
        await self._call(self.client.ping)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (RedisError, OSError, RuntimeError):
                pass
