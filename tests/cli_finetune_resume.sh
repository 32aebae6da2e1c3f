#!/usr/bin/env bash
# graft finetune --resume continues the same run: a run stopped by --max-steps and resumed ends with the weights of
# a straight run; a resume with other settings is refused, naming them, before any file of the run changes; run.txt
# keeps the first run's record and notes the resume; a new run into the directory moves the old run's files aside.
#   cli_finetune_resume.sh GRAFT DATA_DIR WORK_DIR PYTHON (with h5py and numpy)
set -u
graft=$1 data=$2 work=$3 python=$4
rm -rf "$work" && mkdir -p "$work"
args=(finetune --arch resnet18 --data "$data" --size 32 --freeze none --no-augment --no-progress)
same=(--batch 4 --epochs 2 --lr 0.02)  # the run's own values of the settings that refused() changes one at a time
fail() { echo "FAIL: $*"; exit 1; }
"$graft" "${args[@]}" "${same[@]}" --workers 0 --out "$work/straight" >"$work/straight.out" 2>&1 || { cat "$work/straight.out"; fail "straight run"; }
"$graft" "${args[@]}" "${same[@]}" --workers 0 --out "$work/run" --max-steps 2 >"$work/first.out" 2>&1 || { cat "$work/first.out"; fail "first run"; }
sums() { find "$work/run" -type f ! -name .graft-lock | sort | xargs md5sum; }  # the lock file holds its holder's pid
before=$(sums)

refused() {  # refused EXPECTED_TEXT ARGS...: the resume fails with EXPECTED_TEXT and changes no file
  local want=$1
  shift
  "$graft" "${args[@]}" --workers 0 --out "$work/run" --resume "$@" >"$work/refused.out" 2>&1
  local rc=$?
  [ "$rc" -ne 0 ] || fail "a resume with $* succeeded"
  grep -qF -- "$want" "$work/refused.out" || { cat "$work/refused.out"; fail "no '$want' for $*"; }
  [ "$(sums)" = "$before" ] || fail "a refused resume ($*) changed the run directory"
}
refused "finetune: cannot resume from '$work/run/last.h5': it was written by a run with other settings" --batch 8 --epochs 2 --lr 0.02
refused "batch: 4 in the checkpoint, 8 now" --batch 8 --epochs 2 --lr 0.02
refused "lr: 0.02 in the checkpoint, 0.05 now" --batch 4 --epochs 2 --lr 0.05
refused "epochs: 2 in the checkpoint, 3 now" --batch 4 --epochs 3 --lr 0.02
refused "accumulate: 1 in the checkpoint, 2 now" "${same[@]}" --accumulate 2
# While another process holds the run directory (here flock(1) on its lock file), a resume is refused before it writes.
# (-o: the lock stays with flock itself, not with the sleep it runs; killing flock releases it.)
: > "$work/run/.graft-lock"  # (no pid of an earlier run left in it: flock(1) writes none)
flock -o "$work/run/.graft-lock" sleep 60 </dev/null >/dev/null 2>&1 & holder=$!
for _ in $(seq 100); do flock -n "$work/run/.graft-lock" true || break; sleep 0.05; done
refused "finetune: the run directory '$work/run' is in use by another process" "${same[@]}"
pkill -P $holder sleep; wait $holder 2>/dev/null
refused "optimizer: sgd in the checkpoint, adam now" "${same[@]}" --optimizer adam
refused "unfreeze: (none) in the checkpoint, layer4 now" "${same[@]}" --unfreeze layer4
refused "class-weights: none in the checkpoint, 1,2,1 now" "${same[@]}" --class-weights 1,2,1

# Not other settings: the workers, no --max-steps, the data's path spelled otherwise (relative, from another
# directory, with a trailing slash), the lr written otherwise, and --weights (not read on resume: this file does not
# exist). The run goes on to the straight run's end.
abs_data=$(cd "$data" && pwd)
(cd "$abs_data/.." && "$graft" finetune --arch resnet18 --data "./$(basename "$abs_data")/" --size 32 --freeze none \
   --no-augment --no-progress --batch 4 --epochs 2 --lr 2e-2 --out "$work/run" --resume --workers 1 \
   --weights "$work/no_such_weights.h5") >"$work/resumed.out" 2>&1 || { cat "$work/resumed.out"; fail "resume"; }
head -1 "$work/run/run.txt" | grep -q "^graft finetune" || fail "run.txt lost the first run's record"
grep -q "^resumed from last.h5 at epoch 0, step 2, device cpu" "$work/run/run.txt" || { cat "$work/run/run.txt"; fail "run.txt does not note the resume"; }
"$python" - "$work/straight/last.h5" "$work/run/last.h5" <<'PY' || fail "the resumed run's weights differ from the straight run's"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
a["model"].visit(lambda n: names.append(n) if isinstance(a["model"][n], h5py.Dataset) else None)
assert names, "no tensors"
bad = [n for n in names if not np.array_equal(a["model"][n][()], b["model"][n][()])]
assert a.attrs["step"] == b.attrs["step"], (a.attrs["step"], b.attrs["step"])
if bad: sys.exit("differ: " + ", ".join(bad[:5]))
print("ok:", len(names), "tensors equal after", a.attrs["step"], "steps")
PY
# Resuming the finished run, or with a --max-steps it has passed, trains nothing and changes nothing.
before=$(sums)
for extra in "" "--max-steps 3"; do
  "$graft" "${args[@]}" "${same[@]}" --workers 0 --out "$work/run" --resume $extra >"$work/again.out" 2>&1 \
    || { cat "$work/again.out"; fail "resume of a finished run ($extra)"; }
  grep -q "is at epoch 2 of 2, step 8: nothing to train" "$work/again.out" || { cat "$work/again.out"; fail "message ($extra)"; }
  [ "$(sums)" = "$before" ] || fail "a resume with nothing to train changed the run"
done
# A new run (no --resume) into the finished run's directory first moves that run's files to previous-1/, unchanged:
# stopped after one step, the new run leaves its own run.txt and last.h5 there and none of the old run's files; a
# third run moves the second's to previous-2/ and deletes nothing.
old_files=$(cd "$work/run" && find . -maxdepth 1 -type f ! -name .graft-lock | sort | xargs md5sum)
"$graft" "${args[@]}" --batch 8 --epochs 1 --lr 0.05 --workers 0 --out "$work/run" --max-steps 1 >"$work/new.out" 2>&1 \
  || { cat "$work/new.out"; fail "a new run into the old run's directory"; }
grep -qF "held an earlier run's files (log.csv, curves.png, last.h5, best.h5, run.txt): moved to '$work/run/previous-1'" \
  "$work/new.out" || { cat "$work/new.out"; fail "no note of the files moved"; }
[ "$(cd "$work/run/previous-1" && find . -type f | sort | xargs md5sum)" = "$old_files" ] || fail "previous-1/ differs"
[ "$(ls "$work/run" | tr '\n' ' ')" = "last.h5 previous-1 run.txt " ] || { ls -la "$work/run"; fail "the new run's files"; }
grep -q "batch 8" "$work/run/run.txt" || fail "run.txt is not the new run's"
second_files=$(cd "$work/run" && find . -maxdepth 1 -type f ! -name .graft-lock | sort | xargs md5sum)
"$graft" "${args[@]}" --batch 8 --epochs 1 --lr 0.05 --workers 0 --out "$work/run" --max-steps 1 >"$work/third.out" 2>&1 \
  || { cat "$work/third.out"; fail "a third run"; }
[ "$(cd "$work/run/previous-1" && find . -type f | sort | xargs md5sum)" = "$old_files" ] || fail "previous-1/ changed"
[ "$(cd "$work/run/previous-2" && find . -type f | sort | xargs md5sum)" = "$second_files" ] || fail "previous-2/ differs"
echo "ok: stopped at step 2, refused 8 changed settings, resumed to the straight run's weights, nothing more after;" \
  "new runs moved the earlier runs' files to previous-1/ and previous-2/"
