"""SMS providers (Africa's Talking first): send one message, say what became of it.

Below the ledger like ``mpesa/`` and ``routeros/``: no models, no ledger, no Flask. The
outbox that decides what to send and records each message is ``portal/ledger/sms.py``.
"""
