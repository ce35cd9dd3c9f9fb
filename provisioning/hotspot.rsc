# Kibanda: a hotspot for {{SITE_NAME}} on a MikroTik router from its factory defaults.
# Rendered by `kibanda provision --export FILE` for RouterOS {{VERSION}}; it does what
# `kibanda provision` does over the API. Import it once on a reset router:
#   /import file-name=kibanda-site.rsc
# It holds the API user's password: delete the file from the router after the import.
#
# Hotspot ports: {{HOTSPOT_PORTS}}  internet port: {{WAN}}
# Hotspot network {{NETWORK}}, router {{HOTSPOT_ADDRESS}}, appliance {{APPLIANCE}}

# --- the hotspot network: a bridge of the hotspot ports, its address, pool and DHCP ---
/interface bridge add name={{BRIDGE}} comment="kibanda hotspot"
{{PORT_LINES}}
/ip address add address={{HOTSPOT_ADDRESS}}/{{PREFIX}} interface={{BRIDGE}} comment="kibanda hotspot"
/ip pool add name=kibanda-pool ranges={{POOL}}
# DHCP option 114 (RFC 8910): phones ask the appliance whether they are captive.
/ip dhcp-server option add name=kibanda-captive code=114 value="'{{CAPTIVE_URL}}'"
/ip dhcp-server add name=kibanda-dhcp interface={{BRIDGE}} address-pool=kibanda-pool lease-time=1h disabled=no
/ip dhcp-server network add address={{NETWORK}} gateway={{HOTSPOT_ADDRESS}} dns-server={{HOTSPOT_ADDRESS}} dhcp-option=kibanda-captive comment="kibanda hotspot"
/ip dns set allow-remote-requests=yes servers=1.1.1.1,8.8.8.8

# --- the internet side ---
/ip dhcp-client add interface={{WAN}} disabled=no comment="kibanda internet"
/ip firewall nat add chain=srcnat out-interface={{WAN}} action=masquerade comment="kibanda internet"

# --- the hotspot: Kibanda's pages, code logins without JavaScript, returning phones by MAC ---
/ip hotspot profile add name=kibanda hotspot-address={{HOTSPOT_ADDRESS}} dns-name={{DNS_NAME}} html-directory=kibanda login-by=http-chap,http-pap,cookie,mac-cookie
/ip hotspot add name={{HOTSPOT_SERVER}} interface={{BRIDGE}} address-pool=kibanda-pool profile=kibanda addresses-per-mac=2 disabled=no
# Customers reach the appliance (and the appliance reaches Daraja) before they pay.
/ip hotspot walled-garden ip add dst-address={{APPLIANCE}} action=accept comment="kibanda appliance"
/ip hotspot walled-garden ip add dst-host={{DARAJA_HOST}} action=accept comment="kibanda daraja"

# --- the API user Kibanda uses: api, read and write only, from the appliance only ---
/user group add name=kibanda-api policy=api,read,write
/user add name={{API_USER}} group=kibanda-api password={{API_PASSWORD}} address={{APPLIANCE}}/32 comment="kibanda appliance"
/certificate add name=kibanda-api common-name={{HOTSPOT_ADDRESS}} days-valid=3650 key-usage=digital-signature,key-encipherment,tls-server
/certificate sign kibanda-api
/ip service set api address={{APPLIANCE}}/32
/ip service set api-ssl certificate=kibanda-api address={{APPLIANCE}}/32
/ip service set telnet disabled=yes
/ip service set ftp disabled=yes
/ip service set www disabled=yes

# --- the clock: Kenya time, kept by NTP ---
/system clock set time-zone-autodetect=no time-zone-name=Africa/Nairobi
{{v7}}/system ntp client set enabled=yes servers=pool.ntp.org
{{v6}}/system ntp client set enabled=yes server-dns-names=pool.ntp.org

# --- Kibanda's hotspot pages, fetched from the appliance ---
{{FETCH_LINES}}
