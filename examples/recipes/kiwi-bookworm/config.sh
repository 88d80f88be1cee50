#!/bin/bash
# Runs inside the image root after the packages are installed (kiwi-ng's config.sh).
set -euo pipefail

# Kiln substituted the template value below before kiwi-ng started (it does the same in
# root/etc/hosts and root/etc/motd, which kiwi-ng copies into the image before this script).
# /etc/hosts comes from the overlay on purpose: during the build it is kiwi-ng's link to the
# host's file, and whatever a script writes there is dropped at the end of the build.
echo "{{HOSTNAME}}" > /etc/hostname

# DHCP on every wired interface with systemd-networkd.
mkdir -p /etc/systemd/network
cat > /etc/systemd/network/80-dhcp.network <<'NETWORK'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NETWORK
systemctl enable systemd-networkd.service

# No SSH host keys, no machine id baked into the image: made at first boot.
rm -f /etc/ssh/ssh_host_*
: > /etc/machine-id
