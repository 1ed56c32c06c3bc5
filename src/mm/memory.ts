// Page faults and zapping (mm/memory.c): what a touch does to the page table, and what
// unmapping or MADV_DONTNEED leaves behind. Anonymous private memory.

import { PMD_SIZE, PROT_READ, PROT_WRITE, PROT_EXEC } from '../uapi';
import { roundDown, type MmStruct } from './mm';
import {
  HUGE_LEAF,
  isGuardMarker,
  isHugeLeaf,
  pteIsWriteProtected,
  PTE_MARKER_UFFD_WP,
  isTable,
  isUffdWpMarker,
  ptePresent,
  PTE_LAZYFREE,
  PTE_LAZYFREE_DIRTY,
  PTE_PRESENT,
  PTE_SOFT_DIRTY,
  PTE_SWAP,
  PTE_UFFD_WP,
  PTE_WRITE,
  pteKind,
  PTE_ZERO,
  type Pte,
} from './pte';
import { doHugePmdAnonymousPage, splitHugePmd, thpFaultAllowed } from './huge_memory';
import type { SystemConfig } from '../scenario/program';
import { doFileFault, isSharedMapping } from './filemap';
import { markFolioDirty } from './readahead';
import { handleUserfault, userfaultfdWpAsync, type UffdCtx } from './userfaultfd';
import { isPfnmap, userfaultfdWp, vmaIsAnonymous, type Vma } from './vma';
import { UFFD_REGISTER_MODES } from '../uapi';


export type FaultOutcome = 'ok' | 'SIGSEGV' | 'SIGBUS';

/** access_error() (arch/x86/mm/fault.c): may this access fault in at all? */
export function accessError(vma: Vma, write: boolean): boolean {
  if (write) return (vma.prot & PROT_WRITE) === 0;
  return (vma.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)) === 0;
}

/**
 * handle_mm_fault() for the pages [start, end) of one VMA, which share one page-table state (a
 * run, inside one 2 MiB block when THPs are possible): the same transition applies to each
 * page, so it is applied to the run at once. Returns where the run handled ends.
 */
export function handleMmFault(
  mm: MmStruct,
  vma: Vma,
  ctx: UffdCtx | null,
  system: SystemConfig,
  start: number,
  end: number,
  write: boolean,
): { outcome: FaultOutcome; next: number } {
  if (accessError(vma, write)) return { outcome: 'SIGSEGV', next: end };
  // VM_PFNMAP: the driver mapped every page at mmap time; nothing faults.
  if (isPfnmap(vma)) return { outcome: 'ok', next: end };
  if (vma.mapping && isHugeLeaf(mm.pmd.get(start))) {
    // A file THP: reads and shared writes use it as it is; a private write splits (unmaps) it.
    const pmd = mm.pmd.get(start)!;
    if (write && pmd & PTE_UFFD_WP && userfaultfdWp(vma)) resolveWriteProtect(vma, ctx);
    if (!write || isSharedMapping(vma)) {
      if (write) mm.pmd.set(start, start + 1, pmd & ~PTE_UFFD_WP);
      if (write && !vma.mapping.shmem) markFolioDirty(vma.mapping, (start - vma.fileBase!) / 4096);
      return { outcome: 'ok', next: Math.min(end, roundDown(start, PMD_SIZE) + PMD_SIZE) };
    }
    splitHugePmd(mm, start);
  }
  if (vma.mapping) {
    // File and shmem faults: page by page, since fault-around maps neighbours too.
    if (!write && ptePresent(mm.pte.get(start) ?? 0) && isTable(mm.pmd.get(start))) return { outcome: 'ok', next: end };
    if (mm.pte.get(start) !== undefined && isGuardMarker(mm.pte.get(start)!)) return { outcome: 'SIGSEGV', next: start + 4096 };
    // do_swap_page(): a swapped-out copy-on-write page of a private mapping comes back as the
    // anonymous page it was (handle_pte_fault() tries swap entries before do_fault()).
    if (pteKind(mm.pte.get(start) ?? 0) === PTE_SWAP) return { outcome: handlePteFault(mm, vma, ctx, start, start + 4096, write), next: start + 4096 };
    doFileFault(mm, vma, ctx, start, write, () => resolveWriteProtect(vma, ctx));
    return { outcome: 'ok', next: start + 4096 };
  }
  if (!vmaIsAnonymous(vma)) throw new Error(`internal: handleMmFault() reached a ${vma.kind} VMA as anonymous memory`);
  const blockEnd = Math.min(end, roundDown(start, PMD_SIZE) + PMD_SIZE);
  if (thpFaultAllowed(mm, vma, start, system)) {
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) handleUserfault(ctx, 'MISSING');
    mm.anonVmaPrepare(vma); // before the huge zero page too (vmf_anon_prepare())
    doHugePmdAnonymousPage(mm, start, write);
    return { outcome: 'ok', next: blockEnd };
  }
  const pmd = mm.pmd.get(start);
  if (isHugeLeaf(pmd)) {
    if (!write) return { outcome: 'ok', next: blockEnd };
    if (!wpHugePmd(mm, vma, ctx, start, pmd!)) {
      // The store dirties the PMD: a lazily-freed THP is no longer free to discard.
      const now = mm.pmd.get(start)!;
      const block = roundDown(start, PMD_SIZE);
      if (now & PTE_LAZYFREE) mm.pmd.set(block, block + PMD_SIZE, (now & ~PTE_LAZYFREE) | PTE_LAZYFREE_DIRTY);
      return { outcome: 'ok', next: blockEnd };
    }
    end = blockEnd; // split: the pages go on at PTE level
  }
  return { outcome: handlePteFault(mm, vma, ctx, start, end, write), next: end };
}

/**
 * wp_huge_pmd(): a write to a PMD leaf. Returns true when the PMD was split and the fault goes on
 * at PTE level (a uffd-wp THP in async mode); otherwise the leaf was handled in place.
 */
function wpHugePmd(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, addr: number, pmd: number): boolean {
  if (pmd & PTE_UFFD_WP && userfaultfdWp(vma)) {
    resolveWriteProtect(vma, ctx);
    splitHugePmd(mm, addr);
    return true;
  }
  // do_huge_zero_wp_pmd(): a fresh THP replaces the huge zero page (before 6.13: split, and the
  // page copied at PTE level); a THP of our own is reused.
  if (pmd & PTE_ZERO) {
    if (!mm.profile.hugeZeroWriteThp) {
      splitHugePmd(mm, addr);
      return true;
    }
    mm.pmd.set(addr, addr + 1, HUGE_LEAF | (pmd & PTE_SOFT_DIRTY));
  }
  return false;
}

/** handle_pte_fault() on a run of equal PTE slots. */
function handlePteFault(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, start: number, end: number, write: boolean): FaultOutcome {
  const pte = isTable(mm.pmd.get(start)) ? mm.pte.get(start) : undefined;
  // The PTE table is allocated before the fault looks at the entry (pte_alloc() first).
  if (pte === undefined) mm.allocPteTables(start, end);
  const next = faultedPte(vma, ctx, pte, write);
  if (next === 'SIGSEGV') return next;
  // A new anonymous page needs the VMA's anon_vma; the zero page does not.
  if (write) mm.anonVmaPrepare(vma);
  if (next & PTE_ZERO) mm.data.set(mm.pte.index(start), mm.pte.index(end), undefined);
  if (next === pte) return 'ok';
  mm.allocPteTables(start, end);
  mm.pte.set(start, end, next);
  return 'ok';
}


/** The entry after an anonymous fault on `pte` (do_anonymous_page(), do_wp_page(), ...). */
function faultedPte(vma: Vma, ctx: UffdCtx | null, pte: Pte | undefined, write: boolean): Pte | 'SIGSEGV' {
  if (pte !== undefined && isGuardMarker(pte)) return 'SIGSEGV';
  // pte_marker_handle_uffd_wp(): a leftover marker in a VMA no longer uffd-wp is cleared.
  if (pte !== undefined && isUffdWpMarker(pte) && !userfaultfdWp(vma)) pte = undefined;
  if (pte === undefined || isUffdWpMarker(pte)) {
    // do_pte_missing() -> do_anonymous_page()
    if (vma.uffd & UFFD_REGISTER_MODES.MISSING) handleUserfault(ctx, 'MISSING');
    const marker = pte !== undefined;
    if (!write) return PTE_PRESENT | PTE_ZERO | (marker ? PTE_UFFD_WP : 0);
    // A write on a marker installs the page with the bit, and the retried write resolves it.
    if (marker) resolveWriteProtect(vma, ctx);
    return PTE_PRESENT;
  }
  // do_swap_page(): only the faulting page comes back, keeping its uffd-wp and soft-dirty bits.
  if (pteKind(pte) === PTE_SWAP) pte = PTE_PRESENT | (pte & (PTE_UFFD_WP | PTE_SOFT_DIRTY));
  if (!ptePresent(pte)) throw new Error(`internal: an anonymous fault on entry ${pte}`);
  if (!write) return pte;
  // A write dirties the page: a MADV_FREE'd page is not free to discard any more.
  if (pte & PTE_LAZYFREE) pte = (pte & ~PTE_LAZYFREE) | PTE_LAZYFREE_DIRTY;
  // A writable page does not fault at all, whatever stale uffd-wp bit it carries.
  if (pte & PTE_WRITE) return pte;
  // do_wp_page(): in a uffd-wp VMA the bit is resolved; elsewhere the page is reused as it is,
  // made writable with a stale bit (wp_page_reuse()).
  if (pte & PTE_UFFD_WP) {
    if (userfaultfdWp(vma)) {
      resolveWriteProtect(vma, ctx);
      pte &= ~PTE_UFFD_WP;
    } else if (!(pte & PTE_ZERO)) {
      return pte | PTE_WRITE;
    }
  }
  // A write to the zero page copies it (wp_page_copy()); an exclusive anon page is reused.
  if (pte & PTE_ZERO) return PTE_PRESENT;
  return pte;
}

/** A write to a uffd-wp entry: resolved by the kernel only in WP_ASYNC mode. */
function resolveWriteProtect(vma: Vma, ctx: UffdCtx | null): void {
  if (!userfaultfdWpAsync(vma, ctx)) {
    handleUserfault(ctx, 'WP');
  }
}

export interface ZapDetails {
  /** MADV_DONTNEED: free PTE tables left empty (CONFIG_PT_RECLAIM). */
  reclaimPt?: boolean;
  /** ZAP_FLAG_DROP_MARKER (munmap): markers go too. */
  dropMarkers?: boolean;
}

/**
 * zap_page_range_single() on [start, end) of one VMA. Anonymous memory loses every entry but
 * guard markers. In a file VMA, uffd-wp markers stay and a write-protected page leaves one if the
 * VMA is uffd-wp (zap_install_uffd_wp_if_needed()), unless the markers are dropped. A THP wholly
 * inside is cleared, a partial one split first. With reclaimPt, a PTE table whose whole 2 MiB
 * block lies in the range and that holds only none entries afterwards is freed.
 */
export function zapRange(mm: MmStruct, vma: Vma, start: number, end: number, details: ZapDetails = {}): void {
  const { dropMarkers = false } = details;
  const reclaimPt = details.reclaimPt && mm.profile.ptReclaim;
  for (const block of [...mm.hugeLeavesIn(start, end)]) {
    if (block >= start && block + PMD_SIZE <= end) mm.pmd.set(block, block + PMD_SIZE, undefined);
    else splitHugePmd(mm, block);
  }
  const anon = vmaIsAnonymous(vma);
  const leaveMarker = !anon && !dropMarkers && userfaultfdWp(vma);
  mm.pte.map.update(mm.pte.index(start), mm.pte.index(end), (pte) => {
    if (isGuardMarker(pte)) return dropMarkers ? undefined : pte;
    if (isUffdWpMarker(pte)) return anon || dropMarkers ? undefined : pte;
    if (leaveMarker && pteIsWriteProtected(pte)) return PTE_MARKER_UFFD_WP;
    return undefined;
  });
  mm.data.set(mm.pte.index(start), mm.pte.index(end), undefined);
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
