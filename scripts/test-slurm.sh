#!/usr/bin/env bash
# The real Slurm check of issue 18: a one-node Slurm cluster on this machine (Debian's slurm-wlm and munge), the
# example examples/slurm/transcribe.sbatch submitted as a 4-task array over a generated corpus, and the results
# checked against one plain `asr transcribe DIR` run:
#   1. every good file transcribed exactly once, outputs byte-identical to the single run, the broken files in the
#      merged manifest as errors, no temporary files;
#   2. the fault case: one array task sent SIGTERM mid-shard (scancel --signal=TERM), then requeued
#      (scontrol requeue); the same results, nothing duplicated.
# Every daemon it starts is stopped on exit (trap), and its files live in one temporary directory, removed at the
# end (kept, with the logs printed, when a check fails). Needs root (it installs packages and runs slurmd); as
# another user it says so and exits 0. ASR_SKIP_SLURM=1 skips it.
#
# Environment: ASR (the binary; default the newest of .build/{debug,release}/asr), SLURM_CHECK_FILES (good files in
# the corpus, default 42), SLURM_CHECK_TIMEOUT (seconds each wait may take, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${ASR_SKIP_SLURM:-0}" = 1 ]; then echo "test-slurm: skipped (ASR_SKIP_SLURM=1)"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "test-slurm: skipped: needs root (installs slurm-wlm and munge, runs slurmd)"; exit 0; fi

ASR=${ASR:-$(ls -t "$ROOT"/.build/debug/asr "$ROOT"/.build/release/asr 2>/dev/null | head -1 || true)}
[ -n "$ASR" ] && [ -x "$ASR" ] || { echo "test-slurm: no asr binary (build first, or set ASR)" >&2; exit 1; }
FILES=${SLURM_CHECK_FILES:-42}
TIMEOUT=${SLURM_CHECK_TIMEOUT:-900}
say() { echo "test-slurm: $*"; }

# --- packages -------------------------------------------------------------------------------------------------------
missing=()
for p in slurm-wlm munge sox; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq </dev/null
    # policy-rc.d: the packages' own service starts are not wanted (this script starts what it needs).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

# --- one temporary directory for everything; daemons stopped on any exit ---------------------------------------------
WORK=$(mktemp -d /tmp/asr-slurm.XXXXXX)
chmod 755 "$WORK"
STARTED_MUNGE=""
ok=0
cleanup() {
    set +e
    # Jobs of this cluster still there (a failed check): cancelled while the daemons still run.
    if [ -s "$WORK/slurmctld.pid" ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
        scancel --full --signal=KILL --user=root 2>/dev/null; scancel --user=root 2>/dev/null
        for _ in $(seq 60); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    fi
    for pidfile in "$WORK/slurmd.pid" "$WORK/slurmctld.pid"; do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile")
            kill "$pid" 2>/dev/null
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null
        fi
    done
    # Anything left of a job (its asr reads the corpus under $WORK): stopped by pid.
    for pid in $(pgrep -f "$WORK/" 2>/dev/null); do [ "$pid" != $$ ] && kill -9 "$pid" 2>/dev/null; done
    if [ -n "$STARTED_MUNGE" ]; then
        kill "$STARTED_MUNGE" 2>/dev/null; wait "$STARTED_MUNGE" 2>/dev/null
    fi
    if [ "$ok" = 1 ]; then
        rm -rf "$WORK"
    else
        echo "test-slurm: FAILED; logs and files kept in $WORK" >&2
        tail -n 30 "$WORK"/log/slurmctld.log "$WORK"/log/slurmd.log "$WORK"/log/asr-*.log 2>/dev/null >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "test-slurm: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every half second; fails after SECONDS.
wait_for() {
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then echo "test-slurm: timed out after ${limit}s waiting for $what" >&2; return 1; fi
        sleep 0.5
    done
}
fail() { echo "test-slurm: FAIL: $*" >&2; exit 1; }

# --- the corpus: varied lengths and formats from the bundled samples, and 2 broken files -----------------------------
CORPUS=$WORK/corpus
mkdir -p "$CORPUS/talks" "$CORPUS/clips/more"
mapfile -t samples < <(ls "$ROOT"/fixtures/audio/builtin/*.wav)
formats=(wav flac ogg wav flac)
for i in $(seq 0 $((FILES - 1))); do
    case $((i % 3)) in 0) dir=$CORPUS/talks ;; 1) dir=$CORPUS/clips ;; *) dir=$CORPUS/clips/more ;; esac
    ext=${formats[$((i % ${#formats[@]}))]}
    out=$(printf "%s/rec%03d.%s" "$dir" "$i" "$ext")
    if command -v sox >/dev/null; then
        # 1 to 100 samples joined (2 s to about 4 minutes), some resampled to 22.05 or 44.1 kHz.
        n=$(( (i * 7919) % 100 + 1 ))
        parts=()
        for j in $(seq 0 $((n - 1))); do parts+=("${samples[$(((i + j) % ${#samples[@]}))]}"); done
        case $((i % 4)) in 1) effect=(rate 22050) ;; 3) effect=(rate 44100) ;; *) effect=() ;; esac
        sox "${parts[@]}" "$out" "${effect[@]}"
    else
        cp "${samples[$((i % ${#samples[@]}))]}" "${out%.*}.wav"
    fi
done
printf 'this is not audio\n' > "$CORPUS/clips/broken-text.wav"
head -c 30 "${samples[0]}" > "$CORPUS/talks/broken-truncated.wav"
GOOD=$FILES
TOTAL=$((FILES + 2))
say "corpus: $TOTAL files ($GOOD good, 2 broken), $(du -sh "$CORPUS" | cut -f1)"

# --- the reference: one plain run -------------------------------------------------------------------------------------
REF=$WORK/reference
rc=0
ref_start=$(date +%s.%N)
"$ASR" transcribe "$CORPUS" -r -f txt -f json -o "$REF" -q --threads 1 2>"$WORK/reference.err" || rc=$?
ref_wall=$(awk "BEGIN {print $(date +%s.%N) - $ref_start}")
[ $rc -eq 1 ] || fail "the reference run exited $rc (expected 1: two broken files)"
[ "$(find "$REF" -name '*.txt' | wc -l)" -eq "$GOOD" ] || fail "the reference run did not transcribe every good file"

# --- the cluster: munge, slurmctld, slurmd ----------------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/log"
export SLURM_CONF=$WORK/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=asrcheck
SlurmctldHost=$HOST
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=3600
KillWait=30
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=$HOST CPUs=$CPUS State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

if ! pgrep -x munged >/dev/null; then
    [ -s /etc/munge/munge.key ] || { mkdir -p /etc/munge; dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 755 /run/munge
    # In the foreground, as a child of this script (setpriv execs it: no process in between): stopped and reaped by
    # the trap (a daemonised munged would be left a zombie where PID 1 reaps nothing, as in containers).
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground >"$WORK/log/munged.log" 2>&1 &
    STARTED_MUNGE=$!
fi
wait_for 30 "munge" bash -c 'munge -n | unmunge'
slurmctld -c
wait_for 60 "slurmctld" scontrol ping
slurmd -c
wait_for 60 "the node to be idle" bash -c "sinfo -h -n $HOST -o %T | grep -qx idle"
say "cluster up: $(sinfo -h -o '%P %D %c %T')"

# --- one array run ----------------------------------------------------------------------------------------------------
# submit OUT: submits the example as a 4-task array (1 CPU each) writing under OUT; prints the job id.
submit() {
    sbatch --parsable --array=0-3 --cpus-per-task=1 --output="$WORK/log/asr-%A_%a.log" \
        --export="ALL,INPUT=$CORPUS,OUTPUT=$1,ASR=$ASR,ASR_OPTIONS=-q" "$ROOT/examples/slurm/transcribe.sbatch" </dev/null
}
array_done() { [ -z "$(squeue -h -j "$1" -o %i)" ]; }
# task_field JOB TASK FIELD: the field (JobState, ExitCode, Restarts) of one array task from scontrol.
task_field() {
    local record word
    record=$(scontrol -o show job "$1_$2" 2>/dev/null) || true
    for word in $record; do case $word in "$3="*) echo "${word#*=}"; return ;; esac; done
    echo "?"
}

# check OUT: the results under OUT against the reference.
check() {
    local out=$1
    diff -r -x 'manifest-*.jsonl' -x corpus.jsonl "$REF" "$out" >/dev/null || { diff -r -x 'manifest-*.jsonl' "$REF" "$out" | head; fail "$out differs from the single run"; }
    [ -z "$(find "$out" -name '*.asr-partial' -o -name '.asr-probe*')" ] || fail "temporary files left under $out"
    local rc=0
    "$ASR" manifest merge "$out"/manifest-*.jsonl -o "$out/corpus.jsonl" 2>"$out.summary" || rc=$?
    cat "$out.summary"
    [ $rc -eq 1 ] || fail "merge exited $rc (expected 1: two failed files)"
    [ "$(wc -l < "$out/corpus.jsonl")" -eq "$TOTAL" ] || fail "merged manifest: not one line per input"
    [ "$(grep -c '"status":"ok"' "$out/corpus.jsonl")" -eq "$GOOD" ] || fail "merged manifest: not every good file ok"
    [ "$(grep '"status":"error"' "$out/corpus.jsonl" | grep -c 'broken-')" -eq 2 ] || fail "merged manifest: the broken files are not errors"
    # Exactly once: no file has two lines in the shard manifests (a requeued task adds none for finished files).
    local dups
    dups=$(cat "$out"/manifest-*.jsonl | grep -o '"file":"[^"]*"' | sort | uniq -d)
    [ -z "$dups" ] || fail "files recorded twice: $dups"
    [ "$(cat "$out"/manifest-*.jsonl | wc -l)" -eq "$TOTAL" ] || fail "shard manifests: not one line per input"
}

OUT=$WORK/out
start=$(date +%s.%N)
JOB=$(submit "$OUT")
say "array job $JOB submitted"
wait_for "$TIMEOUT" "array job $JOB" array_done "$JOB"
end=$(date +%s.%N)
for k in 0 1 2 3; do say "task $k: $(task_field "$JOB" $k JobState) exit $(task_field "$JOB" $k ExitCode)"; done
check "$OUT"
say "$(awk "BEGIN {printf \"one process, one thread (the reference run): %.1f s, %.1f audio hours per hour\", $ref_wall, $(grep -o '"duration":[0-9.]*' "$OUT/corpus.jsonl" | cut -d: -f2 | awk '{s += $1} END {print s}') / $ref_wall}")"
audio=$(grep -o '"duration":[0-9.]*' "$OUT/corpus.jsonl" | cut -d: -f2 | awk '{s += $1} END {printf "%.4f", s / 3600}')
wall=$(echo "$end - $start" | bc -l 2>/dev/null || awk "BEGIN {print $end - $start}")
say "$(awk "BEGIN {printf \"throughput: %.3f h of audio in %.1f s of wall clock (submit to last task done) on %d CPUs: %.1f audio hours per hour\", $audio, $wall, $CPUS, $audio * 3600 / $wall}")"

# --- the fault case: SIGTERM to a running task mid-shard, then requeue ------------------------------------------------
OUT2=$WORK/out-fault
JOB2=$(submit "$OUT2")
say "array job $JOB2 submitted (fault case: task 1 gets SIGTERM)"
lines() { [ -f "$OUT2/manifest-1.jsonl" ] && wc -l < "$OUT2/manifest-1.jsonl" || echo 0; }
wait_for "$TIMEOUT" "task 1 to finish a file" bash -c "[ \"\$(squeue -h -j ${JOB2}_1 -t R -o %i)\" ] && [ -s '$OUT2/manifest-1.jsonl' ]"
shard1=$("$ASR" transcribe "$CORPUS" -r --list-shard 1/4 -q | wc -l)
before=$(lines)
[ "$before" -lt "$shard1" ] || fail "task 1 finished its shard before it could be stopped (make the corpus longer)"
# To the task's own job id (an array task has one); scancel may still answer "Job can not be altered now" while the
# step does get the signal, so what counts is how the task ends (checked below).
task1=$(squeue -h -j "${JOB2}_1" -o %A)
scancel --signal=TERM "$task1" || say "scancel answered $? (the step is signalled all the same)"
wait_for 120 "task 1 to stop" bash -c "[ -z \"\$(squeue -h -j ${JOB2}_1 -t R,CG -o %i)\" ]"
exit1=$(task_field "$JOB2" 1 ExitCode)
say "task 1 stopped: $(task_field "$JOB2" 1 JobState), exit $exit1, $(lines) of $shard1 files in its manifest"
[ "$exit1" = "143:0" ] || fail "task 1 exited $exit1 after SIGTERM (expected 143:0)"
[ "$(lines)" -lt "$shard1" ] || fail "task 1 had finished its shard"
scontrol requeue "${JOB2}_1"
# A requeued job is held back for a while before it may start again; here it may start at once.
scontrol update JobId="${JOB2}_1" StartTime=now || true
wait_for 60 "task 1 to be requeued" bash -c "squeue -h -j ${JOB2}_1 -o %i | grep -q ."
wait_for "$TIMEOUT" "array job $JOB2" array_done "$JOB2"
for k in 0 1 2 3; do say "task $k: $(task_field "$JOB2" $k JobState) exit $(task_field "$JOB2" $k ExitCode) restarts $(task_field "$JOB2" $k Restarts)"; done
[ "$(task_field "$JOB2" 1 Restarts)" -ge 1 ] || fail "task 1 was not requeued"
check "$OUT2"
grep -q "restart 1" "$WORK"/log/asr-"${JOB2}"_1.log || fail "the requeued task did not run again"

ok=1
say "OK: $GOOD good files transcribed exactly once by a 4-task Slurm array, identical to one run; the broken ones reported; SIGTERM + requeue resumed without duplicates"
