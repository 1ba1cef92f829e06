#!/usr/bin/env bash
# Fuzzes the parsers for a bounded time each. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Builds the cargo-fuzz targets on stable (`cargo fuzz build -s none`, needs `cargo install
# cargo-fuzz`), runs each one in a single process, copies every crash, timeout or OOM input into
# fuzz/regressions/<target>/ (tests/fuzz_regressions.rs replays them), then merges what the run
# found into a minimized fuzz/corpus/<target>/. Inputs the recorded test data already covers are
# left out of the committed corpus: the run reads them as seeds from ../shared/testdata.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-60}"
shift || true
all=(wsman_response wsman_fault wsman_encrypted wql job_load hosts_expand dcom_wmio dcom_ndr)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

case "$secs" in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac

# The crate's own target directory: no second copy of the dependencies on disk.
target_dir="$root/target"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/release"
work="$target_dir/fuzz-work"
logs="$target_dir/fuzz-logs"

(cd "$root/fuzz" && cargo fuzz build -s none --target-dir "$target_dir")

dict_of() {
    case "$1" in
        wsman_response | wsman_fault) echo xml ;;
        wsman_encrypted) echo encrypted ;;
        wql) echo wql ;;
        job_load) echo job ;;
        hosts_expand) echo hosts ;;
        dcom_*) echo dcom ;;
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

seeds_of() {
    case "$1" in
        wsman_response) echo "$root/../shared/testdata/wsman/txwinrm" ;;
        dcom_wmio | dcom_ndr) echo "$root/../shared/testdata/wmio" ;;
    esac
}

# Responses are large: fuzzing a 150 KB page at full length is mostly copying.
max_len_of() {
    case "$1" in
        wsman_response) echo 32768 ;;
        *) echo 8192 ;;
    esac
}

mkdir -p "$logs"
summary=()
for t in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$t"
    regressions="$root/fuzz/regressions/$t"
    mkdir -p "$corpus" "$regressions" "$work"
    rm -rf "${work:?}/$t"
    mkdir -p "$work/$t"
    seeds="$(seeds_of "$t")"
    seed_dirs=()
    [ -n "$seeds" ] && [ -d "$seeds" ] && seed_dirs+=("$seeds")

    echo "== $t: ${secs}s"
    # New inputs go to the work directory; the committed corpus and the seeds are read only.
    "$bin_dir/$t" "$work/$t" "$corpus" "${seed_dirs[@]}" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" \
        -dict="$root/fuzz/dict/$(dict_of "$t").dict" -artifact_prefix="$regressions/" \
        -print_final_stats=1 >"$logs/$t.log" 2>&1 || echo "   $t stopped with a finding (see $logs/$t.log)"

    # Minimize: start from the seeds so that only what they do not cover is kept.
    merged="$work/$t.merged"
    rm -rf "$merged"
    mkdir -p "$merged"
    [ ${#seed_dirs[@]} -gt 0 ] && cp -r "$seeds"/. "$merged"/
    find "$merged" -type f | sort >"$work/$t.before"
    "$bin_dir/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "$merged" "$corpus" "$work/$t" \
        >"$logs/$t.merge.log" 2>&1
    find "$merged" -type f | sort >"$work/$t.after"
    rm -rf "${corpus:?}"/*
    comm -13 "$work/$t.before" "$work/$t.after" | while read -r f; do cp "$f" "$corpus/"; done

    stats="$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -n 1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")"
    cov="$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<<"$stats")"
    ft="$(sed -nE 's/.* ft: ([0-9]+) .*/\1/p' <<<"$stats")"
    files="$(find "$corpus" -type f | wc -l)"
    bytes="$(du -sb "$corpus" | cut -f1)"
    crashes="$(find "$regressions" -type f | wc -l)"
    summary+=("$(printf '%-16s execs %-10s cov %-6s ft %-7s corpus %4s files %8s bytes  reproducers %s' \
        "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$files" "$bytes" "$crashes")")
done

echo
printf '%s\n' "${summary[@]}"
