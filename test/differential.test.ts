// Seeded random differential testing: bounded slices of random programs (anonymous memory;
// every kind with THP and swap), each run on this machine's kernel and on the emulator, must
// agree step by step (steps the emulator does not model are skipped and counted). A disagreement
// fails the test with its seed, the scenario file written for it and the command that replays
// it. Without kernel support, one loud line says what was skipped and why.
//
// Also: programToYaml() round-trips through parseScenario(), and the generator is deterministic
// and stays within its contract (no kernel needed for those).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EnvironmentError } from '../src/errors';
import { formatReport, runDifferential, type DifferentialReport } from '../src/fuzz/differential';
import { FUZZ_KINDS, randomProgram, WINDOW_END, WINDOW_START, type RandomProgramOptions } from '../src/fuzz/random-program';
import { programToYaml, withExpectations } from '../src/fuzz/yaml';
import { parseScenario } from '../src/scenario';
import type { Program } from '../src/scenario/program';
import { VEC_ADDR } from '../src/scenario/program';
import { simulate } from '../src/simulate';

/** At least this many seeds are run in each slice, whatever the time... */
const MIN_SEEDS = 200;
/** ...and no more than this many, nor new seeds after `seconds` (50-150 seeds/s with 2 jobs). */
const MAX_SEEDS = 3000;

/**
 * The fixed slices: seeds base, base+1, ... of each generator. The second draws every kind
 * (hugetlb pools and a swap file are set up for it, and put back) with THP steps.
 */
const SLICES: readonly { name: string; base: number; seconds: number; generator: RandomProgramOptions }[] = [
  { name: 'anonymous memory', base: 0x5eed0000, seconds: 35, generator: {} },
  { name: 'every kind, THP, swap', base: 0x5eed8000, seconds: 45, generator: { kinds: FUZZ_KINDS, thp: true, swap: true } },
];

/** A Program's meaning, without the `where` of its steps (which differ between sources). */
function meaning(p: Program): unknown {
  return {
    name: p.name,
    description: p.description,
    kernel: p.kernel,
    system: p.system,
    names: [...p.names],
    steps: p.steps.map((s) => ({
      index: s.index,
      op: s.op,
      mayFail: s.mayFail,
      expect: s.expect && { ...s.expect, where: undefined },
    })),
  };
}

describe('programToYaml', () => {
  test('round-trips random programs through parseScenario', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const program = randomProgram(seed);
      const text = programToYaml(program);
      const parsed = parseScenario(text, `${program.name}.yaml`);
      expect(meaning(parsed)).toEqual(meaning(program));
    }
  });

  test('round-trips expectations (the emulator results of random programs)', () => {
    for (let seed = 1000; seed < 1100; seed++) {
      const program = randomProgram(seed);
      const recorded = withExpectations(program, simulate(program).results);
      const parsed = parseScenario(programToYaml(recorded, ['a comment', 'another one']), 'x.yaml');
      expect(meaning(parsed)).toEqual(meaning(recorded));
    }
  });

  test('writes names, pages, bit lists and invalid values readably', () => {
    const program = randomProgram(7);
    program.steps.push({
      index: program.steps.length + 1,
      op: {
        op: 'pagemap_scan',
        arg: {
          size: 88n,
          flags: 0x5n,
          start: BigInt(WINDOW_START) + 1n,
          end: 0xffffffffffffffffn,
          walk_end: 0n,
          vec: 0n,
          vec_len: 3n,
          max_pages: 1n << 63n,
          category_inverted: 0x200n,
          category_mask: 0x102n,
          category_anyof_mask: 0n,
          return_mask: 0n,
        },
      },
      mayFail: false,
      where: { file: '', line: 0, col: 0 },
    });
    const text = programToYaml(program);
    expect(text).toMatch(/^ {2}- mmap: \{addr: 0x[0-9a-f]+, size: \w+, kind: anon, prot: \w+, name: m1\}$/m);
    expect(text).toContain('flags: [WP_MATCHING, 0x4]');
    expect(text).toContain('category_inverted: [0x200]');
    expect(text).toContain('category_mask: [WRITTEN, GUARD]');
    expect(text).toContain('return_mask: []');
    expect(text).toContain('vec: null');
    expect(text).toContain('size: 88');
    expect(meaning(parseScenario(text, 'x.yaml'))).toEqual(meaning(program));
  });
});

describe('randomProgram', () => {
  test.each([
    ['anonymous memory', {}],
    ['every kind, THP', { kinds: FUZZ_KINDS, thp: true }],
  ] as const)('is deterministic and stays in its window (%s)', (_, opts) => {
    for (let seed = 0; seed < 1000; seed++) {
      const a = randomProgram(seed, opts);
      expect(meaning(randomProgram(seed, opts))).toEqual(meaning(a));
      expect(a.steps.length).toBeGreaterThan(1);
      for (const s of a.steps) {
        expect(s.mayFail).toBe(s.op.op !== 'pagemap_scan');
        const op = s.op;
        if ('addr' in op) {
          expect(op.addr).toBeGreaterThanOrEqual(BigInt(WINDOW_START));
          expect(op.addr + op.size).toBeLessThanOrEqual(BigInt(WINDOW_END));
        }
        if (op.op === 'mmap') expect('kinds' in opts ? FUZZ_KINDS : ['anon']).toContain(op.kind);
        if (op.op === 'pagemap_scan') {
          expect([VEC_ADDR, 0n]).toContain(op.arg.vec);
          expect(op.arg.walk_end).toBe(0n);
          // A scan that gets past validation walks inside the window only.
          const valid = op.arg.start % 4096n === 0n && op.arg.end >= op.arg.start && op.arg.end <= 0x7ffffffff000n;
          if (valid) {
            expect(op.arg.start).toBeGreaterThanOrEqual(BigInt(WINDOW_START));
            expect(op.arg.end).toBeLessThanOrEqual(BigInt(WINDOW_END));
          }
        }
      }
    }
  });

  test('different seeds give different programs', () => {
    const texts = new Set(Array.from({ length: 50 }, (_, i) => programToYaml(randomProgram(i)).replace(/^(name|description):.*$/gm, '')));
    expect(texts.size).toBe(50);
  });
});

describe.each(SLICES)('differential: random programs, kernel vs emulator ($name)', ({ base, seconds, generator }) => {
  let report: DifferentialReport | undefined;
  let unavailable: string | undefined;
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagemap-scan-difftest-'));

  beforeAll(async () => {
    try {
      report = await runDifferential({
        seed: base,
        count: MAX_SEEDS,
        minCount: MIN_SEEDS,
        seconds,
        concurrency: 2,
        outDir,
        generator,
      });
    } catch (e) {
      if (!(e instanceof EnvironmentError)) throw e;
      unavailable = e.message;
      console.warn(`SKIPPED: differential testing of random programs against the kernel: ${e.message}`);
    }
  }, (seconds + 120) * 1000);

  afterAll(() => {
    // Keep the scenario files of disagreements for replaying; remove an empty directory.
    if (fs.existsSync(outDir) && fs.readdirSync(outDir).length === 0) fs.rmdirSync(outDir);
  });

  test(`at least ${MIN_SEEDS} seeds from 0x${base.toString(16)} agree with the kernel`, () => {
    if (unavailable) return;
    const r = report!;
    const problems = [
      ...r.disagreements.map(
        (d) =>
          `seed ${d.seed}: step ${d.step} ${d.op} differs in ${d.fields.join(', ')}\n` +
          `    scenario: ${d.file}\n    replay:   ${d.replay}`,
      ),
      ...r.unreproduced.map((u) => `seed ${u.seed}: the kernel could not run it (${u.reason})\n    scenario: ${u.file}`),
    ];
    if (problems.length) {
      const shown = problems.slice(0, 40);
      if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more in ${r.outDir}`);
      throw new Error(
        `${problems.length} of ${r.seedsRun} random programs disagree:\n${shown.join('\n')}\n\n${formatReport(r).slice(0, 2).join('\n')}`,
      );
    }
    expect(r.seedsRun).toBeGreaterThanOrEqual(MIN_SEEDS);
    // A seed whose kernel answers change from run to run (background work) is no verdict.
    expect(r.clean + r.flaky.length).toBe(r.seedsRun);
    console.log(formatReport(r).join('\n'));
  });
});
