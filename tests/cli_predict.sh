#!/usr/bin/env bash
# graft predict on folders: every image below them, in batches, with a CSV; an unreadable image is skipped with a
# warning (an error with --strict); batches of 1 and 4 print the same 4-decimal probabilities for this small model
# (a GEMM's last bits may depend on the batch: larger models can differ in the 4th decimal); CSV fields with commas
# are quoted; the CSV appears only when the run succeeds (a full disk leaves the old one), and --csv naming an image
# is refused.
#   cli_predict.sh GRAFT CHECKPOINT FOLDER WORK_DIR   (FOLDER: tests/make_tiny_data.py's folder, one corrupt.png)
set -u
graft=$1 checkpoint=$2 folder=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
readable=$(find "$folder" -name '*.png' ! -name corrupt.png | wc -l)

"$graft" predict --checkpoint "$checkpoint" --batch 4 --top 2 --csv "$work/p.csv" "$folder" >"$work/b4.out" 2>"$work/b4.err" \
  || { cat "$work/b4.err"; fail "predict on the folder"; }
grep -q "warning: skipped an unreadable image: .*corrupt.png" "$work/b4.err" || { cat "$work/b4.err"; fail "no warning"; }
grep -q "$readable image(s), 1 unreadable skipped" "$work/b4.err" || { cat "$work/b4.err"; fail "no summary"; }
[ "$(grep -c '^/\|^[^ ]' "$work/b4.out")" -eq "$readable" ] || { cat "$work/b4.out"; fail "not one block per readable image"; }
[ "$(head -1 "$work/p.csv")" = "path,class1,probability1,class2,probability2" ] || fail "CSV header: $(head -1 "$work/p.csv")"
[ "$(($(wc -l <"$work/p.csv") - 1))" -eq "$readable" ] || fail "CSV rows: $(wc -l <"$work/p.csv")"
grep -q "class_a/img0.png,class_.,[01]\.[0-9]*,class_.,[0-9.e-]*$" "$work/p.csv" || { cat "$work/p.csv"; fail "CSV row"; }
[ -z "$(ls "$work" | grep -F p.csv.tmp-graft)" ] || fail "the temporary CSV is left behind: $(ls "$work")"

# One image per forward pass gives the same printed probabilities as batches of 4.
"$graft" predict --checkpoint "$checkpoint" --batch 1 --top 2 "$folder" >"$work/b1.out" 2>/dev/null || fail "batch 1"
cmp -s "$work/b1.out" "$work/b4.out" || { diff "$work/b1.out" "$work/b4.out" | head; fail "batch 1 and batch 4 differ"; }

# --strict: the corrupt image is an error naming it.
"$graft" predict --checkpoint "$checkpoint" --strict "$folder" >"$work/strict.out" 2>&1 && fail "--strict succeeded"
grep -q "corrupt.png" "$work/strict.out" || { cat "$work/strict.out"; fail "--strict does not name the image"; }

# A path with a comma and a quote is one quoted CSV field.
cp "$folder/class_b/img1.png" "$work/a,b\"c.png"
"$graft" predict --checkpoint "$checkpoint" --csv "$work/q.csv" "$work/a,b\"c.png" >/dev/null 2>&1 || fail "odd name"
grep -qF "\"$work/a,b\"\"c.png\",class_" "$work/q.csv" || { cat "$work/q.csv"; fail "CSV quoting"; }

# Only unreadable images: an error, not an empty success, and the CSV of the earlier run stays as it was.
before=$(md5sum <"$work/q.csv")
"$graft" predict --checkpoint "$checkpoint" --csv "$work/q.csv" "$folder/class_a/corrupt.png" >"$work/none.out" 2>&1 \
  && fail "no image read, yet success"
grep -q "none of the 1 image(s) could be read" "$work/none.out" || { cat "$work/none.out"; fail "no 'none could be read'"; }
[ "$(md5sum <"$work/q.csv")" = "$before" ] || fail "a failed run changed the CSV"

# --csv followed by an image (the CSV's name forgotten) is refused, and the image is untouched.
cp "$folder/class_b/img2.png" "$work/keep.png"
before=$(md5sum <"$work/keep.png")
"$graft" predict --checkpoint "$checkpoint" --csv "$work/keep.png" "$folder/class_b/img1.png" >"$work/csvimg.out" 2>&1 \
  && fail "--csv IMAGE accepted"
grep -q "names an image file" "$work/csvimg.out" || { cat "$work/csvimg.out"; fail "no message for --csv IMAGE"; }
[ "$(md5sum <"$work/keep.png")" = "$before" ] || fail "--csv IMAGE changed the image"
# A full disk (a file-size limit of 512 bytes, SIGXFSZ ignored; the CSV is ~1.9 KB): status 1, a message saying the
# CSV is as it was, the old CSV untouched and no temporary left.
echo old >"$work/full.csv"
( ulimit -f 1; trap '' XFSZ; exec "$graft" predict --checkpoint "$checkpoint" --top 2 --csv "$work/full.csv" \
    "$folder" ) >/dev/null 2>"$work/full.err"
status=$?
[ "$status" = 1 ] || { cat "$work/full.err"; fail "a full disk ended with status $status, not 1"; }
grep -q "predict --csv: writing .* failed: .*; '$work/full.csv' is as it was" "$work/full.err" \
  || { cat "$work/full.err"; fail "full disk message"; }
[ "$(cat "$work/full.csv")" = old ] && [ -z "$(ls "$work" | grep -F full.csv.tmp-graft)" ] \
  || fail "a full disk changed the CSV or left its temporary"

echo "ok: $readable images predicted in batches of 4 and 1 alike, corrupt.png skipped, CSV written and quoted"
