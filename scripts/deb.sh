#!/usr/bin/env bash
# Builds the Debian package target/debian/pgb_<version>_<arch>.deb (README: the one command)
# with dpkg-deb alone, no extra tool:
#
#   /usr/bin/pgb                                 a release build (--debug: the debug build)
#   /lib/systemd/system/pgb-daemon.service, pgb-run@.service, pgb-run@.timer   (deploy/systemd)
#   /etc/pgb/pgb.toml                            `pgb config example`, a conffile, 0600, owned
#                                                by the pgb system user postinst creates
#   /usr/share/man/man1/pgb*.1.gz                `pgb man`
#   bash, zsh and fish completions               `pgb completions`, in Debian's vendor paths
#   /usr/share/doc/pgb/                          copyright, changelog, README
#
# lintian's remaining findings are deliberate: the binary keeps its symbols (as the release
# profile does, so a panic's backtrace names the functions), /etc/pgb is 0750 and pgb.toml
# 0600 (they name keys and secrets' variables).
#   maintainer scripts                           deploy/debian/{postinst,prerm,postrm}
#
# Usage: scripts/deb.sh [--debug]   (prints the package's path last)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}

profile=release
if [[ ${1:-} == --debug ]]; then profile=debug; fi
if [[ $profile == release ]]; then
  cargo build --release -p pgb-cli >&2
else
  cargo build -p pgb-cli >&2
fi
bin=$target/$profile/pgb

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
out=$target/debian
stage=$out/pgb_${version}_${arch}
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
umask 022

install -D -m 0755 "$bin" "$stage/usr/bin/pgb"
# The release profile already leaves debug info out; a debug build's (hundreds of MB) goes too.
# Symbols stay either way, so a panic's backtrace still names the functions.
objcopy --strip-debug "$stage/usr/bin/pgb"
# Units: the packaged binary lives in /usr/bin, not /usr/local/bin.
for unit in deploy/systemd/*; do
  install -D -m 0644 "$unit" "$stage/lib/systemd/system/$(basename "$unit")"
  sed -i 's|/usr/local/bin/pgb|/usr/bin/pgb|g' "$stage/lib/systemd/system/$(basename "$unit")"
done
install -d -m 0750 "$stage/etc/pgb"
"$bin" config example > "$stage/etc/pgb/pgb.toml"
chmod 0600 "$stage/etc/pgb/pgb.toml"

man=$stage/usr/share/man/man1
"$bin" man --dir "$man"
gzip -9n "$man"/*.1
"$bin" completions bash | install -D -m 0644 /dev/stdin "$stage/usr/share/bash-completion/completions/pgb"
"$bin" completions zsh | install -D -m 0644 /dev/stdin "$stage/usr/share/zsh/vendor-completions/_pgb"
"$bin" completions fish | install -D -m 0644 /dev/stdin "$stage/usr/share/fish/vendor_completions.d/pgb.fish"

doc=$stage/usr/share/doc/pgb
install -D -m 0644 deploy/debian/copyright "$doc/copyright"
install -m 0644 README.md "$doc/README.md"
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
printf 'pgb (%s) unstable; urgency=medium\n\n  * Built from the pgb workspace (%s).\n\n -- pgb maintainers <pgb@example.invalid>  %s\n' \
  "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$date" |
  gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

for script in postinst prerm postrm; do
  install -m 0755 "deploy/debian/$script" "$stage/DEBIAN/$script"
done
echo /etc/pgb/pgb.toml > "$stage/DEBIAN/conffiles"

# The libraries the binary links (libc, libgcc), as dpkg-shlibdeps reads them.
shlibs=$(cd "$stage" && mkdir -p debian && printf 'Source: pgb\n\nPackage: pgb\nArchitecture: any\n' > debian/control &&
  dpkg-shlibdeps -O usr/bin/pgb 2>/dev/null | sed -n 's/^shlibs:Depends=//p'; rm -rf debian)
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: pgb
Version: $version
Architecture: $arch
Maintainer: pgb maintainers <pgb@example.invalid>
Installed-Size: $size
Depends: ${shlibs:-libc6}, adduser
Recommends: postgresql-client
Section: admin
Priority: optional
Homepage: https://example.invalid/pgb
Description: PostgreSQL backups you can trust
 pgb streams pg_dump through compression and sha256 into local disk or object
 storage (S3, GCS, Azure), commits a backup only by writing its manifest last,
 keeps backups by policy, verifies them, proves them with restore drills and
 reports on them (pgb report, the daemon's status page).
 .
 The package ships the pgb-daemon service (disabled until /etc/pgb/pgb.toml is
 written) and the pgb-run@JOB timer, man pages and shell completions.
CONTROL

# xz for a release; a debug build's larger binary is packed faster (the test's package).
level=6
[[ $profile == debug ]] && level=1
dpkg-deb --root-owner-group -Zxz -z"$level" --build "$stage" "$out/pgb_${version}_${arch}.deb" >&2
echo "$out/pgb_${version}_${arch}.deb"
