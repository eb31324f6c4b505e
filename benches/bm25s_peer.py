#!/usr/bin/env python3
"""bm25s peer for benches/bm25_peers.sh: index build and search throughput.

usage: python bm25s_peer.py DATASET_DIR [--split test] [--hits 1000] [--repeat 3] [--threads N]
  DATASET_DIR: BEIR layout, uncompressed (corpus.jsonl, queries.jsonl, qrels/<split>.tsv);
  benches/bm25_peers.sh decompresses the repository's data/<name>/ for it.

Setup as bm25s' README recommends for BEIR: text = title + " " + text, bm25s.tokenize with English
stop words and the PyStemmer (Snowball) English stemmer, method "lucene", k1 = 0.9, b = 0.4.
Timed like quarry's bench: build = tokenize + index (corpus already in memory); search = tokenize
queries + retrieve `hits` per query, sequential (n_threads=1) and with --threads workers; best of
--repeat warm runs. Prints one JSON object.

Venv: benches/bm25_peers.sh makes it (.venv-bm25s in the checkout: pip install bm25s PyStemmer).
"""
import argparse
import json
import os
import time

import bm25s
import Stemmer

ap = argparse.ArgumentParser()
ap.add_argument('dataset')
ap.add_argument('--split', default='test')
ap.add_argument('--hits', type=int, default=1000)
ap.add_argument('--repeat', type=int, default=3)
ap.add_argument('--threads', type=int, default=os.cpu_count())
args = ap.parse_args()

docs = []
with open(os.path.join(args.dataset, 'corpus.jsonl'), encoding='utf-8') as f:
    for line in f:
        if line.strip():
            d = json.loads(line)
            docs.append((d['_id'], (d.get('title') or '') + ' ' + (d.get('text') or '')))
qids = set()
with open(os.path.join(args.dataset, 'qrels', f'{args.split}.tsv'), encoding='utf-8') as f:
    next(f)
    for line in f:
        if line.strip():
            qids.add(line.split('\t')[0])
queries = []
with open(os.path.join(args.dataset, 'queries.jsonl'), encoding='utf-8') as f:
    for line in f:
        if line.strip():
            q = json.loads(line)
            if q['_id'] in qids:
                queries.append(q['text'])
texts = [t for _, t in docs]
stemmer = Stemmer.Stemmer('english')

build_s = float('inf')
retriever = None
for _ in range(max(1, args.repeat)):
    t = time.perf_counter()
    corpus_tokens = bm25s.tokenize(texts, stopwords='en', stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25(method='lucene', k1=0.9, b=0.4)
    retriever.index(corpus_tokens, show_progress=False)
    build_s = min(build_s, time.perf_counter() - t)

k = min(args.hits, len(docs))


def search(n_threads):
    t = time.perf_counter()
    query_tokens = bm25s.tokenize(queries, stopwords='en', stemmer=stemmer, show_progress=False)
    results, scores = retriever.retrieve(query_tokens, k=k, show_progress=False, n_threads=n_threads)
    return time.perf_counter() - t, results.shape


seq_s = min(search(1)[0] for _ in range(max(1, args.repeat) + 1))
batch_s = min(search(args.threads)[0] for _ in range(max(1, args.repeat) + 1))
print(json.dumps({
    'tool': 'bm25s', 'version': bm25s.__version__, 'dataset': args.dataset, 'docs': len(docs),
    'queries': len(queries), 'hits': k, 'threads': args.threads,
    'build_s': build_s, 'build_docs_per_s': len(docs) / build_s,
    'search_sequential_s': seq_s, 'search_sequential_qps': len(queries) / seq_s,
    'search_batch_s': batch_s, 'search_batch_qps': len(queries) / batch_s,
}))
