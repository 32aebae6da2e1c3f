#!/usr/bin/env bash
# graft features: one row per readable image of a folder, in predict's order, and the rows are what the head sees:
# softmax(features W^T + b) with the checkpoint's own fc gives graft predict's probabilities.
#   cli_features.sh GRAFT CHECKPOINT FOLDER WORK_DIR PYTHON (with h5py and numpy)
set -u
graft=$1 checkpoint=$2 folder=$3 work=$4 python=$5
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
"$graft" features --checkpoint "$checkpoint" --batch 4 --out "$work/f.h5" "$folder" >"$work/f.out" 2>"$work/f.err" \
  || { cat "$work/f.err"; fail "features"; }
grep -q "features: 18 image(s) x 512 values (the input of resnet18's 'fc') -> .*(1 unreadable skipped)" "$work/f.out" \
  || { cat "$work/f.out"; fail "summary line"; }
"$graft" predict --checkpoint "$checkpoint" --top 3 --csv "$work/p.csv" "$folder" >/dev/null 2>&1 || fail "predict"
"$python" - "$work/f.h5" "$checkpoint" "$work/p.csv" <<'PY' || fail "features and predict disagree"
import csv, sys
import h5py, numpy as np
f, ck = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
feats, paths = f["features"][()], [p.decode() for p in f["paths"][()]]
assert feats.shape == (18, 512) and feats.dtype == np.float32, feats.shape
assert f.attrs["layer"] == b"fc" and f.attrs["arch"] == b"resnet18", dict(f.attrs)
logits = feats.astype(np.float64) @ ck["model/fc.weight"][()].T.astype(np.float64) + ck["model/fc.bias"][()]
prob = np.exp(logits - logits.max(1, keepdims=True))
prob /= prob.sum(1, keepdims=True)
names = [n for n in ck.attrs["class_names"].decode().split("\n")] if "class_names" in ck.attrs else None
rows = list(csv.reader(open(sys.argv[3])))[1:]
assert [r[0] for r in rows] == paths, "row order differs from predict's"
worst = 0.0
for i, r in enumerate(rows):
    for k in range(3):
        cls, p = r[1 + 2 * k], float(r[2 + 2 * k])
        worst = max(worst, abs(prob[i, names.index(cls)] - p))
assert worst < 1e-5, worst
print(f"ok: {len(paths)} rows, softmax(features W^T + b) = predict's probabilities within {worst:.1e}")
PY
# Errors: no --out, a path that does not exist (nothing written).
"$graft" features --checkpoint "$checkpoint" "$folder" >/dev/null 2>&1 && fail "no --out accepted"
"$graft" features --checkpoint "$checkpoint" --out "$work/g.h5" "$folder/nope.png" >"$work/e.out" 2>&1 && fail "missing path accepted"
grep -q "features: '.*nope.png' does not exist" "$work/e.out" || { cat "$work/e.out"; fail "missing path message"; }
[ ! -e "$work/g.h5" ] || fail "a failed run left a file"
# --out naming an image (the output's name forgotten) or the checkpoint is refused before any work; nothing changes.
cp "$folder/class_b/img1.png" "$work/x.png"
cp "$checkpoint" "$work/ck.h5"
before=$(md5sum "$work/x.png" "$work/ck.h5")
"$graft" features --checkpoint "$work/ck.h5" --out "$work/x.png" "$folder/class_b/img2.png" >"$work/e2.out" 2>&1 \
  && fail "--out IMAGE accepted"
grep -q "names an image file" "$work/e2.out" || { cat "$work/e2.out"; fail "--out IMAGE message"; }
"$graft" features --checkpoint "$work/ck.h5" --out "$work/ck.h5" "$folder/class_b/img2.png" >"$work/e3.out" 2>&1 \
  && fail "--out CHECKPOINT accepted"
grep -q "an input" "$work/e3.out" || { cat "$work/e3.out"; fail "--out CHECKPOINT message"; }
"$graft" features --checkpoint "$work/ck.h5" --out "$work/no/such/dir/f.h5" "$folder" >"$work/e4.out" 2>&1 \
  && fail "--out in a missing folder accepted"
grep -q "does not exist" "$work/e4.out" || { cat "$work/e4.out"; fail "--out folder message"; }
[ "$(md5sum "$work/x.png" "$work/ck.h5")" = "$before" ] || fail "a refused run changed its inputs"
# --out naming a symbolic link or a pipe is refused: the rename at the end would replace it by a plain file.
echo kept >"$work/target.h5" && ln -s target.h5 "$work/link.h5" && mkfifo "$work/pipe.h5"
for out in link.h5 pipe.h5; do
  "$graft" features --checkpoint "$checkpoint" --out "$work/$out" "$folder/class_b/img2.png" >"$work/e5.out" 2>&1 \
    && fail "--out $out accepted"
  grep -q "is a symbolic link\|is not a regular file" "$work/e5.out" || { cat "$work/e5.out"; fail "--out $out message"; }
done
[ -L "$work/link.h5" ] && [ -p "$work/pipe.h5" ] && [ "$(cat "$work/target.h5")" = kept ] || fail "a link or pipe was replaced"
# The same for graft finetune's checkpoints, refused before the first epoch; and a link left at the temporary name
# is removed, not followed (the victim keeps its bytes).
mkdir -p "$work/run" && ln -s ../target.h5 "$work/run/best.h5"
"$graft" finetune --arch resnet18 --size 32 --epochs 1 --workers 1 --no-progress --data "$folder" --out "$work/run" \
  >"$work/e6.out" 2>&1 && fail "a best.h5 link accepted"
grep -q "best.h5' is a symbolic link" "$work/e6.out" || { cat "$work/e6.out"; fail "best.h5 link message"; }
[ ! -e "$work/run/last.h5" ] || fail "finetune trained before refusing the link"
ln -s target.h5 "$work/g2.h5.tmp-graft"
"$graft" features --checkpoint "$checkpoint" --out "$work/g2.h5" "$folder/class_b/img2.png" >/dev/null 2>&1 || fail "features g2"
[ -f "$work/g2.h5" ] && [ ! -L "$work/g2.h5" ] && [ "$(cat "$work/target.h5")" = kept ] || fail "the temporary link was followed"
# A full disk (a file-size limit, SIGXFSZ ignored): a clear error, exit status 1, no file left. libhdf5's exit-time
# cleanup used to segfault after the failed write (status 139).
( ulimit -f 16; trap '' XFSZ; exec "$graft" features --checkpoint "$checkpoint" --batch 4 --out "$work/full.h5" \
    "$folder" ) >"$work/full.out" 2>&1
status=$?
[ "$status" = 1 ] || { cat "$work/full.out"; fail "a full disk ended with status $status, not 1"; }
grep -q "disk full" "$work/full.out" || { cat "$work/full.out"; fail "full disk message"; }
[ ! -e "$work/full.h5" ] && [ -z "$(ls "$work" | grep -F full.h5.tmp-graft)" ] || fail "a full disk left a file"
# Ctrl-C while the rows are being written: exit 130, a line saying so, and neither the output nor its temporary file.
mkdir -p "$work/many"
"$python" -c "import shutil, sys; [shutil.copy(sys.argv[1], f\"{sys.argv[2]}/{i}.png\") for i in range(1500)]" "$folder/class_b/img2.png" "$work/many"
# (env --default-signal=INT: a background job starts with SIGINT ignored, which graft would respect)
env --default-signal=INT "$graft" features --checkpoint "$checkpoint" --batch 1 --size 160 --out "$work/int.h5" \
  "$work/many" >"$work/int.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do  # until the first rows are in the temporary file (its first chunk: 256 KiB)
  size=$(stat -c %s "$work/int.h5.tmp-graft-$pid-"* 2>/dev/null | head -n 1)  # (its name ends in a random number)
  [ "${size:-0}" -gt 200000 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
kill -INT $pid
wait $pid
status=$?
[ "$status" = 130 ] || { cat "$work/int.out"; fail "Ctrl-C ended with status $status, not 130"; }
grep -q "features interrupted after [0-9]* of 1500 image(s); no output file was written" "$work/int.out" \
  || { cat "$work/int.out"; fail "interruption message"; }
[ ! -e "$work/int.h5" ] && [ -z "$(ls "$work" | grep -F int.h5.tmp-graft)" ] || fail "an interrupted run left a file"
echo "ok: graft features"
