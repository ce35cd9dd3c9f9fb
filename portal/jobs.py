"""Work queued for the agent: claimed with a lease, finished, retried or failed.

Any process may queue a job (an owner's page, the CLI); only the agent runs them, so
every gunicorn worker shows the same progress and a push survives the worker that asked
for it. A job is at least once: an agent killed mid-job leaves a lease that lapses, and
the next claim takes the job up again, so every job kind must be safe to run again.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from .models import Job, db
from .timeutil import backoff_seconds

#: How long a claimed job is the claimant's before another agent may take it up.
LEASE = timedelta(minutes=10)
RETRY_FIRST, RETRY_MAX = 5, 300


def enqueue(kind: str, key: str, now: datetime, *, payload: dict | None = None,
            created_by: str = "") -> Job:
    """Queue a job; while one for ``key`` is queued or running, that one is returned."""
    with db.atomic("IMMEDIATE"):
        current = active(key)
        if current is not None:
            return current
        return Job.create(kind=kind, key=key, payload=json.dumps(payload or {}, sort_keys=True),
                          run_after=now, created_by=created_by, created_at=now)


def active(key: str) -> Job | None:
    """The queued or running job for ``key``, if any."""
    return (Job.select().where((Job.key == key) & Job.state.in_((Job.QUEUED, Job.RUNNING)))
            .order_by(Job.id).first())


def claim(now: datetime) -> Job | None:
    """Take the oldest due job (or one whose runner's lease lapsed); None when none is due."""
    due = ((Job.state == Job.QUEUED) & (Job.run_after <= now)) | (
        (Job.state == Job.RUNNING) & (Job.lease_until <= now))
    while True:
        job = Job.select().where(due).order_by(Job.run_after, Job.id).first()
        if job is None:
            return None
        # Conditional: of two agents looking at the same row, one gets it.
        taken = (Job.update(state=Job.RUNNING, attempts=Job.attempts + 1,
                            lease_until=now + LEASE)
                 .where((Job.id == job.id) & (Job.state == job.state)
                        & (Job.attempts == job.attempts)).execute())
        if taken:
            return Job.get_by_id(job.id)


def finish(job: Job, now: datetime) -> None:
    """The job is done."""
    Job.update(state=Job.DONE, finished_at=now, lease_until=None, last_error=None).where(
        Job.id == job.id).execute()


def retry_later(job: Job, error: str, now: datetime) -> datetime:
    """Put the job back in the queue after a backoff; returns when it runs again."""
    when = now + timedelta(seconds=backoff_seconds(job.attempts - 1, RETRY_FIRST, RETRY_MAX))
    Job.update(state=Job.QUEUED, run_after=when, lease_until=None, last_error=error).where(
        Job.id == job.id).execute()
    return when


def fail(job: Job, error: str, now: datetime) -> None:
    """The job cannot succeed by running again; a person has to act (and may queue it again)."""
    Job.update(state=Job.FAILED, finished_at=now, lease_until=None, last_error=error).where(
        Job.id == job.id).execute()
