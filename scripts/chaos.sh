#!/usr/bin/env bash
# Chaos run for Herald: the fault scenarios of crates/herald/tests/faults.rs and cluster.rs with
# more jobs, more faults and longer outages, one at a time, then a table:
#   scenario | published | delivered | dead-lettered | lost | duplicated | result | time
#
#   scripts/chaos.sh                 # everything, SMTP down for 10 real minutes (~30 min in all)
#   CHAOS_SMTP_DOWN=30s scripts/chaos.sh   # a quicker run
#   CHAOS_ONLY=recovery CHAOS_REPEAT=10 scripts/chaos.sh   # the two recovery scenarios, 10 times
#
# Knobs: CHAOS_SCALE (job and fault multiplier, default 10), CHAOS_SMTP_DOWN (SMTP outage against
# the production retry tiers 5s,30s,2m,10m,30m,1h and HERALD_MAX_ATTEMPTS 10, default 10m),
# CHAOS_PG_DOWN (each of the two PostgreSQL outages, default 90s), CHAOS_ONLY=recovery (only the
# SIGKILL-with-a-full-prefetch and connection-blip scenarios), CHAOS_REPEAT (run each scenario
# that many times, default 1; with more, the notes' settle times get a median and a maximum).
#
# Needs what `cargo test` needs (RabbitMQ on :5672, PostgreSQL on :5432) and root: broker and
# database restarts use private instances (crates/testkit/src/services.rs) on ports 5701+ and
# 5442+ (the cluster scenario: three nodes), which are stopped and deleted afterwards. The shared
# services are never restarted.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${CHAOS_SCALE:-10}
smtp_down=${CHAOS_SMTP_DOWN:-10m}
pg_down=${CHAOS_PG_DOWN:-90s}
out=$(mktemp -d /tmp/herald-chaos.XXXXXX)
report=$out/rows
: >"$report"

# Each scenario is a test of tests/faults.rs, or `<test file>:<test>` for another test binary.
recovery=(
  a_sigkilled_workers_prefetch_is_delivered_by_the_survivor_within_seconds
  connection_blips_dead_letter_nothing_and_the_workers_consume_again_at_once
)
scenarios=(
  a_sigkilled_worker_loses_nothing_and_duplicates_at_most_its_prefetch
  "${recovery[@]}"
  sigterm_drains_in_flight_jobs_and_leaves_the_rest_queued
  three_workers_send_each_job_exactly_once_even_when_it_is_published_twice
  a_restarted_broker_loses_nothing_and_the_worker_reconnects_on_its_own
  a_database_outage_is_retried_from_the_delay_queues_and_leaves_the_ledger_consistent
  smtp_421_replies_are_retried_until_the_server_accepts_again
  smtp_hanging_before_data_times_out_and_is_retried_without_duplicates
  smtp_slower_than_the_send_timeout_is_retried_and_duplicates_stay_within_the_attempts
  smtp_down_then_back_on_the_same_port_delivers_every_job
  cluster:a_cluster_losing_a_node_loses_no_job_and_clients_fail_over_to_the_survivors
)

if [[ ${CHAOS_ONLY:-} == recovery ]]; then
  scenarios=("${recovery[@]}")
fi
repeat=${CHAOS_REPEAT:-1}
runs=()
for scenario in "${scenarios[@]}"; do
  for _ in $(seq 1 "$repeat"); do runs+=("$scenario"); done
done

# The README's feature set, so this reuses the test command's build instead of a second one.
echo "Building the fault tests..."
cargo test -q --workspace --all-features --test faults --test cluster --no-run 2>&1 | tail -n 5

failed=0
declare -A result took
run=0
for scenario in "${runs[@]}"; do
  run=$((run + 1))
  binary=faults name=$scenario
  if [[ $scenario == *:* ]]; then
    binary=${scenario%%:*} name=${scenario#*:}
  fi
  extra=()
  if [[ $name == smtp_down_then_back_on_the_same_port_delivers_every_job ]]; then
    extra=(HERALD_CHAOS_SMTP_DOWN="$smtp_down" HERALD_CHAOS_PRODUCTION_TIERS=1)
  fi
  echo "== $name"
  start=$(date +%s)
  before=$(wc -l <"$report")
  if env HERALD_CHAOS_SCALE="$scale" HERALD_CHAOS_REPORT="$report" \
    HERALD_CHAOS_PG_DOWN="$pg_down" "${extra[@]}" \
    cargo test -q --workspace --all-features --test "$binary" -- --exact "$name" --test-threads=1 \
    >"$out/$run-$name.log" 2>&1; then
    result[$name]=ok
  else
    result[$name]=FAIL
    failed=1
    grep -E "panicked|timed out|assert" "$out/$run-$name.log" | head -n 5 || true
  fi
  took[$name]=$(($(date +%s) - start))s
  # Tag the rows this scenario wrote with its result and time.
  after=$(wc -l <"$report")
  if ((after > before)); then
    sed -i "$((before + 1)),${after}s/\$/|${result[$name]}|${took[$name]}/" "$report"
  else
    echo "${name//_/ }|-|-|-|-|-|no row, see $out/$run-$name.log|${result[$name]}|${took[$name]}" >>"$report"
  fi
done

echo
echo "Herald chaos run, $(date -u '+%Y-%m-%d %H:%M UTC'), scale $scale, SMTP down $smtp_down, PostgreSQL down $pg_down"
echo
{
  echo "scenario|published|delivered|dead-lettered|lost|duplicated|result|time"
  cut -d'|' -f1-6,8,9 "$report"
} | column -t -s'|' -o' | '
echo
echo "Notes:"
awk -F'|' '{ printf "  %-34s %s\n", $1 ":", $7 }' "$report"
if ((repeat > 1)); then
  echo
  echo "Settle time after the last publish (the notes' settled=), per scenario over $repeat runs:"
  awk -F'|' '{ if (match($7, /settled=[0-9.]+/)) { v = substr($7, RSTART + 8, RLENGTH - 8); print $1 "|" v } }' "$report" |
    sort -t'|' -k1,1 -k2,2n |
    awk -F'|' '
      { name[$1] = 1; v[$1, ++n[$1]] = $2 }
      END { for (s in name) { c = n[s]; m = (c % 2) ? v[s, (c + 1) / 2] : (v[s, c / 2] + v[s, c / 2 + 1]) / 2;
              printf "  %-34s runs %d, median %.1f s, max %.1f s\n", s ":", c, m, v[s, c] } }'
fi
echo
echo "Logs: $out"
exit "$failed"
