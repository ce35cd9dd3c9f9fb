"""What a venue owner manages, without Flask: packages, vouchers and their printing,
sales reports, accounts, branding, stored settings, the router's hotspot files, wording."""
