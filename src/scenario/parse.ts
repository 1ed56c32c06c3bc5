// YAML text → a plain value (maps as null-prototype objects, integers as bigint), keeping the
// parsed document so that any path into the value maps back to file:line:col.
// Resource limits (size, nesting, aliases) are checked before anything recursive runs.

import { CST, Composer, Lexer, LineCounter, Parser, isAlias, isMap, isPair, isScalar, isSeq, visit } from 'yaml';
import type { Document, Node } from 'yaml';
import { InputError } from '../errors';
import type { Where } from './program';

export const LIMITS = {
  /** Characters of text (loadScenarioFile checks the same bound in bytes). */
  maxChars: 10 * 1024 * 1024,
  /** Nesting of collections; a real scenario needs about 7. */
  maxDepth: 32,
  /** Alias dereferences in the whole document (yaml's maxAliasCount applies to toJS only, unused). */
  maxAliases: 100,
  /** Nodes of the plain value, aliases expanded (the largest bundled scenario has about 5,000). */
  maxNodes: 50_000,
};

export type Path = readonly (string | number)[];

/** A parsed scenario text: its plain value and the way back to positions. */
export class Source {
  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
    private readonly doc: Document.Parsed,
    readonly value: unknown,
  ) {}

  /** Offset of the node at `path` (of its key if `key`), or of the nearest ancestor that exists. */
  offset(path: Path, key = false): number {
    let node: unknown = this.doc.contents;
    let keyNode: Node | undefined;
    for (let i = 0; i < path.length; i++) {
      node = deref(node, this.doc);
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && p.key.value === path[i]);
        if (!pair) break;
        if (last && key) return rangeStart(pair.key as Node);
        keyNode = pair.key as Node;
        if (!pair.value) break;
        node = pair.value;
      } else if (isSeq(node) && typeof path[i] === 'number' && (path[i] as number) < node.items.length) {
        keyNode = undefined;
        node = node.items[path[i] as number];
      } else break;
    }
    // `key:` with nothing after it: point at the key rather than at the end of the line.
    if (keyNode && isScalar(node) && node.value === null && !node.source) return rangeStart(keyNode);
    return rangeStart(node as Node);
  }

  where(path: Path, key = false): Where {
    return this.whereAt(this.offset(path, key));
  }

  whereAt(offset: number): Where {
    return { file: this.file, ...position(this.lines, offset) };
  }
}

function deref(node: unknown, doc: Document.Parsed): unknown {
  return isAlias(node) ? (node.resolve(doc) ?? node) : node;
}

function rangeStart(node: Node | null | undefined): number {
  return node?.range?.[0] ?? 0;
}

function position(lines: LineCounter, offset: number): { line: number; col: number } {
  const { line, col } = lines.linePos(offset);
  return { line, col };
}

/** A problem found while reading YAML, at a text offset. */
class YamlProblem extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/** Parse one YAML document. Throws InputError for anything that is not one sane document. */
export function parseYaml(input: string, file: string): Source {
  const text = input.startsWith('\uFEFF') ? input.slice(1) : input;
  const lines = new LineCounter();
  const fail = (offset: number, detail: string): never => {
    throw new InputError({ file, ...position(lines, offset) }, undefined, detail);
  };
  if (text.length > LIMITS.maxChars)
    throw new InputError({ file }, undefined, `too large (${text.length} characters; the limit is ${LIMITS.maxChars})`);
  const ctl = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]/.exec(text);
  if (ctl) {
    const code = ctl[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase();
    throw new InputError({ file, ...textPosition(text, ctl.index) }, undefined, `binary data (control character U+${code}); a scenario is YAML text`);
  }

  const tokens = tokenize(text, lines);
  if ('tooDeep' in tokens) return fail(tokens.tooDeep, `nested more than ${LIMITS.maxDepth} levels deep`);
  if ('tooMany' in tokens) return fail(tokens.tooMany, `more than ${LIMITS.maxNodes} values`);
  const deep = tooDeep(tokens);
  if (deep !== undefined) fail(deep, `nested more than ${LIMITS.maxDepth} levels deep`);

  // Duplicate keys are found by toPlain(): yaml's own check (uniqueKeys) is quadratic in the
  // number of keys of a mapping, which a hostile file turns into minutes.
  const composer = new Composer({
    schema: 'core',
    intAsBigInt: true,
    uniqueKeys: false,
    prettyErrors: false,
  });
  const docs = Array.from(composer.compose(tokens));
  if (docs.length === 0) fail(0, 'empty scenario; expected a mapping with at least `steps:`');

  // The earliest YAML error or warning of any document; then "more than one document".
  const problems = docs.flatMap((d) => [...d.errors, ...d.warnings]).sort((a, b) => a.pos[0] - b.pos[0]);
  if (problems.length > 0) fail(problems[0].pos[0], yamlMessage(problems[0], docs));
  if (docs.length > 1) fail(docs[1].range[0], 'a second YAML document; a scenario file holds exactly one');

  const doc = docs[0];
  const top = doc.contents;
  if (top === null || (isScalar(top) && top.value === null && !top.source))
    fail(doc.range[0], 'empty scenario; expected a mapping with at least `steps:`');
  if (!isMap(top)) fail(rangeStart(top as Node), 'expected a mapping (name:, steps:, ...) at the top level');

  let value: unknown;
  try {
    value = toPlain(doc);
  } catch (e) {
    if (e instanceof YamlProblem) fail(e.offset, e.message);
    throw e;
  }
  return new Source(file, lines, doc, value);
}

/** The first line of a YAML error, made a little friendlier for the common cases. */
function yamlMessage(problem: { code: string; message: string; pos: [number, number] }, docs: Document.Parsed[]): string {
  const first = problem.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  if (problem.code === 'DUPLICATE_KEY') {
    let key: unknown;
    for (const doc of docs)
      visit(doc, {
        Pair(_, pair) {
          if (isScalar(pair.key) && pair.key.range?.[0] === problem.pos[0]) key = pair.key.value;
        },
      });
    return key === undefined ? 'duplicate key' : `duplicate key ${JSON.stringify(String(key))}`;
  }
  if (problem.code === 'TAG_RESOLVE_FAILED') return `${first} (scenarios use plain YAML values)`;
  return `YAML: ${printable(first.length > 120 ? first.slice(0, 120) + '...' : first)}`;
}

/** yaml's messages quote the source: escape what could break the line or drive a terminal. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** 1-based line and column of `offset`, counting `\n` line ends (before any parsing). */
function textPosition(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
  return { line, col: offset - (text.lastIndexOf('\n', offset - 1) + 1) + 1 };
}

/**
 * Lexemes that start a value (a scalar, a flow collection, an alias) or introduce one (a key, a
 * `-`): at most two per value, so more than 2 * maxNodes of them means too many values, found
 * before the (slow) parser has gone through a file of several megabytes.
 */
const VALUE_LEXEMES = new Set(['scalar', 'seq-item-ind', 'flow-map-start', 'flow-seq-start', 'alias']);

/**
 * Lex and parse to CST tokens, as Parser.parse() does, but stop at the first flow collection
 * nested too deep (the parser is slow on thousands of nested `[`, and a scenario needs few) and
 * as soon as there are certainly too many values.
 */
function tokenize(text: string, lines: LineCounter): CST.Token[] | { tooDeep: number } | { tooMany: number } {
  const parser = new Parser(lines.addNewLine);
  lines.addNewLine(0);
  const tokens: CST.Token[] = [];
  let flow = 0;
  let values = 0;
  for (const lexeme of new Lexer().lex(text)) {
    const type = CST.tokenType(lexeme);
    if (type !== null && VALUE_LEXEMES.has(type) && ++values > 2 * LIMITS.maxNodes) return { tooMany: parser.offset };
    if (type === 'flow-seq-start' || type === 'flow-map-start') {
      if (++flow > LIMITS.maxDepth) return { tooDeep: parser.offset };
    } else if ((type === 'flow-seq-end' || type === 'flow-map-end') && flow > 0) flow--;
    for (const token of parser.next(lexeme)) tokens.push(token);
  }
  for (const token of parser.end()) tokens.push(token);
  return tokens;
}

/** The offset of the first collection nested deeper than the limit, walking the CST iteratively. */
function tooDeep(tokens: CST.Token[]): number | undefined {
  const stack: [CST.Token, number][] = tokens.map((t) => [t, 0]);
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!;
    if (token.type === 'document') {
      if (token.value) stack.push([token.value, depth]);
    } else if (token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection') {
      if (depth + 1 > LIMITS.maxDepth) return token.offset;
      for (const item of token.items) {
        if ('key' in item && item.key) stack.push([item.key, depth + 1]);
        if (item.value) stack.push([item.value, depth + 1]);
      }
    }
  }
  return undefined;
}

/**
 * The document as plain data. Maps become null-prototype objects (so `__proto__` is just a key),
 * keys must be strings, and alias expansion is bounded (alias bombs, self-references).
 */
function toPlain(doc: Document.Parsed): unknown {
  let aliases = 0;
  let nodes = 0;
  const expanding = new Set<unknown>();

  const convert = (node: unknown, depth: number): unknown => {
    if (++nodes > LIMITS.maxNodes) throw new YamlProblem(rangeStart(node as Node), `more than ${LIMITS.maxNodes} values`);
    if (depth > LIMITS.maxDepth)
      throw new YamlProblem(rangeStart(node as Node), `nested more than ${LIMITS.maxDepth} levels deep`);
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) throw new YamlProblem(rangeStart(node), `unknown alias *${node.source}`);
      if (++aliases > LIMITS.maxAliases)
        throw new YamlProblem(rangeStart(node), `more than ${LIMITS.maxAliases} aliases`);
      if (expanding.has(target)) throw new YamlProblem(rangeStart(node), `alias *${node.source} refers to itself`);
      expanding.add(target);
      const v = convert(target, depth);
      expanding.delete(target);
      return v;
    }
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || ['string', 'bigint', 'number', 'boolean'].includes(typeof v)) return v;
      throw new YamlProblem(rangeStart(node), 'unsupported YAML value');
    }
    if (isSeq(node)) return node.items.map((item) => convert(item, depth + 1));
    if (isMap(node)) {
      const out: Record<string, unknown> = Object.create(null);
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key) || typeof pair.key.value !== 'string') {
          const k = pair.key;
          const got = isScalar(k) ? String(k.value) : isSeq(k) ? 'a list' : isMap(k) ? 'a mapping' : 'an alias';
          throw new YamlProblem(rangeStart(k as Node), `expected a string key, got ${got}`);
        }
        if (Object.hasOwn(out, pair.key.value)) throw new YamlProblem(rangeStart(pair.key), `duplicate key ${JSON.stringify(pair.key.value)}`);
        Object.defineProperty(out, pair.key.value, {
          value: convert(pair.value, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    if (node === null || node === undefined) return null;
    throw new YamlProblem(rangeStart(node as Node), 'unsupported YAML node');
  };
  return convert(doc.contents, 0);
}
