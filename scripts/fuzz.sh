#!/usr/bin/env bash
# Fuzzes the parsers for a bounded time each. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# Builds the cargo-fuzz targets on stable (`cargo fuzz build -s none`, needs `cargo install
# cargo-fuzz`) and runs each one in a single process. Every crash, timeout or OOM input lands in
# fuzz/regressions/<target>/, which tests/fuzz_regressions.rs replays.
#
# Two corpora per target: the working one in target/fuzz-corpus/<target> (local, grows with every
# run) and the committed one in fuzz/corpus/<target>, re-derived after each run as the smallest
# set of short inputs that reaches every edge the seeds (fuzz/seeds/<target> and the project's
# test data) do not. With 0 seconds the script only re-derives the committed corpora.
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
full="$target_dir/fuzz-corpus"
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

# Seeds, read only: fuzz/seeds/<target> (written for fuzzing) and the project's own test data.
seeds_of() {
    echo "$root/fuzz/seeds/$1"
    case "$1" in
        wsman_response) echo "$root/../shared/testdata/wsman/txwinrm" ;;
        job_load) printf '%s\n' "$root/jobs" "$root/tests/data/jobs" ;;
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

# Longest input kept in git: keeps the committed corpora to a few hundred KB in all.
commit_len_of() {
    echo 1024
}

mkdir -p "$logs"
summary=()
for t in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$t"
    regressions="$root/fuzz/regressions/$t"
    mkdir -p "$corpus" "$regressions" "$full/$t" "$work"
    seed_dirs=()
    while read -r d; do if [ -d "$d" ]; then seed_dirs+=("$d"); fi; done < <(seeds_of "$t")

    execs="" cov="" ft=""
    if [ "$secs" -gt 0 ]; then
        echo "== $t: ${secs}s"
        # New inputs go to the working corpus; the committed corpus and the seeds are read only.
        "$bin_dir/$t" "$full/$t" "$corpus" "${seed_dirs[@]}" \
            -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")" \
            -dict="$root/fuzz/dict/$(dict_of "$t").dict" -artifact_prefix="$regressions/" \
            -print_final_stats=1 >"$logs/$t.log" 2>&1 || echo "   $t stopped with a finding (see $logs/$t.log)"
        stats="$(grep -E '^#[0-9]+' "$logs/$t.log" | tail -n 1 || true)"
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")"
        cov="$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<<"$stats")"
        ft="$(sed -nE 's/.* ft: ([0-9]+) .*/\1/p' <<<"$stats")"
    fi

    # The committed corpus: edges only (no hit counts), a set cover, short inputs, and nothing
    # the seeds already reach (the merge starts from them, so only what they miss is added).
    merged="$work/$t.merged"
    rm -rf "$merged"
    mkdir -p "$merged"
    for d in "${seed_dirs[@]}"; do cp -r "$d"/. "$merged/$(basename "$d")-seeds/"; done
    find "$merged" -type f | sort >"$work/$t.before"
    "$bin_dir/$t" -merge=1 -set_cover_merge=1 -use_counters=0 -max_len="$(commit_len_of "$t")" \
        -timeout=10 -rss_limit_mb=2048 "$merged" "$corpus" "$full/$t" >"$logs/$t.merge.log" 2>&1
    find "$merged" -type f | sort >"$work/$t.after"
    rm -rf "${corpus:?}"/*
    comm -13 "$work/$t.before" "$work/$t.after" | while read -r f; do cp "$f" "$corpus/"; done

    files="$(find "$corpus" -type f | wc -l)"
    bytes="$(du -sb "$corpus" | cut -f1)"
    working="$(find "$full/$t" -type f | wc -l)"
    crashes="$(find "$regressions" -type f | wc -l)"
    summary+=("$(printf '%-16s execs %-9s cov %-5s ft %-6s working corpus %5s files, committed %4s files %7s bytes, reproducers %s' \
        "$t" "${execs:--}" "${cov:--}" "${ft:--}" "$working" "$files" "$bytes" "$crashes")")
done

echo
printf '%s\n' "${summary[@]}"
