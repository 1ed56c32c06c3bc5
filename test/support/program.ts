// Building Programs by hand for tests: the ops as a scenario would resolve them.

import type { Op, Program, Step } from '../../src/scenario/program';
import { scanArg as defaultScanArg } from '../../src/scenario/program';
import type { PmScanArg } from '../../src/uapi';

export const P = 4096n;
/** 512 GiB aligned: the tables above it belong to the test alone. */
export const B = 0x100000000000n;

export function program(ops: (Op | [Op, 'may_fail'])[], kernel = '6.18.44'): Program {
  const steps: Step[] = ops.map((o, i) => {
    const [op, mayFail] = Array.isArray(o) ? [o[0], true] : [o, false];
    return { index: i + 1, op, mayFail, where: { file: 'test.yaml', line: i + 1, col: 1 } };
  });
  return { name: 'test', file: 'test.yaml', kernel, system: { swap: false, thp: 'madvise' }, steps, names: new Map() };
}

export const mmap = (addr: bigint, size: bigint, prot = 3): Op => ({ op: 'mmap', addr, size, kind: 'anon', prot });
export const write = (addr: bigint, size = P, stride = P): Op => ({ op: 'write', addr, size, stride });
export const read = (addr: bigint, size = P, stride = P): Op => ({ op: 'read', addr, size, stride });
export const uffdOpen = (features = 0xa000n): Op => ({ op: 'uffd_open', features });
export const register = (addr: bigint, size: bigint, mode = 2n): Op => ({ op: 'uffd_register', addr, size, mode });

/** A scan argument for tests: the scenario defaults, over B, reporting every category. */
export function scanArg(fields: Partial<PmScanArg>): PmScanArg {
  return defaultScanArg({ start: B, end: B, return_mask: 0x1ffn, ...fields });
}

export const scan = (fields: Partial<PmScanArg>): Op => ({ op: 'pagemap_scan', arg: scanArg(fields) });
