// exportC: the standalone C program builds with -Wall -Werror and prints, as one JSON document in
// the contract shape of `run --json` (scenario-format.md), exactly what the replay harness
// reports for the same Program on this machine's kernel (converted with scenarioToJson).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { EnvironmentError } from '../src/errors';
import { type Op, type Program, type Step, VEC_ADDR, scanArg } from '../src/scenario/program';
import { loadScenarioFile } from '../src/scenario';
import { scenarioToJson, type JsonScenario } from '../src/scenario/json';
import { PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING, type PmScanArg, UFFD_FEATURES } from '../src/uapi';
import { exportC, findCompiler, probeKernel, replayRuntime, runOnKernel } from '../src/kernel';
import { cString } from '../src/kernel/export-c';
import { readReplaySource } from '../src/kernel/build';

const P = 4096n;
const B = 0x100000000000n;
const SCENARIOS = path.join(__dirname, '..', 'scenarios');

function program(specs: (Op | [Op, { mayFail: true }])[]): Program {
  const steps: Step[] = specs.map((spec, i) => {
    const [op, extra] = Array.isArray(spec) ? spec : [spec, undefined];
    return { index: i + 1, op, mayFail: extra?.mayFail ?? false, where: { file: 'export.yaml', line: i + 2, col: 5 } };
  });
  return {
    name: 'export-*/test "quoted" \\ ??/ é',
    description: 'exported */ on purpose\nsecond line',
    file: 'export.yaml',
    kernel: '6.18.44',
    system: { swap: false, thp: 'madvise' },
    steps,
    names: new Map([['heap', B]]),
  };
}

const scan = (arg: Partial<PmScanArg> = {}): Op => ({
  op: 'pagemap_scan',
  arg: scanArg({ start: B, end: B + 1024n * P, vec_len: 100n, return_mask: 0x1ffn, ...arg }),
});

let dir: string;
let unavailable: string | undefined;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagemap-scan-export-'));
  try {
    findCompiler();
    await probeKernel();
  } catch (e) {
    if (!(e instanceof EnvironmentError)) throw e;
    unavailable = e.message;
    console.warn(`SKIPPED: running exported C programs on this kernel: ${e.message}`);
  }
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let builds = 0;
/** Compile with `cc -Wall -Werror` (plus extraFlags) and run; the compiler must say nothing. */
function buildAndRun(source: string, extraFlags: string[] = []): { stdout: string; stderr: string; status: number | null } {
  const cc = findCompiler().command;
  const c = path.join(dir, `scenario-${++builds}.c`);
  const exe = path.join(dir, `scenario-${builds}`);
  fs.writeFileSync(c, source);
  const build = spawnSync(cc, ['-Wall', '-Werror', ...extraFlags, '-o', exe, c], { encoding: 'utf8' });
  expect(build.stderr).toBe('');
  expect(build.status).toBe(0);
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

/** Export, build, run: the parsed document, checked against the replay harness's run. */
async function exportedVsReplayed(prog: Program): Promise<{ doc: JsonScenario; expected: JsonScenario; status: number | null }> {
  const out = buildAndRun(exportC(prog));
  const doc = JSON.parse(out.stdout) as JsonScenario;
  const replayed = await runOnKernel(prog);
  const expected = scenarioToJson(prog.name, replayed.harness.kernel, replayed.results);
  return { doc, expected, status: out.status };
}

const describeKernel = process.platform === 'linux' ? describe : describe.skip;

test('the runtime is replay.c up to its stdin driver', () => {
  const runtime = replayRuntime();
  expect(readReplaySource().startsWith(runtime.trimEnd())).toBe(true);
  expect(runtime).toContain('bool do_pagemap_scan(');
  expect(runtime).toContain('OUTPUT_CONTRACT');
  expect(runtime).not.toContain('int main(');
});

test('C string literals escape quotes, backslashes, trigraphs and non-ASCII bytes', () => {
  expect(cString('a"b\\c??/d\n')).toBe('"a\\"b\\\\c\\?\\?/d\\012"');
  expect(cString('é')).toBe('"\\303\\251"');
});

describeKernel('exportC', () => {
  const features = BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED);
  const prog = program([
    { op: 'mmap', addr: B, size: 1024n * P, kind: 'anon', prot: 3, name: 'heap' },
    { op: 'write', addr: B, size: 4n * P, stride: 3n * P },
    { op: 'read', addr: B + 5n * P, size: P, stride: P },
    scan(),
    scan({ category_mask: 8n, max_pages: 1n }),
    scan({ size: 88n }),
    [{ op: 'mmap', addr: B + 4n * P, size: P, kind: 'anon', prot: 3 }, { mayFail: true }],
    { op: 'mmap', addr: B + 2048n * P, size: 32n * P, kind: 'memfd-shared', prot: 1 },
    [{ op: 'write', addr: B + 2048n * P, size: 2n * P, stride: P }, { mayFail: true }],
    { op: 'uffd_open', features },
    { op: 'uffd_register', addr: B, size: 16n * P, mode: 2n },
    { op: 'madvise', addr: B + 512n * P, size: 512n * P, advice: 'dontneed' },
    { op: 'mprotect', addr: B + 1000n * P, size: 4n * P, prot: 1 },
    scan({ flags: BigInt(PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC), end: B + 64n * P }),
    scan({ end: B + 2080n * P, vec: 0n, vec_len: 0n }),
    { op: 'uffd_writeprotect', addr: B, size: 16n * P, wp: false },
    { op: 'uffd_unregister', addr: B, size: 16n * P },
    { op: 'clear_refs', value: 1n },
    { op: 'uffd_close' },
    { op: 'munmap', addr: B, size: 1024n * P },
    scan({ end: B + 2080n * P }),
    { op: 'write', addr: B, size: P, stride: P }, // SIGSEGV: stops here
    scan(),
  ]);

  test('compiles with -Wall -Werror and prints what the replay harness reports, as run --json does', async () => {
    if (unavailable) return;
    const source = exportC(prog);
    expect(source).toContain('/* step 1: mmap "heap" (export.yaml:2) */');
    expect(source).toContain('.flags = 0x3ULL /* WP_MATCHING|CHECK_WPASYNC */');
    expect(source).not.toMatch(/exported \*\/ on/);
    buildAndRun(source, ['-std=c11', '-Wextra', '-O2']);

    const { doc, expected, status } = await exportedVsReplayed(prog);
    expect(status).toBe(2); // a step stopped the scenario
    expect(doc.scenario).toBe(prog.name);
    expect(doc.kernel).toBe(expected.kernel);
    expect(doc.steps).toEqual(expected.steps);
    expect(doc.steps).toHaveLength(22);
    expect(doc.stopped).toEqual({
      step: 22,
      message: 'write failed with SIGSEGV at 0x100000000000 (add may_fail: true to make it a result)',
    });
    // The contract's own spellings: hex strings, names, null walk_end on a validation error.
    expect(doc.steps[3]!.regions![0]).toEqual({ start: '0x100000000000', end: '0x100000001000', categories: ['WRITTEN', 'PRESENT'] });
    expect(doc.steps[5]).toEqual({ step: 6, op: 'pagemap_scan', ret: -1, errno: 'EINVAL', walk_end: null, regions: [] });
    expect(doc.steps[6]).toEqual({ step: 7, op: 'mmap', ret: -1, errno: 'EEXIST' });
  });

  test('prints the same document every time', () => {
    if (unavailable) return;
    const source = exportC(prog);
    expect(buildAndRun(source).stdout).toBe(buildAndRun(source).stdout);
  });

  // Bundled scenarios: one with an EPERM scan, one with a SIGSEGV touch (may_fail), one with
  // max_pages/walk_end cuts.
  test.each(['check-wpasync-eperm.yaml', 'guard-markers.yaml', 'max-pages-walk-end.yaml'])(
    '%s: the exported program prints the steps the replay harness reports',
    async (file) => {
      if (unavailable) return;
      const scenario = loadScenarioFile(path.join(SCENARIOS, file));
      const { doc, expected, status } = await exportedVsReplayed(scenario);
      expect(status).toBe(0);
      expect(doc.scenario).toBe(scenario.name);
      expect(doc.kernel).toBe(expected.kernel);
      expect(doc.stopped).toBeUndefined();
      expect(doc.steps).toEqual(expected.steps);
      expect(doc.steps).toHaveLength(scenario.steps.length);
      if (file === 'check-wpasync-eperm.yaml') {
        const eperm = doc.steps.filter((s) => s.errno === 'EPERM');
        expect(eperm.length).toBeGreaterThan(0);
        expect(eperm[0]!.regions!.length).toBeGreaterThan(0); // regions copied out before the EPERM
      }
      if (file === 'guard-markers.yaml') expect(doc.steps.some((s) => s.op === 'read' && s.errno === 'SIGSEGV')).toBe(true);
    },
  );
});
