#!/usr/bin/env bash
# Classes are matched by name, never by position:
#   - graft eval on a folder with only some of the checkpoint's classes scores each image against its own class:
#     class_c's accuracy on a folder of class_a and class_c equals its accuracy on the full folder;
#   - graft eval --classes picking a class the checkpoint never learnt is an error naming it;
#   - graft finetune with a val/ folder that lacks one of train/'s classes validates against the right classes: the
#     reported best validation top-1 is what graft eval of best.h5 on val/ gives;
#   - a val/ class that train/ lacks is an error naming it.
#   cli_classes_by_name.sh GRAFT CHECKPOINT CLEAN_FOLDER(class_a, class_b, class_c) WORK_DIR
set -u
graft=$1 checkpoint=$2 clean=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
accuracy_of() { sed -n "s/^  $1 *\([0-9.]*\)%.*/\1/p" "$2"; }

mkdir -p "$work/ac" && cp -r "$clean/class_a" "$clean/class_c" "$work/ac/"
"$graft" eval --checkpoint "$checkpoint" --data "$clean" --workers 1 >"$work/full.out" 2>&1 || { cat "$work/full.out"; fail "eval full"; }
"$graft" eval --checkpoint "$checkpoint" --data "$work/ac" --workers 1 >"$work/ac.out" 2>&1 || { cat "$work/ac.out"; fail "eval ac"; }
full_c=$(accuracy_of class_c "$work/full.out") ac_c=$(accuracy_of class_c "$work/ac.out")
full_a=$(accuracy_of class_a "$work/full.out") ac_a=$(accuracy_of class_a "$work/ac.out")
[ -n "$full_c" ] && [ "$full_c" = "$ac_c" ] && [ "$full_a" = "$ac_a" ] \
  || { cat "$work/full.out" "$work/ac.out"; fail "per-class accuracy differs on a folder with fewer classes"; }
grep -q "class_b .* -  (0 images)" "$work/ac.out" || { cat "$work/ac.out"; fail "class_b should show no images"; }

# --classes naming a class the checkpoint does not have (a folder with a fourth class, class_d).
mkdir -p "$work/abcd" && cp -r "$clean"/class_* "$work/abcd/" && cp -r "$clean/class_a" "$work/abcd/class_d"
"$graft" eval --checkpoint "$checkpoint" --data "$work/abcd" --classes 2,3 --workers 1 >"$work/d.out" 2>&1 \
  && fail "--classes with an unknown class accepted"
grep -q "class 'class_d' of .* is not among the 3 classes" "$work/d.out" || { cat "$work/d.out"; fail "unknown class message"; }
# Without --classes, the unknown class is left out, with a line saying so.
"$graft" eval --checkpoint "$checkpoint" --data "$work/abcd" --workers 1 >"$work/d2.out" 2>&1 || { cat "$work/d2.out"; fail "eval abcd"; }
grep -q "1 class(es) of the data are not the checkpoint's and are left out (the first: 'class_d')" "$work/d2.out" \
  || { cat "$work/d2.out"; fail "left-out line"; }
[ "$(accuracy_of class_c "$work/d2.out")" = "$full_c" ] || { cat "$work/d2.out"; fail "class_c on abcd"; }

# finetune with val/ lacking class_b.
mkdir -p "$work/tv/train" "$work/tv/val"
cp -r "$clean"/class_* "$work/tv/train/"
cp -r "$clean/class_a" "$clean/class_c" "$work/tv/val/"
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 2 --lr 0.05 --workers 1 --no-progress \
  --data "$work/tv" --out "$work/run" >"$work/ft.out" 2>&1 || { cat "$work/ft.out"; fail "finetune"; }
best=$(sed -n 's/.*best validation top-1 \([0-9.]*\)%.*/\1/p' "$work/ft.out")
"$graft" eval --checkpoint "$work/run/best.h5" --data "$work/tv/val" --workers 1 >"$work/v.out" 2>&1 \
  || { cat "$work/v.out"; fail "eval of best.h5"; }
evald=$(sed -n 's/^top-1 \([0-9.]*\)%.*/\1/p' "$work/v.out")
[ -n "$best" ] && [ "$best" = "$evald" ] || { cat "$work/ft.out" "$work/v.out"; fail "best validation $best% vs eval $evald%"; }

# val/ with a class train/ lacks.
cp -r "$clean/class_a" "$work/tv/val/class_z"
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 1 --workers 1 --no-progress \
  --data "$work/tv" --out "$work/run2" >"$work/z.out" 2>&1 && fail "a val/ class missing from train/ accepted"
grep -q "class 'class_z' of .* is not among the 3 classes" "$work/z.out" || { cat "$work/z.out"; fail "val class message"; }
# A resume whose training classes are named differently (class_c renamed class_d) is refused.
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 2 --max-steps 1 --workers 1 --no-progress \
  --data "$work/tv/train" --val-fraction 0.3 --out "$work/run3" >"$work/r1.out" 2>&1 || { cat "$work/r1.out"; fail "run3"; }
mv "$work/tv/train/class_c" "$work/tv/train/class_d"
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 2 --workers 1 --no-progress --resume \
  --data "$work/tv/train" --val-fraction 0.3 --out "$work/run3" >"$work/r2.out" 2>&1 && fail "a resume with renamed classes accepted"
grep -q "train-class-names" "$work/r2.out" || { cat "$work/r2.out"; fail "renamed classes message"; }
mv "$work/tv/train/class_d" "$work/tv/train/class_c"

# --weights CHECKPOINT on data with other classes of the same count (class_b, class_c, class_z): the head rows of
# class_b and class_c come from the checkpoint by name, so with --lr 0 they score as before; class_z starts fresh.
mkdir -p "$work/bcz" && cp -r "$clean/class_b" "$clean/class_c" "$work/bcz/" && cp -r "$clean/class_a" "$work/bcz/class_z"
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 1 --lr 0 --workers 1 --no-progress --val-fraction 0.3 \
  --weights "$checkpoint" --data "$work/bcz" --out "$work/run4" >"$work/w.out" 2>&1 || { cat "$work/w.out"; fail "finetune --weights"; }
grep -q "the head's rows of 2 of the data's 3 classes are taken from it by name" "$work/w.out" \
  || { cat "$work/w.out"; fail "head rows line"; }
"$graft" eval --checkpoint "$work/run4/last.h5" --data "$work/bcz" --workers 1 >"$work/w2.out" 2>&1 || { cat "$work/w2.out"; fail "eval run4"; }
"$graft" eval --checkpoint "$checkpoint" --data "$clean" --workers 1 >"$work/w3.out" 2>&1 || fail "eval source"
for c in class_b class_c; do
  [ "$(accuracy_of $c "$work/w2.out")" = "$(accuracy_of $c "$work/w3.out")" ] \
    || { cat "$work/w2.out" "$work/w3.out"; fail "$c scores differently after taking the head by name"; }
done
# The per-class table lines up class names in UTF-8 ("clâss_é" is 7 characters in 9 bytes).
mkdir -p "$work/utf8" && cp -r "$clean/class_a" "$work/utf8/" && cp -r "$clean/class_b" "$work/utf8/clâss_é"
"$graft" finetune --arch resnet18 --size 32 --batch 6 --epochs 1 --max-steps 1 --workers 1 --no-progress \
  --val-fraction 0.3 --data "$work/utf8" --out "$work/run5" >"$work/u.out" 2>&1 || { cat "$work/u.out"; fail "finetune utf8"; }
"$graft" eval --checkpoint "$work/run5/last.h5" --data "$work/utf8" --workers 1 >"$work/u2.out" 2>&1 \
  || { cat "$work/u2.out"; fail "eval utf8"; }
python3 - "$work/u2.out" <<'PY' || { cat "$work/u2.out"; fail "the per-class table does not line up in UTF-8"; }
import sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith(("  class_a ", "  clâss_é "))]
assert len(lines) == 2 and lines[0].index("%") == lines[1].index("%"), lines
PY
echo "ok: classes matched by name (class_c $full_c% on 3 and on 2 folders; best validation $best% = eval $evald%)"
