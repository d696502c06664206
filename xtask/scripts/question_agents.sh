#!/usr/bin/env bash
# Issue 16's measurements of the question and answer agents on this CPU (docs/benchmarks.md,
# "kailin-question and kailin-answer"): both agents fine-tuned on a BioASQ slice, question
# quality on held-out BioASQ batches for the base model and both agents, the agents' overlap,
# generation throughput on 200 BC5CDR abstracts, answer throughput (local; llama.cpp's server
# when $KAILIN_LLAMACPP_PYTHON names a Python with llama-cpp-python[server]).
#
#   cargo build --release -p kailin-cli && cargo xtask fetch-models
#   bash xtask/scripts/question_agents.sh [WORK_DIR]     # ~1 h on 2 cores
set -euo pipefail
K=${KAILIN:-target/release/kailin}
DATA=${KAILIN_DATA:-../shared/data}
M=${SMOLLM2:-$HOME/.cache/kailin/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
W=${1:-target/question-agents}
mkdir -p "$W"
export KAILIN_BIOASQ="$DATA/bioasq"
# Abstracts: BC5CDR (not PubMedQA, the target model's evaluation set): 100 for the domain
# agent's continued pre-training, the next 200 for the throughput run.
"$K" data convert --input "$DATA/bc5cdr/CDR_TrainingSet.PubTator.txt" --to documents --out "$W/bc5.jsonl"
head -100 "$W/bc5.jsonl" > "$W/bc5_100.jsonl"
sed -n 101,300p "$W/bc5.jsonl" > "$W/bc5_200.jsonl"
T="--limit 240 --eval-limit 16 --max-document-chars 600 --lora-rank 16 --lr 2e-4 --batch-size 4 --max-len 384 --seed 13"
/usr/bin/time -v "$K" question train --base "$M" --out "$W/general" $T 2> "$W/general.err" > "$W/general.out"
/usr/bin/time -v "$K" question train --base "$M" --out "$W/domain" --domain-cpt "$W/bc5_100.jsonl" $T 2> "$W/domain.err" > "$W/domain.out"
head -100 "$W/general/data/held_out_documents.jsonl" > "$W/held100.jsonl"
# The gold questions of the 100 documents asked about (same order as the documents).
head -100 "$W/general/data/held_out_questions.jsonl" > "$W/gold100.jsonl"
G="$W/gold100.jsonl"
for agent in base general domain; do
  if [ "$agent" = base ]; then MM="$M"; else MM="$W/$agent"; fi
  "$K" question generate --model "$MM" --documents "$W/held100.jsonl" --out "$W/q_$agent.jsonl" --n 1 --temperature 0 \
    --max-document-chars 600 --agent "$agent" --stats "$W/stats_$agent.json" 2> "$W/gen_$agent.err"
  "$K" question score --questions "$W/q_$agent.jsonl" --gold "$G" > "$W/score_$agent.json"
done
"$K" question score --questions "$W/q_general.jsonl" --other "$W/q_domain.jsonl" > "$W/diversity.json"
"$K" question generate --model "$W/general" --documents "$W/bc5_200.jsonl" --out "$W/q_tp.jsonl" --n 1 --temperature 0 \
  --max-document-chars 600 --stats "$W/stats_tp.json" 2> "$W/gen_tp.err"
# Sampled, as the pipeline generates: 2 per document, the first 50 documents.
head -50 "$W/held100.jsonl" > "$W/held50.jsonl"
for agent in general domain; do
  "$K" question generate --model "$W/$agent" --documents "$W/held50.jsonl" --out "$W/qs_$agent.jsonl" --n 2 --temperature 0.7 \
    --seed 1 --max-document-chars 600 --agent "$agent" --stats "$W/stats_s_$agent.json" 2> "$W/gen_s_$agent.err"
done
"$K" question score --questions "$W/qs_general.jsonl" --other "$W/qs_domain.jsonl" > "$W/diversity_sampled.json"
# 16 held-out questions with their snippets (first 600 characters) as context, answered locally.
python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
docs = {json.loads(l)["id"]: json.loads(l) for l in open(f"{w}/held100.jsonl")}
with open(f"{w}/cpt16.jsonl", "w") as out:
    for i, line in enumerate(open(f"{w}/general/data/held_out_questions.jsonl")):
        if i >= 16:
            break
        q = json.loads(line)
        d = docs[q["doc_id"]]
        out.write(json.dumps({"id": q["id"], "question": q["text"],
                              "context": {"doc_ids": [d["id"]], "text": d["text"][:600]},
                              "provenance": {"agent": "measure"}}) + "\n")
PY
/usr/bin/time -v "$K" answer --input "$W/cpt16.jsonl" --out "$W/sft16.jsonl" --model "$M" --max-tokens 128 --batch-size 8 \
  2> "$W/answer_local.err"
# The same through llama.cpp's server, where llama-cpp-python[server] is installed.
if [ -n "${KAILIN_LLAMACPP_PYTHON:-}" ]; then
  "$KAILIN_LLAMACPP_PYTHON" -m llama_cpp.server --host 127.0.0.1 --port 18089 --n_ctx 2048 --n_threads 2 --model "$M" \
    > "$W/llamacpp.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do curl -s 127.0.0.1:18089/v1/models > /dev/null && break; sleep 1; done
  for c in 1 2; do
    rm -rf "$W/sft16_llamacpp$c.jsonl" "$W/sft16_llamacpp$c.jsonl.cache"
    "$K" answer --input "$W/cpt16.jsonl" --out "$W/sft16_llamacpp$c.jsonl" --endpoint http://127.0.0.1:18089/v1 \
      --model smollm2 --max-tokens 128 --concurrency "$c" 2> "$W/answer_llamacpp$c.err"
  done
  kill "$server"
fi
for f in "$W"/score_*.json "$W"/diversity.json "$W"/stats_*.json; do echo "== $f"; cat "$f"; done
