// exportC: the standalone C program builds with -Wall -Werror and prints what the replay harness
// prints for the same Program (on the real kernel).

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { type Op, type Program, type Step, VEC_ADDR } from '../src/scenario/program';
import { PM_SCAN_CHECK_WPASYNC, PM_SCAN_WP_MATCHING, type PmScanArg, UFFD_FEATURES } from '../src/uapi';
import { exportC, findCompiler, parseReplayOutput, replayRuntime, runOnKernel } from '../src/kernel';
import { readReplaySource } from '../src/kernel/build';

const P = 4096n;
const B = 0x100000000000n;

function program(specs: (Op | [Op, { mayFail: true }])[]): Program {
  const steps: Step[] = specs.map((spec, i) => {
    const [op, extra] = Array.isArray(spec) ? spec : [spec, undefined];
    return { index: i + 1, op, mayFail: extra?.mayFail ?? false, where: { file: 'export.yaml', line: i + 2, col: 5 } };
  });
  return {
    name: 'export-*/test',
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
  arg: {
    size: 96n,
    flags: 0n,
    start: B,
    end: B + 1024n * P,
    walk_end: 0n,
    vec: VEC_ADDR,
    vec_len: 100n,
    max_pages: 0n,
    category_inverted: 0n,
    category_mask: 0n,
    category_anyof_mask: 0n,
    return_mask: 0x1ffn,
    ...arg,
  },
});

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagemap-scan-export-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function buildAndRun(source: string, extraFlags: string[] = []): { stdout: string; status: number | null } {
  const cc = findCompiler().command;
  const c = path.join(dir, 'scenario.c');
  const exe = path.join(dir, 'scenario');
  fs.writeFileSync(c, source);
  const build = spawnSync(cc, ['-Wall', '-Werror', ...extraFlags, '-o', exe, c], { encoding: 'utf8' });
  expect(build.stderr).toBe('');
  expect(build.status).toBe(0);
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 60_000 });
  return { stdout: r.stdout, status: r.status };
}

const stepLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('{"step"') || l.startsWith('{"end"'));

const describeKernel = process.platform === 'linux' ? describe : describe.skip;

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

  test('the runtime is replay.c up to its stdin driver', () => {
    const runtime = replayRuntime();
    expect(readReplaySource().startsWith(runtime.trimEnd())).toBe(true);
    expect(runtime).toContain('bool do_pagemap_scan(');
    expect(runtime).not.toContain('int main(');
  });

  test('compiles with -Wall -Werror and prints the same results as the replay harness', async () => {
    const source = exportC(prog);
    expect(source).toContain('/* step 1: mmap "heap" (export.yaml:2) */');
    expect(source).toContain('.flags = 0x3ULL /* WP_MATCHING|CHECK_WPASYNC */');
    expect(source).not.toMatch(/exported \*\/ on/);

    const exported = buildAndRun(source);
    buildAndRun(source, ['-std=c11', '-Wextra', '-O2']);
    expect(exported.status).toBe(0);

    const replayed = await runOnKernel(prog);
    expect(replayed.stopped).toEqual({ step: 22, reason: 'failed' });
    expect(replayed.notReached).toEqual([23]);
    const fromExport = parseReplayOutput(exported.stdout, prog.steps, { code: 0, signal: null, timedOut: false });
    expect(fromExport.results).toEqual(replayed.results);
    expect(fromExport.stopped).toEqual(replayed.stopped);

    // Byte for byte, apart from the harness line (pids, ASLR).
    const again = buildAndRun(source);
    expect(stepLines(again.stdout)).toEqual(stepLines(exported.stdout));
    expect(stepLines(exported.stdout).length).toBe(23); // 22 steps + the end line
  });
});
