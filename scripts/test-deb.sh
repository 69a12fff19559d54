#!/usr/bin/env bash
# The Debian package, tested on this machine (root and apt; scripts/test.sh runs it when both
# are there): builds it (from the debug build: a release build of the whole dependency tree
# takes too long for CI; PGB_DEB_PROFILE=release tests the release build), checks its contents,
# runs lintian when installed (findings listed, not fatal), installs it with apt, checks
# `pgb --version`, the conffile's mode and owner and `systemd-analyze verify` of the installed
# units, reinstalls it over itself (the upgrade path keeps a changed conffile), removes and
# purges it, and checks that nothing of it is left (the pgb user and /var/backups/pgb stay by
# design, see deploy/debian/postrm; this test removes them again when it created them).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
ok() { echo "test-deb: ok: $*"; }
t0=$SECONDS

if [[ ${PGB_DEB_PROFILE:-debug} == release ]]; then
  deb=$(scripts/deb.sh)
else
  deb=$(scripts/deb.sh --debug)
fi
echo "test-deb: built $deb in $((SECONDS - t0)) s"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/pgb ./lib/systemd/system/pgb-daemon.service \
  ./lib/systemd/system/pgb-run@.service ./lib/systemd/system/pgb-run@.timer \
  ./etc/pgb/pgb.toml ./usr/share/man/man1/pgb.1.gz ./usr/share/man/man1/pgb-report.1.gz \
  ./usr/share/man/man1/pgb-backup.1.gz ./usr/share/bash-completion/completions/pgb \
  ./usr/share/zsh/vendor-completions/_pgb ./usr/share/fish/vendor_completions.d/pgb.fish \
  ./usr/share/doc/pgb/copyright; do
  grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
grep -q '^-rw------- root/root .* ./etc/pgb/pgb.toml$' <<<"$contents" || fail "pgb.toml is not 0600 in the package"
[[ $(dpkg-deb --info "$deb" conffiles) == /etc/pgb/pgb.toml ]] || fail "conffiles"
ok "contents ($(grep -c '^-' <<<"$contents") files)"

if command -v lintian >/dev/null; then
  lintian --tag-display-limit 0 "$deb" | sed 's/^/test-deb: lintian: /' || true
else
  echo "test-deb: lintian not installed: not run"
fi

had_user=0
getent passwd pgb >/dev/null && had_user=1
if dpkg -s pgb >/dev/null 2>&1; then
  apt-get purge -y -qq pgb >/dev/null
fi
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq)
"${apt[@]}" install --no-install-recommends "$deb" >/dev/null || fail "apt-get install $deb"
[[ $(command -v pgb) == /usr/bin/pgb ]] || fail "pgb is not /usr/bin/pgb"
pgb --version | grep -q '^pgb ' || fail "pgb --version"
[[ $(stat -c '%a %U %G' /etc/pgb/pgb.toml) == "600 pgb pgb" ]] ||
  fail "/etc/pgb/pgb.toml is $(stat -c '%a %U %G' /etc/pgb/pgb.toml), not 600 pgb pgb"
[[ $(stat -c '%a %U %G' /var/backups/pgb) == "700 pgb pgb" ]] || fail "/var/backups/pgb"
PGB_CONFIG=/etc/pgb/pgb.toml pgb config check >/dev/null || fail "the packaged config does not check"
man -w pgb-report >/dev/null 2>&1 || [[ -f /usr/share/man/man1/pgb-report.1.gz ]] || fail "man page"
ok "installed: $(pgb --version), conffile 600 pgb:pgb"

# The installed units, as systemd reads them (the template through an instance).
units=$(mktemp -d)
cp /lib/systemd/system/pgb-daemon.service "$units/"
cp /lib/systemd/system/pgb-run@.service "$units/pgb-run@shop.service"
cp /lib/systemd/system/pgb-run@.timer "$units/pgb-run@shop.timer"
verify=$(cd "$units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
  ./pgb-daemon.service ./pgb-run@shop.service ./pgb-run@shop.timer 2>&1) || fail "systemd-analyze verify: $verify"
rm -rf "$units"
grep -v -e 'Failed to .*bus' -e 'System has not been booted with systemd' <<<"$verify" | grep -i . &&
  fail "systemd-analyze verify warned: $verify"
ok "systemd-analyze verify"

# Upgrade path: the package over itself keeps a changed conffile, its mode and owner.
echo "# changed by test-deb" >> /etc/pgb/pgb.toml
"${apt[@]}" install --reinstall --no-install-recommends "$deb" >/dev/null || fail "reinstall"
grep -q '^# changed by test-deb$' /etc/pgb/pgb.toml || fail "the reinstall replaced the changed conffile"
[[ $(stat -c '%a %U %G' /etc/pgb/pgb.toml) == "600 pgb pgb" ]] || fail "conffile mode after reinstall"
ok "reinstalled over itself, changed conffile kept"

"${apt[@]}" remove pgb >/dev/null || fail "remove"
[[ ! -e /usr/bin/pgb ]] || fail "/usr/bin/pgb left after remove"
[[ -f /etc/pgb/pgb.toml ]] || fail "remove took the conffile (only purge may)"
"${apt[@]}" purge pgb >/dev/null || fail "purge"
left=()
while read -r path; do
  [[ -e ${path#.} && ! -d ${path#.} ]] && left+=("${path#.}")
done < <(awk '{print $NF}' <<<"$contents")
[[ -e /etc/pgb ]] && left+=(/etc/pgb)
[[ -e /var/lib/pgb ]] && left+=(/var/lib/pgb)
((${#left[@]} == 0)) || fail "left after purge: ${left[*]}"
dpkg -s pgb >/dev/null 2>&1 && fail "dpkg still knows pgb"
ok "removed and purged: nothing left (the pgb user and /var/backups/pgb stay by design)"

if ((had_user == 0)); then
  rmdir /var/backups/pgb 2>/dev/null || true
  deluser --system --quiet pgb >/dev/null 2>&1 || userdel pgb 2>/dev/null || true
fi
echo "test-deb: passed in $((SECONDS - t0)) s"
