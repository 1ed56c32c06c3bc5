// --setup-hugetlb / --setup-swap helpers: they change the machine only while the callback runs
// and always put it back (also on error and on SIGINT). Root only; hugetlb vectors of §16.

import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { type Op, type Program, type Step, scanArg } from '../src/scenario/program';
import {
  PAGE_IS_HUGE,
  PAGE_IS_PRESENT,
  PAGE_IS_SWAPPED,
  PAGE_IS_WPALLOWED,
  PAGE_IS_WRITTEN,
  PM_SCAN_WP_MATCHING,
  type PmScanArg,
  UFFD_FEATURES,
} from '../src/uapi';
import { HUGETLB_POOLS, hugetlbPagesNeeded, runOnKernel, withHugetlbPages, withSwapFile } from '../src/kernel';
import type { KernelRun } from '../src/kernel';

const P = 4096n;
const B = 0x100000000000n;
const HP = 512n; // pages per 2 MiB

function program(specs: Op[], system: Partial<Program['system']> = {}): Program {
  const steps: Step[] = specs.map((op, i) => ({ index: i + 1, op, mayFail: false, where: { file: 't.yaml', line: i + 1, col: 1 } }));
  return {
    name: 'setup',
    file: 't.yaml',
    kernel: '6.18.44',
    system: { swap: false, thp: 'madvise', ...system },
    steps,
    names: new Map(),
  };
}

const scan = (arg: Partial<PmScanArg> = {}): Op => ({
  op: 'pagemap_scan',
  arg: scanArg({ start: B, end: B + 4n * HP * P, vec_len: 100n, return_mask: 0x1ffn, ...arg }),
});
const regions = (run: KernelRun, step: number) =>
  run.results
    .find((r) => r.step === step)!
    .regions!.map((r) => [Number((r.start - B) / P), Number((r.end - B) / P), r.categories]);
const result = (run: KernelRun, step: number) => run.results.find((r) => r.step === step)!;

const pool = (): number => Number(fs.readFileSync(HUGETLB_POOLS['2M'], 'utf8'));
const swaps = (): string => fs.readFileSync('/proc/swaps', 'utf8');

const isRoot = process.platform === 'linux' && process.getuid?.() === 0;
const describeRoot = isRoot ? describe : describe.skip;

describeRoot('machine set-up for kernel runs', () => {
  const hugetlbSetup = [
    { op: 'mmap', addr: B, size: 4n * HP * P, kind: 'hugetlb', prot: 3 },
    { op: 'uffd_open', features: BigInt(UFFD_FEATURES.WP_ASYNC | UFFD_FEATURES.WP_UNPOPULATED) },
    { op: 'uffd_register', addr: B, size: 4n * HP * P, mode: 2n },
    { op: 'write', addr: B, size: 4n * HP * P, stride: HP * P },
  ] satisfies Op[];

  test('withHugetlbPages raises the pool while it runs (§16 #16-#18) and restores it', async () => {
    const before = pool();
    const prog = program([
      ...hugetlbSetup,
      scan({ flags: BigInt(PM_SCAN_WP_MATCHING), max_pages: 100n }), // #16
      scan({ flags: BigInt(PM_SCAN_WP_MATCHING), start: B + 5n * P, end: B + 7n * P }), // #17
      scan({ flags: BigInt(PM_SCAN_WP_MATCHING), vec_len: 0n }), // #18
      scan(),
    ]);
    expect(hugetlbPagesNeeded(prog)).toEqual({ '2M': 4, '1G': 0 });

    const run = await withHugetlbPages(4, async () => {
      expect(pool()).toBe(before + 4);
      return runOnKernel(prog);
    });
    expect(pool()).toBe(before);

    expect(run.stopped).toBeUndefined();
    expect(run.warnings).toEqual([]);
    expect(result(run, 5)).toMatchObject({ ret: 0n, errno: null, walk_end: B + 3n * HP * P, regions: [] });
    expect(result(run, 6)).toMatchObject({ ret: 0n, errno: null, walk_end: B + 5n * P, regions: [] });
    expect(result(run, 7)).toMatchObject({ ret: 0n, errno: null, walk_end: B + 4n * HP * P });
    expect(regions(run, 8)).toEqual([[0, 2048, PAGE_IS_WPALLOWED | PAGE_IS_PRESENT | PAGE_IS_HUGE]]);
  });

  test('without pages in the pool a hugetlb mmap fails with ENOMEM', async () => {
    const run = await runOnKernel(program(hugetlbSetup.slice(0, 1)));
    if (pool() === 0) {
      expect(result(run, 1)).toMatchObject({ ret: -1n, errno: 'ENOMEM' });
      expect(run.warnings.join('\n')).toMatch(/needs 4 free 2M hugetlb page/);
    }
  });

  test('withHugetlbPages restores the pool when the callback throws', async () => {
    const before = pool();
    await expect(
      withHugetlbPages({ '2M': 2 }, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(pool()).toBe(before);
  });

  test('withHugetlbPages restores the pool on SIGINT', async () => {
    const before = pool();
    const script = `
      require('ts-node').register({ transpileOnly: true, compilerOptions: { module: 'commonjs' } });
      const { withHugetlbPages } = require(${JSON.stringify(path.join(__dirname, '../src/kernel/setup.ts'))});
      withHugetlbPages(3, () => new Promise(() => { console.log('ready'); setInterval(() => {}, 1000); }));
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exit = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve) => child.stdout.on('data', (b: Buffer) => b.toString().includes('ready') && resolve()));
    expect(pool()).toBe(before + 3);
    child.kill('SIGINT');
    expect(await exit).toBe('SIGINT');
    expect(pool()).toBe(before);
  });

  test('withSwapFile adds a swap file only while it runs; pageout then swaps anonymous pages', async () => {
    const prog = program(
      [
        { op: 'mmap', addr: B, size: 16n * P, kind: 'anon', prot: 3 },
        { op: 'write', addr: B, size: 8n * P, stride: P },
        { op: 'madvise', addr: B, size: 16n * P, advice: 'pageout' },
        scan({ end: B + 16n * P }),
      ],
      { swap: true },
    );
    let file = '';
    const run = await withSwapFile(16n << 20n, async () => {
      const lines = swaps().trim().split('\n');
      expect(lines.length).toBeGreaterThan(1);
      file = lines[lines.length - 1]!.split(/\s+/)[0]!;
      expect(file).toMatch(/pagemap-scan-swap-/);
      return runOnKernel(prog);
    });
    expect(swaps()).not.toContain(file);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
    expect(run.warnings).toEqual([]);
    expect(regions(run, 4)).toEqual([
      [0, 8, PAGE_IS_SWAPPED | PAGE_IS_WRITTEN],
      [8, 16, PAGE_IS_WRITTEN],
    ]);
  });
});
