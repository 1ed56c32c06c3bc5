// `--setup-hugetlb N` and `--setup-swap SIZE`: machine set-up for kernel runs, only when asked,
// and always put back afterwards (src/kernel/setup.ts).

import { InputError } from '../errors';
import { hugetlbPagesNeeded, withHugetlbPages, withReadAheadKb, withSwapFile, withThpMode } from '../kernel';
import { DEFAULT_READ_AHEAD_KB, type Program } from '../scenario/program';
import { parseSize } from '../scenario/values';

export interface SetupOptions {
  setupHugetlb?: string;
  setupSwap?: string;
  /** Set the THP mode the scenarios' `system.thp` asks for. */
  setupThp?: boolean;
  /** Set the disk's read_ahead_kb to the scenarios' `system.read_ahead_kb`. */
  setupReadAhead?: boolean;
}

/** --setup-hugetlb N and --setup-swap SIZE, restored afterwards whatever happens. */
export async function withSetup<T>(opts: SetupOptions, programs: Program[], fn: () => Promise<T>): Promise<T> {
  let run = fn;
  if (opts.setupSwap !== undefined) {
    const size = parseOption('--setup-swap', () => parseSize(opts.setupSwap, 4096n));
    const inner = run;
    run = () => withSwapFile(size, inner);
  }
  if (opts.setupHugetlb !== undefined) {
    const n = parseOption('--setup-hugetlb', () => {
      if (!/^\d+$/.test(opts.setupHugetlb!)) throw new Error('expected a number of 2 MiB pages');
      return Number(opts.setupHugetlb);
    });
    const needed = programs.map(hugetlbPagesNeeded);
    const gb = Math.max(0, ...needed.map((x) => x['1G']));
    const inner = run;
    run = () => withHugetlbPages({ '2M': n, '1G': gb }, inner);
  }
  if (opts.setupThp) {
    const modes = [...new Set(programs.map((p) => p.system.thp))];
    if (modes.length > 1) throw new InputError({ file: '--setup-thp' }, undefined, `the scenarios ask for different THP modes (${modes.join(', ')}): run them separately`);
    const inner = run;
    run = () => withThpMode(modes[0], inner);
  }
  if (opts.setupReadAhead) {
    const sizes = [...new Set(programs.map((p) => p.system.readAheadKb ?? DEFAULT_READ_AHEAD_KB))];
    if (sizes.length > 1) throw new InputError({ file: '--setup-read-ahead' }, undefined, `the scenarios ask for different read_ahead_kb (${sizes.join(', ')}): run them separately`);
    const inner = run;
    run = () => withReadAheadKb(sizes[0], inner);
  }
  return run();
}

function parseOption<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new InputError({ file: name }, undefined, e instanceof Error ? e.message : String(e));
  }
}

