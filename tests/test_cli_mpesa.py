"""``kibanda mpesa register-urls`` and ``kibanda mpesa pull`` against the Daraja emulator."""
from __future__ import annotations

from portal.config import write_config_values


def configure(tmp_path, daraja, **extra) -> None:
    write_config_values(tmp_path / "site", {
        "MPESA_BASE_URL": daraja.base_url, "MPESA_CONSUMER_KEY": daraja.consumer_key,
        "MPESA_CONSUMER_SECRET": daraja.consumer_secret, "MPESA_SHORTCODE": daraja.shortcode,
        "MPESA_PASSKEY": daraja.passkey, "CALLBACK_BASE_URL": "https://cafe.example.co.ke",
        **extra})


def test_register_urls_registers_the_sites_c2b_urls(kibanda, tmp_path, daraja_sim):
    configure(tmp_path, daraja_sim)
    result = kibanda("mpesa", "register-urls")
    assert result.exit_code == 0, result.output
    registered = daraja_sim.c2b.registrations[daraja_sim.shortcode]
    assert registered["confirmation_url"].startswith(
        "https://cafe.example.co.ke/mpesa/c2b/confirmation/")
    assert registered["version"] == 2 and registered["response_type"] == "Completed"
    secret = registered["confirmation_url"].rsplit("/", 1)[1]
    assert secret not in result.output and "/***" in result.output


def test_the_sandbox_refusal_is_explained(kibanda, tmp_path, daraja_sim):
    configure(tmp_path, daraja_sim, MPESA_BASE_URL="https://sandbox.safaricom.co.ke")
    result = kibanda("mpesa", "register-urls")
    assert result.exit_code == 4
    assert "sandbox does not allow C2B URL registration" in result.output
    assert "kibanda sim mpesa" in result.output
    daraja_sim.c2b.sandbox = True  # an emulator that behaves as the sandbox
    configure(tmp_path, daraja_sim)
    result = kibanda("mpesa", "register-urls")
    assert result.exit_code == 4 and "not allowed in the sandbox" in result.output


def test_pull_needs_a_nominated_number_then_reads_payments(kibanda, tmp_path, daraja_sim):
    configure(tmp_path, daraja_sim)
    assert kibanda("mpesa", "pull").exit_code == 2
    configure(tmp_path, daraja_sim, MPESA_PULL_NOMINATED_NUMBER="0708374149")
    daraja_sim.pay_from_menu("254711000001", 30, "WIFI")
    result = kibanda("mpesa", "pull")
    assert result.exit_code == 0, result.output
    assert "1 payments read" in result.output
