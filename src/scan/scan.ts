// do_pagemap_scan(): validate, walk in passes of at most one bounce buffer, copy out, and
// decide the return value and walk_end (fs/proc/task_mmu.c).

import type { ErrnoName, PageRegion, PmScanArg } from '../uapi';
import type { MmStruct } from '../mm/mm';
import type { UffdCtx } from '../mm/userfaultfd';
import type { KernelProfile } from '../profiles';
import { pagemapScanGetArgs } from './args';
import { ENOSPC, ScanOutput } from './output';
import { PagemapScanWalk } from './walk';

export interface ScanResult {
  /** The ioctl's return value: regions written, or -1 with errno. */
  ret: number;
  errno: ErrnoName | null;
  /** null when the kernel does not write walk_end back (argument errors). */
  walkEnd: number | null;
  /** What reached the user array, also on failure after progress. */
  regions: PageRegion[];
}

export function doPagemapScan(mm: MmStruct, ctx: UffdCtx | null, arg: PmScanArg, profile: KernelProfile): ScanResult {
  const parsed = pagemapScanGetArgs(arg, profile);
  if (!parsed.ok) return { ret: -1, errno: parsed.errno, walkEnd: null, regions: [] };
  const args = parsed.args;
  const out = new ScanOutput(args);
  const walk = new PagemapScanWalk(mm, ctx, args, out, profile);

  let nRangesOut = 0;
  let ret: ReturnType<PagemapScanWalk['walkPageRange']> = 0;
  // Each pass ends when the walk finishes, fails, or stops early (ENOSPC); a pass that
  // filled the bounce buffer while the user array and the page budget have room restarts at
  // walk_end, which is never reset: hence the stale walk_end after a restart.
  for (let walkStart = args.start; walkStart < args.end; walkStart = out.walkEnd) {
    ret = walk.walkPageRange(walkStart, args.end);
    nRangesOut += out.flush();
    if (ret !== ENOSPC) break;
    if (out.vecLeft === 0n || out.found === args.max_pages) break;
  }
  const walkEnd = out.walkEnd || args.end;
  if (ret === 0 || ret === ENOSPC) return { ret: nRangesOut, errno: null, walkEnd, regions: out.copied };
  return { ret: -1, errno: ret, walkEnd, regions: out.copied };
}
