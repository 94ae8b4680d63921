"""`lead`: run a service on one host at a time among the hosts sharing a store (`Store.leadership`).

Must not import: `afactors.host._host` or `afactors.host.context` (they import this).
"""

from __future__ import annotations

import logging

import trio

from afactors._backoff import Backoff
from afactors.channel import ServiceTask
from afactors.store import Store, StoreError

log = logging.getLogger("afactors.host")

_RETRY = Backoff(1.0, 30.0)  # when the store cannot be reached to claim a role


async def lead(store: Store, role: str, service: ServiceTask, *,
               task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    """Run `service` while this host leads `role` on `store`, again each time it leads anew, until it returns;
    started once `service` started, or once the role is known to be elsewhere (or cannot be claimed: the store is
    unreachable). A store only one host opens (LMDB) leads at once, always."""
    failures = 0
    while True:
        failed: ExceptionGroup[StoreError] | None = None
        try:
            async with store.leadership(role) as claim:
                failures = 0
                if not await claim.try_acquire():
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                    await claim.acquire()
                log.info("leading %s", role)
                async with trio.open_nursery() as nursery:

                    async def until_lost() -> None:
                        await claim.lost.wait()
                        nursery.cancel_scope.cancel()

                    async def served(*, task_status: trio.TaskStatus[None]) -> None:
                        await service(task_status=task_status)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(until_lost)
                    await nursery.start(served)
                    task_status.started()
                    task_status = trio.TASK_STATUS_IGNORED
                if not claim.lost.is_set():
                    return  # the service ended by itself
                log.warning("no longer leading %s", role)
        except* StoreError as group:  # (the claim's own nursery wraps what its block raises)
            failed = group
        if failed is not None:
            failures += 1
            log.warning("cannot claim %s (%s); trying again", role, "; ".join(map(str, failed.exceptions)))
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await trio.sleep(_RETRY.delay(failures))
