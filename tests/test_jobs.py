"""Queued work for the agent: voucher pushes asked for by an owner's page, run by the agent."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from helpers import Browser, make_package, make_users

from agent.worker import Agent
from portal import create_app, jobs
from portal.models import Job, Voucher, VoucherBatch, db
from portal.timeutil import utcnow
from portal.web import app_router, close_clients

T = datetime(2026, 12, 1, 10, 0, 0)


@pytest.fixture
def queue(database):
    """A database with nothing queued."""
    return database


def test_asking_twice_while_queued_or_running_gives_the_same_job(queue):
    first = jobs.enqueue("vouchers.push", "batch:1", T, payload={"batch_id": 1})
    assert jobs.enqueue("vouchers.push", "batch:1", T).id == first.id
    assert jobs.claim(T).id == first.id
    assert jobs.enqueue("vouchers.push", "batch:1", T).id == first.id  # running
    jobs.finish(Job.get_by_id(first.id), T)
    assert jobs.enqueue("vouchers.push", "batch:1", T).id != first.id  # done: a new one
    assert jobs.enqueue("vouchers.push", "batch:2", T).id not in (first.id,)


def test_a_job_is_claimed_once_and_only_when_due(queue):
    job = jobs.enqueue("vouchers.push", "batch:1", T + timedelta(seconds=30))
    assert jobs.claim(T) is None  # not due yet
    claimed = jobs.claim(T + timedelta(seconds=30))
    assert (claimed.id, claimed.state, claimed.attempts) == (job.id, Job.RUNNING, 1)
    assert jobs.claim(T + timedelta(seconds=31)) is None  # the lease holds


def test_a_job_whose_agent_died_is_taken_up_again_after_its_lease(queue):
    job = jobs.enqueue("vouchers.push", "batch:1", T)
    jobs.claim(T)  # ... and the agent is killed: nothing finishes the job
    assert jobs.claim(T + jobs.LEASE - timedelta(seconds=1)) is None
    again = jobs.claim(T + jobs.LEASE)
    assert (again.id, again.attempts) == (job.id, 2)


def test_retries_back_off_and_failures_stop(queue):
    job = jobs.enqueue("vouchers.push", "batch:1", T)
    when = jobs.retry_later(jobs.claim(T), "router down", T)
    assert when == T + timedelta(seconds=5)
    when = jobs.retry_later(jobs.claim(when), "router down", when)
    assert Job.get_by_id(job.id).run_after - when == timedelta(0)
    assert (when - T) == timedelta(seconds=5 + 10)
    jobs.fail(jobs.claim(when), "router refused the login", when)
    failed = Job.get_by_id(job.id)
    assert (failed.state, failed.last_error) == (Job.FAILED, "router refused the login")
    assert jobs.claim(when + timedelta(days=1)) is None


def _owner_makes_a_batch(app, count: int) -> int:
    """The owner signs in and makes a batch on the vouchers page; returns its id."""
    make_users(app)
    package = make_package(app)
    owner = Browser(app)
    owner.login()
    made = owner.post("/admin/vouchers", {"package": str(package.id), "count": str(count),
                                          "alphabet": "numeric", "length": "8", "prefix": ""})
    return int(made.location.rsplit("/", 1)[1])


def _batch_page(app, batch_id: int) -> str:
    owner = Browser(app)
    owner.login()
    return owner.text(f"/admin/vouchers/{batch_id}")


def test_every_worker_shows_the_same_progress_and_the_agent_does_the_push(app, router_sim):
    """Two gunicorn workers are two apps on one database: both see the queued push."""
    batch_id = _owner_makes_a_batch(app, 30)
    other_worker = create_app(dict(app.config))
    try:
        for worker in (app, other_worker):
            page = _batch_page(worker, batch_id)
            assert "refreshes by itself" in page and 'id="count-new">30<' in page
        with db.connection_context():
            codes = {v.code for v in Voucher.select().where(Voucher.batch == batch_id)}
        assert len(codes) == 30
        assert codes.isdisjoint(r["name"] for r in router_sim.rows("/ip/hotspot/user"))
        agent = Agent(app.config, gateway=app_router(app))
        with db.connection_context():
            assert agent.run_jobs(utcnow()) == 1
        for worker in (app, other_worker):
            page = _batch_page(worker, batch_id)
            assert "refreshes by itself" not in page and 'id="count-on-router">30<' in page
    finally:
        close_clients(other_worker)
    with db.connection_context():
        assert VoucherBatch.get_by_id(batch_id).push_state == "done"
        assert Voucher.select().where(Voucher.state == Voucher.ON_ROUTER).count() == 30


def test_a_router_that_cannot_be_reached_is_tried_again_later(app, router_sim):
    batch_id = _owner_makes_a_batch(app, 5)
    router_sim.stop()  # the router is off
    agent = Agent(app.config, gateway=app_router(app))
    now = utcnow()
    with db.connection_context():
        assert agent.run_jobs(now) == 1
        job = Job.get()
        assert job.state == Job.QUEUED and job.run_after > now and job.last_error
        assert VoucherBatch.get_by_id(batch_id).push_state == "queued"
    page = _batch_page(app, batch_id)
    assert "Waiting for the router" in page and "refreshes by itself" in page
