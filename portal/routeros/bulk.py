"""Bulk work on the router: many hotspot users added or removed, pipelined and tagged.

librouteros has no tags, so it costs one round trip per command; hundreds of vouchers go
instead over a :class:`~.pipeline.PipelineSession` of our own, one result per item.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RouterTrap
from .pipeline import BulkResult, PipelineSession, lost_message
from .words import ACTIVE, DUPLICATE_USER, NO_SUCH_ITEM, PROFILE, USER, user_words, word

_SNAPSHOT = (
    ("users", USER, "name,comment,profile,disabled,uptime,bytes-in,bytes-out"),
    ("active", ACTIVE, "user,address,mac-address,uptime,bytes-in,bytes-out"),
    ("profiles", PROFILE, "name"),
)


@dataclass
class HotspotSnapshot:
    """The hotspot users, active sessions and user profiles, read together (router strings)."""

    users: list[dict] = field(default_factory=list)
    active: list[dict] = field(default_factory=list)
    profiles: list[dict] = field(default_factory=list)


class BulkCommands:
    """Mixed into the gateway: needs ``self.endpoint`` and ``self.bulk_window``."""

    def _pipeline(self, sentences: list[list[str]]):
        with PipelineSession(self.endpoint) as session:
            return session.pipeline(sentences, self.bulk_window)

    def hotspot_snapshot(self) -> HotspotSnapshot:
        """Users, active sessions and profiles in one pipelined exchange (no ids: a reboot
        renumbers them); raises RouterUnreachable or RouterTrap."""
        replies, error = self._pipeline([[f"{path}/print", f"=.proplist={props}"]
                                         for _, path, props in _SNAPSHOT])
        if error is not None:
            raise self.endpoint.unreachable(f"{USER}/print", error)
        snapshot = HotspotSnapshot()
        for (name, path, _), reply in zip(_SNAPSHOT, replies):
            if reply.trap is not None:
                raise RouterTrap(self.endpoint.describe(f"{path}/print", reply.trap),
                                 router_message=reply.trap, category=reply.category)
            setattr(snapshot, name, reply.rows)
        return snapshot

    def bulk_add_users(self, items: list[dict]) -> list[BulkResult]:
        """Add many users pipelined on one connection; a result per item, in order."""
        command = f"{USER}/add"
        missing = [i for i, item in enumerate(items) if not str(item.get("name") or "")]
        if missing:
            raise ValueError(f"bulk_add_users: item {missing[0]} has no name")
        names = [str(item["name"]) for item in items]
        sentences = [[command, *user_words(str(item["name"]), item.get("password", ""),
                                            item.get("profile", "default"),
                                            item.get("limit_uptime"),
                                            item.get("limit_bytes_total"),
                                            item.get("comment", ""),
                                            bool(item.get("disabled")))]
                     for item in items]
        if not sentences:
            return []
        replies, error = self._pipeline(sentences)
        results = []
        for name, reply in zip(names, replies):
            if reply.trap == DUPLICATE_USER:
                results.append(BulkResult(name, "exists", message=reply.trap))
            elif reply.trap is not None:
                results.append(BulkResult(name, "failed",
                                          message=self.endpoint.describe(command, reply.trap)))
            elif reply.done:
                results.append(BulkResult(name, "created", id=reply.ret))
            else:
                results.append(BulkResult(name, "failed",
                                          message=lost_message(self.endpoint, command, error)))
        return results

    def bulk_remove_users(self, names) -> list[BulkResult]:
        """Remove many users by name, pipelined; ``removed``, ``missing`` or ``failed`` each."""
        command = f"{USER}/remove"
        names = [str(n) for n in names]
        if not names:
            return []
        # A name goes in ``.id`` as is (the router resolves names there), unless it could
        # be read as an id ("*1A") or as a list ("a,b"): those are looked up first.
        lookups = [n for n in names if n.startswith("*") or "," in n]
        ids: dict[str, str] = {}
        with PipelineSession(self.endpoint) as session:
            if lookups:
                found, error = session.pipeline(
                    [[f"{USER}/print", "=.proplist=.id", f"?name={n}"] for n in lookups])
                if error is not None:
                    raise self.endpoint.unreachable(f"{USER}/print", error)
                ids = {n: ",".join(r[".id"] for r in reply.rows)
                       for n, reply in zip(lookups, found) if reply.rows}
            targets = [ids.get(n, n) for n in names if n not in lookups or n in ids]
            replies, error = session.pipeline([[command, word(".id", t)] for t in targets],
                                              self.bulk_window)
        answers = iter(replies)
        results = []
        for name in names:
            if name in lookups and name not in ids:
                results.append(BulkResult(name, "missing"))
                continue
            reply = next(answers)
            if reply.trap == NO_SUCH_ITEM:
                results.append(BulkResult(name, "missing", message=reply.trap))
            elif reply.trap is not None:
                results.append(BulkResult(name, "failed",
                                          message=self.endpoint.describe(command, reply.trap)))
            elif reply.done:
                results.append(BulkResult(name, "removed"))
            else:
                results.append(BulkResult(name, "failed",
                                          message=lost_message(self.endpoint, command, error)))
        return results
