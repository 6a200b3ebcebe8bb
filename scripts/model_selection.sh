#!/usr/bin/env bash
# Chooses the shipped model's settings without looking at the test week: the
# handbook's validation protocol (chapter 5) shifts the chapter-3 split back by
# two weeks: train 2018-07-11..07-17, validate 2018-07-25..07-31, same 7-day
# label delay. Every setting in the grid is trained and backtested there; the
# winner (best Card Precision@100, then Average Precision) is then trained on
# the chapter-3 training week. Writes a Markdown table to stdout.
#
#   scripts/model_selection.sh [HANDBOOK_DIR] > models/selection.md
set -euo pipefail
data="${1:-${FRAUDSTREAM_HANDBOOK:-../shared/data/handbook}}/transactions.csv.gz"
bin=./target/release/fraudstream
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --quiet

echo "| algorithm | trees | depth | learning rate | AUC | AP | CP@100 |"
echo "|---|---|---|---|---|---|---|"
for algorithm in gbt ensemble; do
  for depth in 3 4 5; do
    for trees_lr in 400:0.03 800:0.03 400:0.08; do
      trees=${trees_lr%%:*}; lr=${trees_lr##*:}
      model="$tmp/m.json"
      "$bin" train --input "$data" --train-from 2018-07-11 --train-to 2018-07-17 \
        --algorithm "$algorithm" --trees "$trees" --max-depth "$depth" --learning-rate "$lr" \
        --out "$model" >/dev/null 2>&1
      "$bin" backtest --input "$data" --from 2018-07-25 --to 2018-07-31 --model "$model" \
        --report-dir "$tmp/report" >/dev/null 2>&1
      python3 - "$tmp/report/summary.json" "$algorithm" "$trees" "$depth" "$lr" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
m = s
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | "
      f"{m['auc']:.4f} | {m['average_precision']:.4f} | {m['card_precision_at_100']:.4f} |")
PY
    done
  done
done
