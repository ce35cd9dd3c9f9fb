"""The money path, without Flask: purchases, settlement, grants, codes and limits.

A payment becomes a grant in exactly one place, :func:`.settlement.settle`. The router
gateway and the M-Pesa client are passed in by the caller (a view, the agent, the CLI).
See ARCHITECTURE.md for the whole path, step by step.
"""
