# Kibanda inside the router (RouterOS 7 container), for {{SITE_NAME}}.
# Rendered by `kibanda provision --container-script FILE`. Needs RouterOS 7.4 or newer on
# an ARM64, ARM or x86 router with a USB disk. The router is {{BOARD}} ({{ARCH}}).
#
# By hand, first (once):
#  1. Install the `container` package (System > Packages), reboot.
#  2. /system/device-mode/update container=yes
#     then press the reset button (or cut the power) within 5 minutes when asked.
#  3. Plug in a fast USB disk, format it (ext4) in Disks; it is called {{DISK}} below.
#  4. Copy the image tar (`scripts/build-image` made it) to {{DISK}}/kibanda.tar.
# Then import this file: /import file-name=kibanda-container.rsc

# --- the container's own small network ---
/interface veth add name=veth-kibanda address=172.17.0.2/24 gateway=172.17.0.1
/interface bridge add name=br-containers comment="kibanda container"
/interface bridge port add bridge=br-containers interface=veth-kibanda
/ip address add address=172.17.0.1/24 interface=br-containers comment="kibanda container"
/ip firewall nat add chain=srcnat src-address=172.17.0.0/24 action=masquerade comment="kibanda container"
# Phones on the hotspot reach the portal on the router's hotspot address, port 8080.
/ip firewall nat add chain=dstnat dst-address={{HOTSPOT_ADDRESS}} protocol=tcp dst-port=8080 action=dst-nat to-addresses=172.17.0.2 to-ports=8080 comment="kibanda portal"
# The default firewall drops the API from the container silently: let it in, first.
/ip firewall filter add chain=input src-address=172.17.0.2 protocol=tcp dst-port=8728,8729 action=accept place-before=0 comment="kibanda container api"

# --- the container: data on the USB disk, a memory limit, started on boot ---
/container config set tmpdir={{DISK}}/tmp
/container mounts add name=kibanda-data src={{DISK}}/kibanda-data dst=/data
{{envlists}}/container envs add list=kibanda key=KIBANDA_ROUTER_HOST value=172.17.0.1
{{envlists}}/container envs add list=kibanda key=KIBANDA_PORTAL_URL value={{PORTAL_URL}}
{{envlists}}/container envs add list=kibanda key=KIBANDA_SITE_NAME value={{SITE_NAME_VALUE}}
{{envlists}}/container envs add list=kibanda key=KIBANDA_WEB_WORKERS value=1
{{envlists}}/container add file={{DISK}}/kibanda.tar interface=veth-kibanda root-dir={{DISK}}/kibanda-root mountlists=kibanda-data envlists=kibanda memory-high=192M start-on-boot=yes logging=yes comment="kibanda"
{{envs}}/container envs add name=kibanda key=KIBANDA_ROUTER_HOST value=172.17.0.1
{{envs}}/container envs add name=kibanda key=KIBANDA_PORTAL_URL value={{PORTAL_URL}}
{{envs}}/container envs add name=kibanda key=KIBANDA_SITE_NAME value={{SITE_NAME_VALUE}}
{{envs}}/container envs add name=kibanda key=KIBANDA_WEB_WORKERS value=1
{{envs}}/container add file={{DISK}}/kibanda.tar interface=veth-kibanda root-dir={{DISK}}/kibanda-root mounts=kibanda-data envlist=kibanda memory-high=192M start-on-boot=yes logging=yes comment="kibanda"
# Start it (the first start unpacks the image: give it a minute).
/container start [find comment="kibanda"]
