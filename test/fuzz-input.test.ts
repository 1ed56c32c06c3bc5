// Fuzzing the input side: random and mutated scenario files (the bundled scenarios/*.yaml, bent
// byte by byte and token by token) and random struct pm_scan_arg values. For every input:
// no exception other than a located InputError, no hang, and either a result or the error:
//   - parseScenario() returns a Program or throws InputError "FILE[:LINE[:COL]]: ...", one line;
//   - simulate() of a Program returns (its scans well formed), whatever the numbers in it;
//   - now and then the whole CLI (`run`, `run --json`) on the file: exit 0 or 2, never 70;
//   - random pm_scan_arg values on a small populated address space: engine == reference, and the
//     scan invariants hold.
//
// Environment: PAGEMAP_FUZZ_RUNS=100000 (default: a slice for CI), PAGEMAP_FUZZ_SEED=N.
// A failure names the seed and iteration and writes the input to a file.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError } from '../src/errors';
import { parseScenario } from '../src/scenario';
import { VEC_ADDR, type Op, type Program, type Step, type StepResult } from '../src/scenario/program';
import { simulate } from '../src/simulate';
import type { PmScanArg } from '../src/uapi';
import { cli } from './support/cli';
import { compareRuns, scanInvariants } from './reference/compare';
import { programToYaml } from './reference/yaml';

const RUNS = Number(process.env.PAGEMAP_FUZZ_RUNS ?? 3000);
const SEED = Number(process.env.PAGEMAP_FUZZ_SEED ?? 20_251_121);
/** A single input taking longer than this (ms) counts as a hang. */
const SLOW_MS = Number(process.env.PAGEMAP_FUZZ_SLOW_MS ?? 3000);

/** xorshift32: small, seeded, reproducible. */
class Rng {
  constructor(private s: number) {
    this.s = s >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.s = x >>> 0);
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

const SCENARIOS_DIR = path.join(__dirname, '..', 'scenarios');
const SOURCES = fs
  .readdirSync(SCENARIOS_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => fs.readFileSync(path.join(SCENARIOS_DIR, f), 'utf8'));

const WORDS = [
  // YAML syntax
  '[', ']', '{', '}', ':', ': ', ', ', '- ', '  ', '\n', '\t', '#', '&a ', '*a', '!!str ', '!!int ', '!foo ', '? ', '|', '>', "'", '"', '---\n', '...', '~', 'null', 'true', 'no', '<<: ', '\\', '\u0000', '\u00ff', '\ufeff', '\u2028',
  // numbers
  '0', '-1', '1.5', '0x', '0x10000000000000000', '18446744073709551615', '18446744073709551616', '99999999999999999999999', '1e3', '.inf', '-0', '4095', '0o17',
  // units and names
  'p', 'K', 'M', 'G', 'T', '+', '-', 'm+1p', 'heap+64p', 'heap-1p', '__proto__', 'constructor', 'toString', 'hasOwnProperty',
  // scenario vocabulary
  'mmap', 'munmap', 'mprotect', 'madvise', 'read', 'write', 'uffd_open', 'uffd_close', 'uffd_register', 'uffd_unregister', 'uffd_writeprotect', 'clear_refs', 'pagemap_scan',
  'addr', 'size', 'kind', 'prot', 'name', 'stride', 'advice', 'features', 'mode', 'wp', 'value', 'start', 'end', 'flags', 'vec_len', 'max_pages', 'category_inverted', 'category_mask', 'category_anyof_mask', 'return_mask', 'vec', 'may_fail', 'expect', 'ret', 'errno', 'walk_end', 'regions', 'ok', 'steps', 'system', 'kernel', 'swap', 'thp', 'hugetlb_pages',
  'anon', 'shared-anon', 'hugetlb', 'hugetlb-1g', 'pfnmap', 'file-private', 'memfd-shared', 'rw', 'none', 'rwx', 'dontneed', 'guard-install', 'populate-write', 'pageout', 'collapse', 'hugepage',
  'WRITTEN', 'PRESENT', 'WPALLOWED', 'SWAPPED', 'GUARD', 'HUGE', 'WP_MATCHING', 'CHECK_WPASYNC', 'WP_ASYNC', 'WP_UNPOPULATED', 'MISSING', 'WP', 'EINVAL', 'SIGSEGV', '6.7', '6.18.0', '6.18.44+softdirty', 'always', 'on',
];
const NUMBERS = ['0', '1', '-1', '4096', '1.5', '0x0', '0xffffffffffffffff', '0x10000000000000000', '18446744073709551615', '18446744073709551616', '1p', '0p', '99999999999p', '1T', '17179869184G', '0x7ffffffff000', '0x800000000000'];

/** One random change to the text. */
function mutate(text: string, rng: Rng): string {
  const at = rng.int(text.length + 1);
  const lines = text.split('\n');
  switch (rng.int(10)) {
    case 0: // a random character
      return text.slice(0, at) + String.fromCharCode(32 + rng.int(95)) + text.slice(at + 1);
    case 1:
    case 2: // a word of the vocabulary
      return text.slice(0, at) + rng.pick(WORDS) + text.slice(at);
    case 3: // delete a span
      return text.slice(0, at) + text.slice(at + 1 + rng.int(20));
    case 4: {
      // duplicate a line
      const i = rng.int(lines.length);
      lines.splice(i, 0, lines[i]);
      return lines.join('\n');
    }
    case 5: {
      // swap two lines
      const i = rng.int(lines.length);
      const j = rng.int(lines.length);
      [lines[i], lines[j]] = [lines[j], lines[i]];
      return lines.join('\n');
    }
    case 6: {
      // a number becomes a special one
      const numbers = [...text.matchAll(/\b(0x[0-9a-f]+|\d+p?)\b/gi)];
      if (!numbers.length) return text;
      const m = rng.pick(numbers);
      return text.slice(0, m.index) + rng.pick(NUMBERS) + text.slice(m.index! + m[0].length);
    }
    case 7: {
      // a word becomes another
      const words = [...text.matchAll(/[A-Za-z_][A-Za-z0-9_-]*/g)];
      if (!words.length) return text;
      const m = rng.pick(words);
      return text.slice(0, m.index) + rng.pick(WORDS) + text.slice(m.index! + m[0].length);
    }
    case 8: // cut the file short
      return text.slice(0, at);
    default: {
      // re-indent a line
      const i = rng.int(lines.length);
      lines[i] = ' '.repeat(rng.int(9)) + lines[i].trimStart();
      return lines.join('\n');
    }
  }
}

/** Token soup: random words of the vocabulary. */
function randomText(rng: Rng): string {
  let t = rng.chance(0.7) ? 'steps:\n' : '';
  const n = 1 + rng.int(60);
  for (let i = 0; i < n; i++) t += rng.pick(WORDS) + (rng.chance(0.3) ? ' ' : '');
  return t;
}

const INPUT_ERROR = /^fuzz\.yaml(:\d+(:\d+)?)?: \S/;
/** Characters a message must never carry raw: they break the line, hide text or drive a terminal. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/;

/** Work a Program would make the engine do one step at a time; huge strides are not run. */
function tooExpensive(program: Program): boolean {
  return program.steps.some((s) => (s.op.op === 'read' || s.op.op === 'write') && s.op.stride > 4096n && s.op.size / s.op.stride > 1n << 20n);
}

/** THPs or hugetlb pages: back-outs may leave equal neighbours in a scan (spec §14 Q10). */
function hasHugePages(program: Program): boolean {
  return (
    program.system.thp === 'always' ||
    program.steps.some((s) => (s.op.op === 'madvise' && (s.op.advice === 'hugepage' || s.op.advice === 'collapse')) || (s.op.op === 'mmap' && s.op.kind.startsWith('hugetlb')))
  );
}

function checkScans(program: Program, results: StepResult[]): string[] {
  const bad: string[] = [];
  const huge = hasHugePages(program);
  for (const r of results) {
    if (r.op !== 'pagemap_scan') continue;
    const op = program.steps[r.step - 1].op;
    if (op.op !== 'pagemap_scan') continue;
    for (const b of scanInvariants(op.arg, r, huge)) bad.push(`step ${r.step}: ${b}`);
  }
  return bad;
}

interface Failure {
  iteration: number;
  input: string;
  problem: string;
}

function save(kind: string, f: Failure): string {
  const file = path.join(os.tmpdir(), `pagemap-scan-fuzz-${kind}-${SEED}-${f.iteration}.yaml`);
  try {
    fs.writeFileSync(file, f.input);
  } catch {
    return '(could not save it)';
  }
  return file;
}

/** One scenario text through parseScenario and simulate; the problem, if any. */
function checkText(text: string): { problem?: string; program?: Program } {
  let program: Program;
  try {
    program = parseScenario(text, 'fuzz.yaml');
  } catch (e) {
    if (!(e instanceof InputError)) return { problem: `parseScenario threw ${e instanceof Error ? e.stack : String(e)}` };
    if (!INPUT_ERROR.test(e.message) || UNSAFE.test(e.message) || /undefined|NaN|\[object /.test(e.message)) {
      return { problem: `badly formed InputError: ${JSON.stringify(e.message)}` };
    }
    return {};
  }
  if (tooExpensive(program)) return { program };
  try {
    const sim = simulate(program);
    const bad = checkScans(program, sim.results);
    if (bad.length) return { problem: `scan invariants: ${bad.join('; ')}`, program };
  } catch (e) {
    return { problem: `simulate threw ${e instanceof Error ? e.stack : String(e)}`, program };
  }
  return { program };
}

test(`${RUNS} mutated and random scenario files: a Program or a located InputError, never a crash (seed ${SEED})`, async () => {
  const rng = new Rng(SEED);
  const stats = { parsed: 0, rejected: 0, expensive: 0, cli: 0 };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pms-fuzz-'));
  try {
    for (let i = 0; i < RUNS; i++) {
      let text: string;
      if (rng.chance(0.1)) text = randomText(rng);
      else {
        text = rng.pick(SOURCES);
        for (let k = 1 + rng.int(4); k > 0; k--) text = mutate(text, rng);
      }
      const t0 = performance.now();
      const { problem, program } = checkText(text);
      const ms = performance.now() - t0;
      if (!problem && ms > SLOW_MS) {
        throw new Error(`iteration ${i}: ${ms.toFixed(0)} ms (a hang?); input saved to ${save('slow', { iteration: i, input: text, problem: '' })}`);
      }
      if (problem) throw new Error(`iteration ${i} (seed ${SEED}): ${problem}\ninput saved to ${save('input', { iteration: i, input: text, problem })}`);
      if (program) stats.parsed++;
      else stats.rejected++;
      if (program && tooExpensive(program)) stats.expensive++;
      // The whole CLI now and then: formatting and JSON of odd values.
      if (i % 25 === 0 && !(program && tooExpensive(program))) {
        const f = path.join(dir, 'fuzz.yaml');
        fs.writeFileSync(f, text);
        for (const args of [['run', f], ['run', '--json', f]]) {
          const r = await cli(args);
          if (r.code !== 0 && r.code !== 2) {
            throw new Error(`iteration ${i}: ${args.join(' ')} exited ${r.code}: ${r.err}\ninput saved to ${save('cli', { iteration: i, input: text, problem: r.err })}`);
          }
          if (args[1] === '--json' && r.code === 0) JSON.parse(r.out);
        }
        stats.cli++;
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Both sides of the parser must be exercised.
  expect(stats.parsed).toBeGreaterThan(RUNS * 0.1);
  expect(stats.rejected).toBeGreaterThan(RUNS * 0.1);
}, 600_000);

// ---- random struct pm_scan_arg values -------------------------------------------------------

const B = 0x100000000000n;
const P = 4096n;
const U64 = (1n << 64n) - 1n;

/** A small address space with one of everything anonymous memory can show. */
const SETUP: Op[] = [
  { op: 'mmap', addr: B, size: 1100n * P, kind: 'anon', prot: 3 },
  { op: 'mmap', addr: B + 1200n * P, size: 16n * P, kind: 'anon', prot: 3 },
  { op: 'uffd_open', features: 0xa000n },
  { op: 'uffd_register', addr: B + 512n * P, size: 588n * P, mode: 2n },
  { op: 'write', addr: B, size: 1024n * P, stride: 2n * P },
  { op: 'read', addr: B + 1n * P, size: 8n * P, stride: 2n * P },
  { op: 'madvise', addr: B + 20n * P, size: 3n * P, advice: 'guard-install' },
  { op: 'pagemap_scan', arg: { size: 96n, flags: 1n, start: B + 600n * P, end: B + 700n * P, walk_end: 0n, vec: 0n, vec_len: 0n, max_pages: 0n, category_inverted: 0n, category_mask: 0n, category_anyof_mask: 0n, return_mask: 0n } },
  { op: 'write', addr: B + 650n * P, size: 3n * P, stride: P },
];

/** A u64 field: mostly meaningful values, sometimes anything. */
function field(rng: Rng, meaningful: bigint[]): bigint {
  if (rng.chance(0.7)) return rng.pick(meaningful);
  if (rng.chance(0.5)) return rng.u64();
  return rng.pick([0n, 1n, U64, U64 - 1n, 1n << 63n, 1n << 32n, 0x7ffffffff000n, 0x800000000000n]);
}

function randomArg(rng: Rng): PmScanArg {
  const addr = () => B + BigInt(rng.int(1300)) * P + (rng.chance(0.05) ? BigInt(1 + rng.int(4095)) : 0n);
  const cats = () => (rng.chance(0.5) ? 0n : BigInt(rng.int(0x200)) & BigInt(rng.pick([1, 2, 8, 16, 32, 256, 0x1ff, 0x13])));
  const start = field(rng, [addr(), addr(), B]);
  return {
    size: rng.chance(0.97) ? 96n : field(rng, [0n, 88n, 104n]),
    flags: field(rng, [0n, 1n, 2n, 3n]),
    start,
    end: field(rng, [addr(), start, start + BigInt(rng.int(2000)) * P, start - P]) & U64,
    walk_end: 0n,
    vec: rng.chance(0.9) ? VEC_ADDR : 0n,
    vec_len: field(rng, [0n, 1n, 2n, 7n, 511n, 512n, 513n, 1024n]),
    max_pages: field(rng, [0n, 1n, 3n, 512n, 513n, 4000n]),
    category_inverted: field(rng, [0n, 0n, cats()]),
    category_mask: field(rng, [0n, cats(), 2n]),
    category_anyof_mask: field(rng, [0n, 0n, cats()]),
    return_mask: field(rng, [0x1ffn, 2n, 0n, cats()]),
  };
}

test(`${RUNS} random pm_scan_arg sets: engine == reference, and every result well formed (seed ${SEED})`, () => {
  const rng = new Rng(SEED ^ 0x9e3779b9);
  const perProgram = 8;
  for (let i = 0; i < RUNS; i += perProgram) {
    const ops: Op[] = [...SETUP];
    for (let k = 0; k < perProgram; k++) ops.push({ op: 'pagemap_scan', arg: randomArg(rng) });
    const steps: Step[] = ops.map((op, j) => ({ index: j + 1, op, mayFail: false, where: { file: 'fuzz.yaml', line: j + 1, col: 1 } }));
    const program: Program = { name: 'fuzz', file: 'fuzz.yaml', kernel: '6.18.44', system: { swap: false, thp: 'madvise' }, steps, names: new Map() };
    const t0 = performance.now();
    const cmp = compareRuns(program, [B, B + 2048n * P]);
    const problems = [...(cmp.difference ? [cmp.difference] : []), ...checkScans(program, cmp.engine.results)];
    if (performance.now() - t0 > SLOW_MS) problems.push(`took ${(performance.now() - t0).toFixed(0)} ms`);
    if (problems.length) {
      const yaml = programToYaml(program, [`fuzz-input.test.ts, seed ${SEED}, iteration ${i}`, ...problems]);
      throw new Error(`iteration ${i}: ${problems.join('\n')}\ninput saved to ${save('args', { iteration: i, input: yaml, problem: '' })}`);
    }
    // Now and then, the same program through the scenario format.
    if (i % (perProgram * 50) === 0) expect(simulate(parseScenario(programToYaml(program), 'fuzz.yaml')).results).toEqual(cmp.engine.results);
  }
}, 600_000);
