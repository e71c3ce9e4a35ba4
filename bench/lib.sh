# bench/lib.sh: what the bench scripts share (sourced by bash scripts).
# Set `tmp` (a temporary directory) and `bench_name` before sourcing; put
# every background process in `pids` so that cleanup stops it on exit.
pids=()

say() { printf '%s: %s\n' "$bench_name" "$*" >&2; }

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	if [ -n "${BENCH_KEEP:-}" ]; then
		say "kept $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
