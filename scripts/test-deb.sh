#!/usr/bin/env bash
# The Debian package, tested on this machine (root and apt; scripts/test.sh runs it when both
# are there): builds it (from the debug build: a release build of the whole dependency tree
# takes too long for CI; PGB_DEB_PROFILE=release tests the release build), checks its contents,
# runs lintian when installed (findings listed, not fatal), installs it with apt, checks
# `pgb --version`, the conffile's mode and owner and `systemd-analyze verify` of the installed
# units, reinstalls it over itself, upgrades it to a higher version (the same package repacked
# as VERSION+upgradetest1, then +upgradetest2 shipping a changed pgb.toml) with apt, without a
# terminal, keeping a locally changed conffile, checks the maintainer scripts' arguments
# (dpkg's --debug=2 trace) and what they ask of systemd on install, upgrade and removal (run
# again in a private mount namespace where /run/systemd/system exists, systemctl and
# deb-systemd-invoke stubbed: an upgrade try-restarts a running daemon, a removal stops it),
# removes and purges it, and checks that nothing of it is left (the pgb user and
# /var/backups/pgb stay by design, see deploy/debian/postrm; this test removes them again when
# it created them). Every apt/dpkg line it ran is kept in target/debian/test-deb.log.
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
log=$(dirname "$deb")/test-deb.log
: > "$log"

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
# Without a terminal, as unattended upgrades run: a conffile prompt would fail, not hang.
# dpkg's --debug=2 traces each maintainer script it runs, with its arguments.
# The last call's output is in $log.last, every call's in $log.
apt_logged() {
  local rc=0
  TERM=dumb timeout 600 "${apt[@]}" -o Dpkg::Options::=--debug=2 "$@" </dev/null > "$log.last" 2>&1 || rc=$?
  { echo "+ apt-get $*"; cat "$log.last"; } >> "$log"
  return "$rc"
}
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
verify_units() {
  local units verify
  units=$(mktemp -d)
  cp /lib/systemd/system/pgb-daemon.service "$units/"
  cp /lib/systemd/system/pgb-run@.service "$units/pgb-run@shop.service"
  cp /lib/systemd/system/pgb-run@.timer "$units/pgb-run@shop.timer"
  verify=$(cd "$units" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
    ./pgb-daemon.service ./pgb-run@shop.service ./pgb-run@shop.timer 2>&1) || fail "systemd-analyze verify ($1): $verify"
  rm -rf "$units"
  grep -v -e 'Failed to .*bus' -e 'System has not been booted with systemd' <<<"$verify" | grep -i . &&
    fail "systemd-analyze verify ($1) warned: $verify"
  ok "systemd-analyze verify ($1)"
}
verify_units "installed"

# The conffile as the pgb user must find it: 0600, its owner, the local change kept.
conffile_kept() {
  grep -q '^# changed by test-deb$' /etc/pgb/pgb.toml || fail "$1 replaced the changed conffile"
  [[ $(stat -c '%a %U %G' /etc/pgb/pgb.toml) == "600 pgb pgb" ]] ||
    fail "conffile after $1: $(stat -c '%a %U %G' /etc/pgb/pgb.toml)"
  getent passwd pgb >/dev/null || fail "the pgb user is gone after $1"
}

# The package over itself keeps a changed conffile, its mode and owner.
echo "# changed by test-deb" >> /etc/pgb/pgb.toml
apt_logged install --reinstall --no-install-recommends "$deb" || fail "reinstall (see $log)"
conffile_kept "the reinstall"
ok "reinstalled over itself, changed conffile kept"

# A true upgrade: the same package as a higher version (only the control file's Version
# changes), by apt's default conffile handling (the shipped pgb.toml did not change, so the
# local one stays without a question).
version=$(dpkg-deb --field "$deb" Version)
repack() { # repack SUFFIX [a line appended to the shipped pgb.toml] -> the new .deb's path
  local tree=$work/$1 out
  rm -rf "$tree"
  dpkg-deb --raw-extract "$deb" "$tree"
  sed -i "s/^Version: .*/Version: $version+$1/" "$tree/DEBIAN/control"
  if [[ -n ${2:-} ]]; then echo "$2" >> "$tree/etc/pgb/pgb.toml"; fi
  out=$work/pgb_${version}+$1_$(dpkg --print-architecture).deb
  dpkg-deb --root-owner-group -Zxz -z1 --build "$tree" "$out" >/dev/null
  rm -rf "$tree"
  echo "$out"
}
work=$(mktemp -d)
deb2=$(repack upgradetest1)
apt_logged install --no-install-recommends "$deb2" || fail "upgrade to $version+upgradetest1 (see $log)"
[[ $(dpkg-query -W -f '${Version} ${Status}' pgb) == "$version+upgradetest1 install ok installed" ]] ||
  fail "after the upgrade: $(dpkg-query -W -f '${Version} ${Status}' pgb)"
grep -qF "pgb.prerm ( upgrade $version+upgradetest1 )" "$log.last" || fail "prerm was not told 'upgrade NEW' (see $log)"
grep -qF "pgb.postinst ( configure $version )" "$log.last" || fail "postinst was not told 'configure OLD' (see $log)"
conffile_kept "the upgrade"
pgb --version | grep -q '^pgb ' || fail "pgb --version after the upgrade"
verify_units "upgraded"
ok "upgraded $version -> $(dpkg-query -W -f '${Version}' pgb): changed conffile kept, 600 pgb:pgb, user kept"

# An upgrade whose shipped pgb.toml changed too: unattended, dpkg keeps the local one when
# told (--force-confdef --force-confold) and leaves the new one beside it as .dpkg-dist.
deb3=$(repack upgradetest2 "# a new default of upgradetest2")
apt_logged install --no-install-recommends -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold "$deb3" || fail "upgrade to $version+upgradetest2 (see $log)"
[[ $(dpkg-query -W -f '${Version}' pgb) == "$version+upgradetest2" ]] || fail "not upgraded to +upgradetest2"
conffile_kept "the upgrade with a changed shipped conffile"
grep -q '^# a new default of upgradetest2$' /etc/pgb/pgb.toml.dpkg-dist ||
  fail "the new shipped pgb.toml is not beside it as pgb.toml.dpkg-dist"
ok "upgraded with a changed shipped conffile: local kept, new one as pgb.toml.dpkg-dist"

# What the maintainer scripts ask of systemd, where it runs: a private mount namespace with
# /run/systemd/system, systemctl and deb-systemd-invoke logging their arguments.
if unshare -m --propagation private true 2>/dev/null; then
  mkdir -p "$work/stubs"
  for tool in systemctl deb-systemd-invoke; do
    printf '#!/bin/sh\necho "%s $*" >> "%s"\n' "$tool" "$work/calls" > "$work/stubs/$tool"
    chmod 0755 "$work/stubs/$tool"
  done
  calls() { # calls SCRIPT ARGS... -> what it asked of systemd, one line per call
    : > "$work/calls"
    unshare -m --propagation private sh -c \
      'mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec "$@"' sh \
      env PATH="$work/stubs:$PATH" "/var/lib/dpkg/info/pgb.$1" "${@:2}" >/dev/null ||
      fail "pgb.$1 $* failed"
    tr '\n' ';' < "$work/calls"
  }
  got=$(calls postinst configure "")
  [[ $got == "systemctl --system daemon-reload;" ]] || fail "postinst on install: $got"
  got=$(calls postinst configure "$version")
  [[ $got == "systemctl --system daemon-reload;deb-systemd-invoke try-restart pgb-daemon.service;" ]] ||
    fail "postinst on upgrade (a running daemon must be restarted): $got"
  got=$(calls prerm upgrade "$version+upgradetest3")
  [[ -z $got ]] || fail "prerm on upgrade (the daemon must not be stopped): $got"
  got=$(calls prerm remove)
  [[ $got == "deb-systemd-invoke stop pgb-daemon.service;" ]] || fail "prerm on remove: $got"
  ok "maintainer scripts with systemd: upgrade try-restarts pgb-daemon, remove stops it, install starts nothing"
else
  echo "test-deb: no private mount namespace here: what the scripts ask of systemd not checked"
fi

apt_logged remove pgb || fail "remove (see $log)"
[[ ! -e /usr/bin/pgb ]] || fail "/usr/bin/pgb left after remove"
[[ -f /etc/pgb/pgb.toml ]] || fail "remove took the conffile (only purge may)"
grep -q '^# changed by test-deb$' /etc/pgb/pgb.toml || fail "remove changed the conffile"
grep -qF "pgb.prerm ( remove )" "$log.last" || fail "prerm was not told 'remove' (see $log)"
apt_logged purge pgb || fail "purge (see $log)"
getent passwd pgb >/dev/null || fail "purge removed the pgb user (postrm keeps it)"
[[ -d /var/backups/pgb ]] || fail "purge removed /var/backups/pgb (postrm keeps it)"
rm -rf "$work" "$log.last"
left=()
while read -r path; do
  [[ -e ${path#.} && ! -d ${path#.} ]] && left+=("${path#.}")
done < <(awk '{print $NF}' <<<"$contents")
[[ -e /etc/pgb ]] && left+=(/etc/pgb)
[[ -e /var/lib/pgb ]] && left+=(/var/lib/pgb)
((${#left[@]} == 0)) || fail "left after purge: ${left[*]}"
dpkg -s pgb >/dev/null 2>&1 && fail "dpkg still knows pgb"
ok "removed and purged: nothing left (the pgb user and /var/backups/pgb stay by design)"
grep -E 'pgb\.(preinst|prerm|postinst|postrm) \(' "$log" | sed 's/^/test-deb: dpkg ran: /'

if ((had_user == 0)); then
  rmdir /var/backups/pgb 2>/dev/null || true
  deluser --system --quiet pgb >/dev/null 2>&1 || userdel pgb 2>/dev/null || true
fi
echo "test-deb: passed in $((SECONDS - t0)) s"
