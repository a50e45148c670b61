#!/bin/sh
# Readies podman on a lab host (an `exec` line of podman.clab.yml). Everything it writes stays
# inside the host: its overlay root, its private /tmp.
set -eu
# Debian's podman package ships a default `bridge` network whose plugins are not in
# /opt/cni/bin; hide it in this host so podman does not warn about it on every command.
rm -f /etc/cni/net.d/87-podman-bridge.conflist
# The image `localhost/bbox` without any registry: a busybox-static root file system, tarred
# and imported.
rootfs=/tmp/bbox-rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" "$rootfs/root"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$rootfs/etc/passwd"
echo 'root:x:0:' > "$rootfs/etc/group"
tar -C "$rootfs" -cf /tmp/bbox-rootfs.tar .
podman import --change 'CMD ["/bin/sh"]' /tmp/bbox-rootfs.tar localhost/bbox:latest >/dev/null
rm -rf "$rootfs" /tmp/bbox-rootfs.tar
