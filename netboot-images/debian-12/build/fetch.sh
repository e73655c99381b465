# fetch.sh - the installer's HTTP GET with retries. Sourced by the image's /init (build/init.sh),
# and by test/lab/installer-fetch.test.ts under the host's busybox. The caller defines say() and ROLE.
#
# fetch URL OUT [WAIT_S]: 503 means "not ready yet" (the appliance is still pulling the image):
# wait WAIT_S (default 2) and retry, up to 300 attempts in all; a 4xx gives up at once; anything
# else (connection refused or reset, 5xx, timeout) retries with a growing pause, 8 times.
# (busybox-static 1.35 wget segfaults with -T: each attempt is bounded with timeout instead.)
fetch() {
  _url=$1; _out=$2; _wait=${3:-2}; _n=0; _fails=0; _err="${TMPDIR:-/tmp}/metalman-wget.$$"; _rc=1
  while [ $_n -lt 300 ]; do
    _n=$((_n + 1))
    rm -f "$_out"
    if timeout 300 wget -S -q -O "$_out" "$_url" 2>"$_err"; then _rc=0; break; fi
    _code=$(sed -n 's/^ *HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$_err" | tail -n1)
    case "$_code" in
      503) say "$ROLE-fetch-wait url=$_url status=503 attempt=$_n"; sleep "$_wait" ;;
      4??) say "$ROLE-fetch-refused url=$_url status=$_code"; break ;;
      *)
        _fails=$((_fails + 1))
        [ $_fails -lt 8 ] || { say "$ROLE-fetch-gave-up url=$_url status=${_code:-none}"; break; }
        say "$ROLE-fetch-retry url=$_url status=${_code:-none} attempt=$_n"; sleep $_fails ;;
    esac
  done
  rm -f "$_err"
  [ $_rc = 0 ] || rm -f "$_out"
  return $_rc
}
