"""Async sending for the pager: the sync client's request loop, retry rules and errors."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import httpx

from alter_pipeline.api import _wire
from alter_pipeline.api.paging.concurrency import AdaptiveLimit
from alter_pipeline.api.retry import RetryPolicy, RetryState, Safety, parse_retry_after


class AsyncSender:
    """Async twin of the sync client's request loop: same retry rules, same errors, same stats.

    Every attempt passes through an `AdaptiveLimit`: it waits for room in the window, for any
    Retry-After pause and for the pace, and its outcome (success and latency, or 429) adjusts
    them.

    Sends through a set of clients of one connection each, one client per request in flight:
    httpcore checks every idle connection of a pool for expiry on each request (a socket
    peek and a peername through anyio's attribute machinery), which with one pool of 8
    connections cost about a fifth of the pager's CPU time."""

    def __init__(
        self,
        clients: list[httpx.AsyncClient],
        secrets: _wire.Secrets,
        policy: RetryPolicy,
        stats: _wire.Counters,
        limit: AdaptiveLimit | None = None,
    ) -> None:
        self._clients = clients
        self.limit = limit or AdaptiveLimit(len(clients))
        self._queue: collections.deque[asyncio.Future[float]] = collections.deque()
        self._free = list(clients)
        self._secrets = secrets
        self._policy = policy
        self._stats = stats

    def retry_state(self, call: _wire.Call, safety: Safety = Safety.IDEMPOTENT) -> RetryState:
        """The attempts of one call, shared by its sends and the judging of its bodies."""
        return RetryState(self._policy, call.method, call.path, safety)

    async def decode(self, state: RetryState, reply: _wire.Reply, call: _wire.Call) -> Any:
        """The reply's JSON, or `RetryIn` (already waited) to send it again: see `_wire`."""
        data = _wire.decode_or_retry(state, reply, call, self._secrets)
        if isinstance(data, _wire.RetryIn):
            self._stats.add(retries=1)
            await asyncio.sleep(data.seconds)
        return data

    async def ok(self, state: RetryState, call: _wire.Call) -> _wire.Reply:
        """The 2xx reply, body not decoded; any other status raises its typed error."""
        reply = await self.send(state, call)
        if not 200 <= reply.status < 300:
            raise _wire.error_for(reply, call, self._secrets)
        return reply

    async def send(self, state: RetryState, call: _wire.Call) -> _wire.Reply:
        while True:
            state.begin()
            outcome = await self._attempt(call)
            step = _wire.settle(state, outcome, call, self._secrets)
            if isinstance(step, _wire.Reply):
                return step
            self._stats.add(retries=1)
            await asyncio.sleep(step)

    async def _attempt(self, call: _wire.Call) -> _wire.Reply | Exception:
        # More requests in flight than clients cannot happen in a pager; if it did, they
        # would share the first client's connection (its pool queues them).
        sent_at = await self._admit()
        http = self._free.pop() if self._free else self._clients[0]
        outcome: _wire.Reply | Exception | None = None
        try:
            outcome = await self._exchange(http, call)
            return outcome
        finally:
            if http not in self._free:
                self._free.append(http)
            self._heard(outcome, sent_at)

    async def _admit(self) -> float:
        """Wait for a slot in the window (first come, first served), then for the pause and
        the pace; the send time."""
        if self._queue or not self.limit.may_start():
            turn: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._queue.append(turn)
            try:
                wait = await turn
            except BaseException:  # cancelled in the queue, or just after its slot came
                if turn in self._queue:
                    self._queue.remove(turn)
                elif turn.done() and not turn.cancelled():
                    self._release()
                raise
        else:
            wait = self.limit.reserve()
        try:
            # A 429 heard while this one waited for its slot pauses it too.
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self.limit.paused_for()
        except BaseException:  # cancelled while waiting: give the slot back
            self._release()
            raise
        return self.limit.now()

    def _release(self) -> None:
        self.limit.on_other()
        self._admit_queued()

    def _admit_queued(self) -> None:
        """Hand each free slot to the longest waiting request, reserved on its behalf (so one
        free slot never wakes two). In order of arrival: the pager's pages go out by offset."""
        while self._queue and self.limit.may_start():
            turn = self._queue.popleft()
            if not turn.done():  # cancelled, its task not yet resumed to leave the queue
                turn.set_result(self.limit.reserve())

    def _heard(self, outcome: _wire.Reply | Exception | None, sent_at: float) -> None:
        if isinstance(outcome, _wire.Reply) and outcome.status == 429:
            self._stats.add(throttled=1)
            retry_after = parse_retry_after(outcome.headers.get("retry-after"))
            self.limit.on_throttled(sent_at, retry_after)
        elif isinstance(outcome, _wire.Reply) and 200 <= outcome.status < 300:
            self.limit.on_success(sent_at)
        else:
            self.limit.on_other()
        settled = self.limit.settled()
        self._stats.settle(settled.window, settled.pace, settled.replies)
        self._admit_queued()

    async def _exchange(self, http: httpx.AsyncClient, call: _wire.Call) -> _wire.Reply | Exception:
        request = call.build(http, self._secrets)
        self._stats.add(requests=1)
        try:
            response = await http.send(request, stream=True)
        except httpx.HTTPError as error:
            return error
        chunks: list[bytes] = []
        try:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
        except httpx.DecodingError as error:
            return error
        except httpx.HTTPError as error:
            partial = b"".join(chunks)
            return _wire.BodyIncomplete(response.status_code, response.headers, partial, error)
        finally:
            await response.aclose()
        body = b"".join(chunks)
        self._stats.add(nbytes=len(body))
        return _wire.Reply(response.status_code, response.headers, body)
