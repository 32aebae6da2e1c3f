#!/usr/bin/env bash
# Ctrl-C during `graft finetune`: the run stops after the current step with exit 130, last.h5 loads, and --resume
# continues from it.   cli_finetune_sigint.sh GRAFT DATA_DIR WORK_DIR
set -u
graft=$1 data=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
args=(finetune --arch resnet18 --data "$data" --size 32 --batch 4 --epochs 200 --freeze none --workers 0
      --no-progress --out "$work/run")
# env --default-signal=INT: a background job of a shell without job control starts with SIGINT ignored, and graft
# keeps an ignored SIGINT ignored; the run gets the default disposition, as from a terminal.
env --default-signal=INT "$graft" "${args[@]}" >"$work/first.out" 2>"$work/first.err" &
pid=$!
# Wait for the first finished epoch (log.csv appears), then interrupt mid-training.
for _ in $(seq 1 600); do
  [ -f "$work/run/log.csv" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
if [ "$rc" -ne 130 ]; then echo "exit $rc, want 130"; cat "$work/first.err"; exit 1; fi
grep -q "interrupted after step" "$work/first.err" || { echo "no interruption message"; cat "$work/first.err"; exit 1; }
step=$("$graft" weights inspect "$work/run/last.h5" | sed -n 's/.*step \([0-9]*\).*/\1/p')
[ -n "$step" ] && [ "$step" -gt 0 ] || { echo "last.h5 unreadable or at step 0"; exit 1; }
"$graft" "${args[@]}" --resume --max-steps $((step + 2)) >"$work/second.out" 2>"$work/second.err"
rc=$?
if [ "$rc" -ne 0 ]; then echo "resume exit $rc"; cat "$work/second.err"; exit 1; fi
after=$("$graft" weights inspect "$work/run/last.h5" | sed -n 's/.*step \([0-9]*\).*/\1/p')
[ "$after" -eq $((step + 2)) ] || { echo "resumed to step $after, want $((step + 2))"; exit 1; }
echo "ok: interrupted at step $step, resumed to step $after"
