// Temporary machine set-up for kernel runs (`--setup-hugetlb N`, `--setup-swap SIZE`): raise the
// hugetlb pool, add a swap file. Root only. Whatever is changed is ALWAYS put back: when the
// callback returns or throws, and on SIGINT/SIGTERM/SIGHUP or process.exit() while it runs.

import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { EnvironmentError } from '../errors';

export const HUGETLB_POOLS = {
  '2M': '/proc/sys/vm/nr_hugepages',
  '1G': '/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages',
} as const;
export type HugetlbSize = keyof typeof HUGETLB_POOLS;

/** Where swap files are created: a disk filesystem (swap files cannot live on tmpfs). */
export const SWAP_DIR = '/var/tmp';

function requireRoot(what: string): void {
  if (process.platform !== 'linux') throw new EnvironmentError(`${what} needs Linux`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new EnvironmentError(`${what} changes system settings and needs root`);
  }
}

const FATAL_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Run `fn` with `restore` registered so that it runs exactly once: after `fn` settles, or
 * synchronously when the process is interrupted or exits while `fn` runs (the signal is then
 * re-raised with its default action).
 */
async function withRestore<T>(restore: () => void, fn: () => T | Promise<T>): Promise<T> {
  let restored = false;
  const restoreOnce = (): void => {
    if (restored) return;
    restored = true;
    restore();
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    try {
      restoreOnce();
    } finally {
      detach();
      process.kill(process.pid, signal);
    }
  };
  const onExit = (): void => restoreOnce();
  const detach = (): void => {
    for (const s of FATAL_SIGNALS) process.removeListener(s, onSignal);
    process.removeListener('exit', onExit);
  };
  for (const s of FATAL_SIGNALS) process.on(s, onSignal);
  process.on('exit', onExit);
  try {
    return await fn();
  } finally {
    detach();
    restoreOnce();
  }
}

function readPool(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim());
  } catch (e) {
    throw new EnvironmentError(`cannot read the hugetlb pool size ${file}: ${(e as Error).message}`);
  }
}

function writePool(file: string, pages: number): void {
  fs.writeFileSync(file, `${pages}\n`);
}

/**
 * Raise the hugetlb pool(s) by the given number of pages (a number means 2 MiB pages) while `fn`
 * runs, then lower them by what was added. Relative both ways, so that runs overlapping in time
 * (two `verify --setup-hugetlb`, a difftest) compose: each gets its pages, the last one out
 * leaves the original pool. EnvironmentError when not root or when the kernel cannot provide that
 * many pages (memory too fragmented).
 */
export async function withHugetlbPages<T>(
  pages: number | Partial<Record<HugetlbSize, number>>,
  fn: () => T | Promise<T>,
): Promise<T> {
  const want: Partial<Record<HugetlbSize, number>> = typeof pages === 'number' ? { '2M': pages } : pages;
  const sizes = (Object.keys(want) as HugetlbSize[]).filter((s) => (want[s] ?? 0) > 0);
  if (sizes.length === 0) return fn();
  requireRoot('--setup-hugetlb');

  const added = new Map<HugetlbSize, number>();
  const restore = (): void => {
    for (const [size, n] of added) {
      try {
        const file = HUGETLB_POOLS[size];
        writePool(file, Math.max(0, readPool(file) - n));
      } catch {
        // Best effort: nothing better to do on the way out.
      }
    }
  };
  return withRestore(restore, () => {
    for (const size of sizes) {
      const file = HUGETLB_POOLS[size];
      const before = readPool(file);
      const target = before + want[size]!;
      try {
        writePool(file, target);
      } catch (e) {
        throw new EnvironmentError(`cannot raise ${file} to ${target}: ${(e as Error).message}`);
      }
      const got = readPool(file);
      added.set(size, Math.max(0, got - before));
      if (got < target) {
        throw new EnvironmentError(
          `the kernel could only provide ${got - before} of ${want[size]} ${size} hugetlb pages (${file})`,
        );
      }
    }
    return fn();
  });
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error) throw new EnvironmentError(`cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new EnvironmentError(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  }
}

/**
 * Create a swap file of `size` bytes in a fresh directory under SWAP_DIR and swapon it while `fn`
 * runs; then swapoff and delete it. EnvironmentError when not root or mkswap/swapon fail.
 */
export async function withSwapFile<T>(size: number | bigint, fn: () => T | Promise<T>): Promise<T> {
  requireRoot('--setup-swap');
  const bytes = Number(size);
  const MiB = 1 << 20;
  if (!Number.isSafeInteger(bytes) || bytes < 1 * MiB) {
    throw new EnvironmentError(`--setup-swap: the swap file must be at least 1 MiB (got ${size})`);
  }
  let dir: string | undefined;
  let file: string | undefined;
  let active = false;
  const restore = (): void => {
    if (active && file) {
      spawnSync('swapoff', [file]);
      active = false;
    }
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  };
  return withRestore(restore, () => {
    dir = fs.mkdtempSync(path.join(SWAP_DIR, 'pagemap-scan-swap-'));
    file = path.join(dir, 'swapfile');
    // Written out (no holes): swapon refuses sparse files.
    const fd = fs.openSync(file, 'w', 0o600);
    try {
      const chunk = Buffer.alloc(MiB);
      for (let done = 0; done < bytes; done += MiB) {
        fs.writeSync(fd, chunk, 0, Math.min(MiB, bytes - done));
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    run('mkswap', [file]);
    run('swapon', [file]);
    active = true;
    return fn();
  });
}

/** Whether a swap device is active (a line besides the header in /proc/swaps). */
export function swapActive(): boolean | undefined {
  try {
    return fs.readFileSync('/proc/swaps', 'utf8').trim().split('\n').length > 1;
  } catch {
    return undefined;
  }
}

/** Where the harness creates the files of disk-file mappings (FILE_DIR in replay.c). */
export const FILE_DIR = '/var/tmp';

/**
 * read_ahead_kb of the disk FILE_DIR is on (its backing_dev_info: the whole disk's queue for a
 * partition), or undefined when it cannot be found.
 */
export function fileDirReadAheadKb(): number | undefined {
  const file = readAheadFile();
  return file === undefined ? undefined : Number(fs.readFileSync(file, 'utf8').trim());
}

function readAheadFile(): string | undefined {
  try {
    const dev = fs.statSync(FILE_DIR).dev;
    const major = (dev & 0xfff00) >> 8;
    const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    for (const queue of ['queue', '../queue']) {
      const file = `/sys/dev/block/${major}:${minor}/${queue}/read_ahead_kb`;
      if (fs.existsSync(file)) return file;
    }
  } catch {
    // No such device in sysfs (a network or virtual filesystem): unknown.
  }
  return undefined;
}

/**
 * Run `fn` with read_ahead_kb of FILE_DIR's disk set to `kb` (root), put back afterwards whatever
 * happens. Files opened meanwhile take it as their readahead size (file_ra_state_init()).
 */
export async function withReadAheadKb<T>(kb: number, fn: () => T | Promise<T>): Promise<T> {
  const before = fileDirReadAheadKb();
  if (before === kb) return fn();
  requireRoot('--setup-read-ahead');
  const file = readAheadFile();
  if (file === undefined || before === undefined) throw new EnvironmentError(`cannot find the read_ahead_kb of the disk under ${FILE_DIR}`);
  return withSetting(file, `${kb}\n`, `${before}\n`, fn);
}

/** Write `value` to the setting `file` while `fn` runs, then `before`, whatever happens. */
async function withSetting<T>(file: string, value: string, before: string, fn: () => T | Promise<T>): Promise<T> {
  const restore = (): void => {
    try {
      fs.writeFileSync(file, before);
    } catch {
      // Best effort: nothing better to do on the way out.
    }
  };
  return withRestore(restore, () => {
    try {
      fs.writeFileSync(file, value);
    } catch (e) {
      throw new EnvironmentError(`cannot set ${file} to ${value.trim()}: ${(e as Error).message}`);
    }
    return fn();
  });
}

export const THP_ENABLED = '/sys/kernel/mm/transparent_hugepage/enabled';
export type ThpMode = 'always' | 'madvise' | 'never';

/** The system's THP mode, e.g. "madvise" from "always [madvise] never". */
export function currentThpMode(): ThpMode | undefined {
  try {
    return fs.readFileSync(THP_ENABLED, 'utf8').match(/\[(\w+)\]/)?.[1] as ThpMode | undefined;
  } catch {
    return undefined;
  }
}

/** Run `fn` with the THP mode set to `mode` (root), put back afterwards whatever happens. */
export async function withThpMode<T>(mode: ThpMode, fn: () => T | Promise<T>): Promise<T> {
  const before = currentThpMode();
  if (before === mode) return fn();
  requireRoot('--setup-thp');
  if (before === undefined) throw new EnvironmentError(`cannot read ${THP_ENABLED}: no transparent huge pages`);
  return withSetting(THP_ENABLED, mode, before, fn);
}
