# Sourced by the project's scripts: installs, if missing, the command-line tools the tests
# and the demo use (Debian packages). Idempotent.
ensure_debian_packages() {
  local missing=()
  command -v zstd >/dev/null || missing+=(zstd)
  command -v gzip >/dev/null || missing+=(gzip)
  command -v age >/dev/null || missing+=(age)
  command -v python3 >/dev/null || missing+=(python3)
  [[ -x /usr/lib/postgresql/15/bin/pg_dump ]] || missing+=(postgresql-15)
  if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
      echo "missing tools: ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
      return 1
    fi
    echo "installing ${missing[*]} from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
ensure_debian_packages
