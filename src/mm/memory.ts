// Page faults and zapping (mm/memory.c): what a touch does to the page table, and what
// unmapping or MADV_DONTNEED leaves behind. Anonymous private memory.

import { PMD_SIZE, PROT_READ, PROT_WRITE, PROT_EXEC } from '../uapi';
import { roundDown, type MmStruct } from './mm';
import {
  isGuardMarker,
  isHugeLeaf,
  isTable,
  isUffdWpMarker,
  ptePresent,
  PTE_PRESENT,
  PTE_UFFD_WP,
  PTE_ZERO,
  type Pte,
} from './pte';
import { splitHugePmd } from './huge_memory';
import { userfaultfdWpAsync, type UffdCtx } from './userfaultfd';
import { userfaultfdWp, vmaIsAnonymous, type Vma } from './vma';
import { UFFD_REGISTER_MODES } from '../uapi';
import { NotModelled } from '../errors';


export type FaultOutcome = 'ok' | 'SIGSEGV' | 'SIGBUS';

/** access_error() (arch/x86/mm/fault.c): may this access fault in at all? */
export function accessError(vma: Vma, write: boolean): boolean {
  if (write) return (vma.prot & PROT_WRITE) === 0;
  return (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === 0;
}

/**
 * handle_mm_fault() for the pages [start, end) of one VMA, which share one entry state (a run):
 * the same transition applies to each page, so it is applied to the run at once.
 */
export function handleFaultRun(
  mm: MmStruct,
  vma: Vma,
  ctx: UffdCtx | null,
  start: number,
  end: number,
  write: boolean,
): FaultOutcome {
  if (accessError(vma, write)) return 'SIGSEGV';
  if (!vmaIsAnonymous(vma)) throw new NotModelled(`faults in ${vma.kind} memory are not modelled yet`);
  const pmd = mm.pmd.get(start);
  if (isHugeLeaf(pmd)) throw new NotModelled('faults on transparent huge pages are not modelled yet');
  const pte = isTable(pmd) ? mm.pte.get(start) : undefined;
  const next = faultedPte(vma, ctx, pte, write);
  if (next === 'SIGSEGV') return next;
  if (next === pte) return 'ok';
  mm.allocPteTables(start, end);
  mm.pte.set(start, end, next);
  return 'ok';
}

/** The entry after an anonymous fault on `pte` (do_anonymous_page(), do_wp_page(), ...). */
function faultedPte(vma: Vma, ctx: UffdCtx | null, pte: Pte | undefined, write: boolean): Pte | undefined | 'SIGSEGV' {
  if (pte !== undefined && isGuardMarker(pte)) return 'SIGSEGV';
  // pte_marker_handle_uffd_wp(): a leftover marker in a VMA no longer uffd-wp is cleared.
  if (pte !== undefined && isUffdWpMarker(pte) && !userfaultfdWp(vma)) pte = undefined;
  if (pte === undefined || isUffdWpMarker(pte)) {
    // do_pte_missing() -> do_anonymous_page()
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) {
      throw new NotModelled('the fault would block: it is delivered to the userfaultfd reader (MISSING mode)');
    }
    const marker = pte !== undefined;
    if (!write) return PTE_PRESENT | PTE_ZERO | (marker ? PTE_UFFD_WP : 0);
    // A write on a marker installs the page with the bit, and the retried write resolves it.
    if (marker) resolveWriteProtect(vma, ctx);
    return PTE_PRESENT;
  }
  if (!ptePresent(pte)) throw new NotModelled('faults on swap entries are not modelled yet');
  if (!write) return pte;
  // do_wp_page()
  if (pte & PTE_UFFD_WP && userfaultfdWp(vma)) {
    resolveWriteProtect(vma, ctx);
    pte &= ~PTE_UFFD_WP;
  }
  // A write to the zero page copies it (wp_page_copy()); an exclusive anon page is reused.
  if (pte & PTE_ZERO) return PTE_PRESENT;
  return pte;
}

/** A write to a uffd-wp entry: resolved by the kernel only in WP_ASYNC mode. */
function resolveWriteProtect(vma: Vma, ctx: UffdCtx | null): void {
  if (!userfaultfdWpAsync(vma, ctx)) {
    throw new NotModelled('the write would block: it is delivered to the userfaultfd reader (synchronous WP)');
  }
}

/**
 * zap_page_range_single() on [start, end) of one anonymous VMA: every entry but guard markers
 * becomes none; THPs wholly inside are cleared, partial ones split first. With reclaimPt
 * (MADV_DONTNEED), a PTE table whose whole 2 MiB block lies in the range and that holds only
 * none entries afterwards is freed (try_to_free_pte(), CONFIG_PT_RECLAIM).
 */
export function zapRange(mm: MmStruct, start: number, end: number, reclaimPt: boolean): void {
  for (const block of [...mm.hugeLeavesIn(start, end)]) {
    if (block >= start && block + PMD_SIZE <= end) mm.pmd.set(block, block + PMD_SIZE, undefined);
    else splitHugePmd(mm, block);
  }
  mm.pte.map.update(mm.pte.index(start), mm.pte.index(end), (pte) => (isGuardMarker(pte) ? pte : undefined));
  if (!reclaimPt) return;
  const lo = roundDown(start + PMD_SIZE - 1, PMD_SIZE);
  const hi = roundDown(end, PMD_SIZE);
  for (const run of [...mm.pmd.map.runs(mm.pmd.index(lo), mm.pmd.index(hi))]) {
    if (!isTable(run.value)) continue;
    for (let b = run.start; b < run.end; ) {
      // Walk by runs of entries: a gap that covers whole blocks frees them together.
      const r = mm.pte.map.runAt(mm.pte.index(b * PMD_SIZE));
      const runEndBlock = (r.end * 4096) / PMD_SIZE;
      if (r.value === undefined) {
        const emptyEnd = Math.min(run.end, Math.floor(runEndBlock));
        if (emptyEnd > b) mm.pmd.map.set(b, emptyEnd, undefined);
        b = Math.max(b + 1, emptyEnd);
      } else {
        b = Math.max(b + 1, Math.ceil(runEndBlock));
      }
    }
  }
}
