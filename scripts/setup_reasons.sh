# Sourced by setup.sh: one-line causes of a failed optional step, read from its output (never hidden).
why_pip() {
  if grep -qi "no matching distribution" "$1"; then echo "no matching distribution on the configured index"
  else tail -n 1 "$1"; fi
}
why_apt() {
  if grep -qiE "password is required|not in the sudoers|permission denied|are you root" "$1"; then
    echo "installing system packages needs root (sudo without a password is not available)"
  elif grep -qiE "could not get lock|is another process using it" "$1"; then
    echo "the package manager is locked by another process (apt or dpkg running): try again when it has finished"
  elif grep -qiE "unable to locate package|has no installation candidate" "$1"; then
    echo "no chromium package in the configured Debian/Ubuntu sources"
  elif grep -qiE "temporary failure resolving|could not resolve|failed to fetch|network is unreachable" "$1"; then
    echo "the package sources cannot be reached (no network)"
  else
    echo "apt-get said: $(grep -vE '^\s*$' "$1" | tail -n 1)"
  fi
}
