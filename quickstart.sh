#!/usr/bin/env bash
# One-command quick-start on the bundled corpus and vocab (CPU is fine):
#   bash quickstart.sh [DATA_DIR]
# 1. copies the bundled uncased vocab to DATA_DIR/vocab.txt,
# 2. builds DATA_DIR/pretrain_tfrecords from data/corpus/ if missing,
# 3. pre-trains a debug-size ELECTRA (3 layers, hidden 144) for a few hundred steps,
# 4. evaluates it and writes DATA_DIR/models/quickstart/results/unsup_results.txt.
set -euo pipefail
cd "$(dirname "$0")"
DATA_DIR="${1:-quickstart_data}"
MODEL=quickstart
STEPS="${QUICKSTART_STEPS:-300}"
mkdir -p "$DATA_DIR"
[ -f "$DATA_DIR/vocab.txt" ] || cp data/vocab/uncased_vocab.txt "$DATA_DIR/vocab.txt"
if [ ! -f "$DATA_DIR/pretrain_tfrecords/pretrain_data.tfrecord-0-of-1000" ]; then
  python3 build_pretraining_dataset.py --corpus-dir data/corpus --vocab-file "$DATA_DIR/vocab.txt" \
    --output-dir "$DATA_DIR/pretrain_tfrecords" --seed 0
fi
HPARAMS="{\"debug\": true, \"num_train_steps\": $STEPS, \"num_warmup_steps\": 30, \"learning_rate\": 0.001, \"save_checkpoints_steps\": 100, \"iterations_per_loop\": 20, \"seed\": 0"
python3 run_pretraining.py --data-dir "$DATA_DIR" --model-name "$MODEL" --hparams "$HPARAMS}"
python3 run_pretraining.py --data-dir "$DATA_DIR" --model-name "$MODEL" \
  --hparams "$HPARAMS, \"do_train\": false, \"do_eval\": true, \"num_eval_steps\": 20}"
echo "Results: $DATA_DIR/models/$MODEL/results/unsup_results.txt"
