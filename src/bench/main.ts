// `npm run bench`: the engine's cost must follow the number of distinct page runs, never the
// number of pages or vec_len. Each line is a ratio of two timings taken in this one run, so the
// numbers mean the same on a fast or a slow machine.

import { scanArg, type Op, type Program } from '../scenario/program';
import type { PmScanArg } from '../uapi';
import { simulate } from '../simulate';

const P = 4096n;
const B = 0x100000000000n;
const U64_MAX = (1n << 64n) - 1n;

function program(ops: Op[]): Program {
  return {
    name: 'bench',
    file: 'bench',
    kernel: '6.18.44',
    system: { swap: false, thp: 'madvise' },
    names: new Map(),
    steps: ops.map((op, i) => ({ index: i + 1, op, mayFail: false, where: { file: 'bench', line: i + 1, col: 1 } })),
  };
}

const scan = (end: bigint, extra: Partial<PmScanArg> = {}): Op => ({
  op: 'pagemap_scan',
  arg: scanArg({ start: B, end, return_mask: 0x1ffn, ...extra }),
});

/** A mapping of `bytes` with `runs` written islands spread over it, then `scans` scans. */
function workload(bytes: bigint, runs: number, scanOp: Op, scans = 20): Program {
  const ops: Op[] = [{ op: 'mmap', addr: B, size: bytes, kind: 'anon', prot: 3 }];
  const step = bytes / BigInt(runs);
  for (let i = 0n; i < BigInt(runs); i++) ops.push({ op: 'write', addr: B + i * step, size: P, stride: P });
  for (let i = 0; i < scans; i++) ops.push(scanOp);
  return ops.length ? program(ops) : program([]);
}

/** Median of several timings of simulate(p), in milliseconds. */
function time(p: Program, repeat = 7): number {
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t = process.hrtime.bigint();
    const r = simulate(p);
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (r.stopped) throw new Error(`benchmark scenario stopped: ${r.stopped.message}`);
  }
  return samples.sort((a, b) => a - b)[Math.floor(repeat / 2)];
}

function report(label: string, a: number, b: number, bound: string): void {
  const ratio = b / a;
  console.log(`${label.padEnd(58)} ${a.toFixed(2).padStart(8)} ms ${b.toFixed(2).padStart(8)} ms  ratio ${ratio.toFixed(2).padStart(6)}  (${bound})`);
}

function main(): void {
  const GiB = 1n << 30n;
  const TiB = 1n << 40n;
  console.log('pagemap-scan engine benchmark (median of 7; each workload: mmap, 200 written runs, 20 full scans)');
  time(workload(GiB, 200, scan(B + GiB))); // warm up the JIT

  const small = time(workload(GiB, 200, scan(B + GiB)));
  const huge = time(workload(100n * TiB, 200, scan(B + 100n * TiB)));
  report('same runs, 1 GiB -> 100 TiB mapping (pages x 102400)', small, huge, 'should stay near 1');

  const vecSmall = time(workload(GiB, 200, scan(B + GiB, { vec_len: 512n })));
  const vecHuge = time(workload(GiB, 200, scan(B + GiB, { vec: 0n, vec_len: 0n, max_pages: U64_MAX })));
  report('vec_len 512 -> no array, max_pages 2^64-1', vecSmall, vecHuge, 'should stay near 1 or below');

  const fewRuns = time(workload(TiB, 100, scan(B + TiB)));
  const manyRuns = time(workload(TiB, 1000, scan(B + TiB)));
  report('100 -> 1000 written runs in 1 TiB (runs x 10)', fewRuns, manyRuns, 'grows with runs: about 10 or less');
}

main();
