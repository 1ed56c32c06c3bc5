// madvise() for private anonymous memory (mm/madvise.c, the zap of mm/memory.c,
// try_to_free_pte() of mm/pt_reclaim.c, MADV_POPULATE_* through GUP of mm/gup.c).

import type { Advice } from '../../src/scenario/program';
import { handleMmFault, noFaultOnFile, type FaultResult } from './fault';
import { shmDirty, shmPageout, shmPunchHole, shmZap } from './shmem';
import {
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
  VM_DONTCOPY,
  VM_HUGEPAGE,
  VM_NOHUGEPAGE,
  VM_RAND_READ,
  VM_SEQ_READ,
  addrEnd,
  blockOf,
  type Pte,
  type RefMm,
  type Vma,
} from './mm';
import { hugetlbAccess, hugetlbPunchHole, unmapHugepageRange } from './hugetlb';
import { UFFD_FEATURE_EVENT_REMOVE, type UffdCtx } from './userfaultfd';

const U64 = (1n << 64n) - 1n;
const PAGE = BigInt(PAGE_SIZE);

export type MadviseResult = 'EINVAL' | 'ENOMEM' | 'EFAULT' | 'EACCES' | 'userfault' | 'hang' | 'notmodelled' | null;

/** Advice that only updates vm_flags (madvise_update_vma()). */
const FLAG_UPDATES: Partial<Record<Advice, (flags: number) => number>> = {
  normal: (f) => f & ~VM_RAND_READ & ~VM_SEQ_READ,
  sequential: (f) => (f & ~VM_RAND_READ) | VM_SEQ_READ,
  random: (f) => (f & ~VM_SEQ_READ) | VM_RAND_READ,
  dontfork: (f) => f | VM_DONTCOPY,
  dofork: (f) => f & ~VM_DONTCOPY, // VM_IO is never set here
  nohugepage: (f) => (f & ~VM_HUGEPAGE) | VM_NOHUGEPAGE,
  hugepage: (f) => (f & ~VM_NOHUGEPAGE) | VM_HUGEPAGE,
};

/** do_madvise(): is_valid_madvise(), then the populate path or madvise_walk_vmas(). */
export function doMadvise(mm: RefMm, ctx: UffdCtx | null, startIn: bigint, lenIn: bigint, advice: Advice): MadviseResult {
  if (startIn % PAGE !== 0n) return 'EINVAL';
  const len = ((lenIn + PAGE - 1n) & U64) & ~(PAGE - 1n);
  if (lenIn !== 0n && len === 0n) return 'EINVAL';
  const endIn = startIn + len;
  if (endIn > U64) return 'EINVAL';
  if (endIn === startIn) return null;
  // Nothing lives at or above TASK_SIZE: past the last VMA is a gap anyway.
  const start = Number(startIn);
  const end = endIn > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(endIn);
  // MADV_COLLAPSE is not modelled but where every VMA is hugetlb.
  if (advice === 'collapse' && mm.vmasIntersecting(start, end).some((v) => !v.huge)) return 'notmodelled';
  if (advice === 'populate-read' || advice === 'populate-write') return madvisePopulate(mm, ctx, start, end, advice === 'populate-write');
  return madviseWalkVmas(mm, ctx, start, end, advice);
}

/** madvise_walk_vmas(): unmapped parts are skipped but make the result ENOMEM. */
function madviseWalkVmas(mm: RefMm, ctx: UffdCtx | null, start: number, end: number, advice: Advice): MadviseResult {
  let unmapped = false;
  let pos = start;
  for (;;) {
    const vma = mm.findVma(pos);
    if (!vma) return 'ENOMEM';
    if (pos < vma.start) {
      unmapped = true;
      pos = vma.start;
      if (pos >= end) break;
    }
    const rangeEnd = Math.min(vma.end, end);
    const vmaEnd = vma.end;
    const err = madviseVmaBehavior(mm, ctx, vma, pos, rangeEnd, advice);
    if (err) return err;
    pos = vmaEnd;
    if (pos >= end) break;
  }
  return unmapped ? 'ENOMEM' : null;
}

/** madvise_vma_behavior() on [start, end) inside `vma`. */
function madviseVmaBehavior(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, advice: Advice): MadviseResult {
  if (vma.huge) return madviseHugetlb(mm, ctx, vma, start, end, advice);
  if (vma.shm) return madviseShmem(mm, ctx, vma, start, end, advice);
  switch (advice) {
    case 'remove':
      return 'EINVAL'; // madvise_remove(): needs a file
    case 'willneed':
      return null; // no file: nothing a scan can see
    case 'cold':
      madviseCold(mm, start, end);
      return null;
    case 'pageout':
      return madvisePageout(mm, start, end);
    case 'dontneed':
    case 'free':
      return madviseDontneedFree(mm, ctx, vma, start, end, advice);
    case 'guard-install':
      return madviseGuardInstall(mm, vma, start, end);
    case 'guard-remove':
      madviseGuardRemove(mm, start, end);
      return null;
    default:
      return madviseUpdateVma(mm, vma, start, end, advice);
  }
}

/** madvise_update_vma() for the advice that only changes vm_flags. */
function madviseUpdateVma(mm: RefMm, vma: Vma, start: number, end: number, advice: Advice): MadviseResult {
  const update = FLAG_UPDATES[advice];
  if (!update) throw new Error(`reference: advice ${advice} not handled`);
  const flags = update(vma.flags);
  if (flags === vma.flags) return null;
  if (!mm.mayIsolate(start, end)) return 'EINVAL'; // hugetlb_vm_op_split()
  for (const part of mm.isolate(start, end)) part.flags = flags;
  mm.mergeAround(start, end);
  return null;
}

/** madvise_vma_behavior() on a hugetlb VMA. */
function madviseHugetlb(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, advice: Advice): MadviseResult {
  const h = vma.huge!;
  switch (advice) {
    case 'remove':
      // madvise_remove(): the file is there; a private mapping may not punch it.
      if (!h.shared) return 'EACCES';
      if (vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0n) return 'userfault';
      hugetlbPunchHole(mm, vma, start, end);
      return null;
    case 'willneed':
      return null; // vfs_fadvise() on hugetlbfs: nothing to read
    case 'collapse': // thp_vma_allowable_order(): hugetlb is not THP
    case 'cold':
    case 'pageout':
    case 'free':
    case 'guard-install':
    case 'guard-remove':
      // can_madv_lru_vma(), madvise_dontneed_free_valid_vma(), is_valid_guard_vma()
      return 'EINVAL';
    case 'dontneed': {
      // madvise_dontneed_free_valid_vma(): the start must be aligned; the end is rounded down
      // ("avoid unexpected data loss").
      if (start % h.size !== 0) return 'EINVAL';
      const e = end - (end % h.size);
      if (start === e) return null;
      if (vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0n) return 'userfault';
      unmapHugepageRange(mm, vma, start, e, false);
      return null;
    }
    default:
      return madviseUpdateVma(mm, vma, start, end, advice);
  }
}

/** madvise_vma_behavior() on a shmem VMA (vma_is_anonymous() false, vm_file set). */
function madviseShmem(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, advice: Advice): MadviseResult {
  const eventRemove = vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0n;
  switch (advice) {
    case 'remove':
      // madvise_remove(): vma_is_shared_maywrite(), then userfaultfd_remove(), then the punch.
      if (!vma.shm!.shared) return 'EACCES';
      if (eventRemove) return 'userfault';
      shmPunchHole(mm, vma, start, end);
      return null;
    case 'willneed': // shmem_swapin_range(): into the swap cache only, the page cache keeps swap entries
    case 'cold':
      return null;
    case 'pageout':
      shmPageout(mm, vma, start, end);
      return null;
    case 'dontneed':
    case 'free':
      // madvise_dontneed_free(): userfaultfd_remove() first; MADV_FREE is for anonymous VMAs only.
      if (eventRemove) return 'userfault';
      if (advice === 'free') return 'EINVAL';
      shmZap(mm, vma, start, end, { dropMarkers: false, reclaimPt: true });
      return null;
    case 'guard-install':
      return madviseGuardInstall(mm, vma, start, end);
    case 'guard-remove':
      madviseGuardRemove(mm, start, end);
      return null;
    default:
      return madviseUpdateVma(mm, vma, start, end, advice);
  }
}

/** madvise_dontneed_free() */
function madviseDontneedFree(mm: RefMm, ctx: UffdCtx | null, vma: Vma, start: number, end: number, advice: 'dontneed' | 'free'): MadviseResult {
  // (VM_LOCKED / VM_PFNMAP never occur here.) userfaultfd_remove(): with EVENT_REMOVE the caller
  // waits until the event is read.
  if (vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURE_EVENT_REMOVE) !== 0n) return 'userfault';
  if (advice === 'dontneed') zapPageRange(mm, start, end, true);
  else madviseFreeRange(mm, start, end);
  return null;
}

/**
 * zap_page_range_single() over [start, end) of one anonymous VMA, without ZAP_FLAG_DROP_MARKER:
 * pages and uffd-wp markers go (anonymous memory never keeps a marker), guard markers stay.
 * With details.reclaim_pt (MADV_DONTNEED), a PTE table whose block the range covers whole and
 * that holds only none entries afterwards is freed (zap_pte_range() + try_to_free_pte()).
 */
export function zapPageRange(mm: RefMm, start: number, end: number, reclaimPt: boolean): void {
  mm.zapThps(start, end);
  for (let addr = start; addr < end; ) {
    const next = addrEnd(addr, end, PMD_SIZE);
    if (mm.hasPteTable(addr)) zapPteRange(mm, addr, next, reclaimPt);
    addr = next;
  }
}

/** zap_pte_range() */
function zapPteRange(mm: RefMm, start: number, end: number, reclaimPt: boolean): void {
  // reclaim_pt_is_enabled(): the zap covers the whole PMD.
  let canReclaim = reclaimPt && end - start >= PMD_SIZE;
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const pte = mm.pteGet(addr);
    if (pte === undefined) continue;
    if (pte.kind === 'guard') {
      canReclaim = false; // kept: "any_skipped"
      continue;
    }
    mm.pteSet(addr, undefined);
  }
  if (canReclaim) mm.freePteTable(blockOf(start)); // every entry is none now
}

/**
 * madvise_free_single_vma() -> madvise_free_pte_range(): anonymous pages become lazy-free, swap
 * entries are freed (free_swap_and_cache(), the slot is cleared: its uffd-wp bit goes too).
 */
function madviseFreeRange(mm: RefMm, start: number, end: number): void {
  for (let addr = start; addr < end; ) {
    // madvise_free_huge_pmd(): the huge zero page is left alone; a THP covered whole becomes
    // lazy-free as a whole, one covered in part is split (split_folio()) for the PTE loop.
    const next = addrEnd(addr, end, PMD_SIZE);
    const thp = mm.thpGet(addr);
    if (thp && !thp.zero && next - addr === PMD_SIZE) {
      thp.lazyfree = true;
      thp.redirtied = false;
    } else if (thp && !thp.zero) mm.splitFolio(addr, thp.folio);
    addr = next;
  }
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    if (!mm.hasPteTable(addr)) continue;
    let pte = mm.pteGet(addr);
    // A large folio not mapped whole inside the range is split first.
    if (pte?.kind === 'page' && pte.folio !== undefined && !folioWhollyIn(mm, addr, pte.folio, start, end)) {
      mm.splitFolio(addr, pte.folio);
      pte = mm.pteGet(addr);
    }
    // The zero page has no folio; markers are not swap entries: both untouched.
    if (pte?.kind === 'page') {
      pte.lazyfree = true; // clean, old, folio_mark_lazyfree()
      pte.redirtied = false;
    }
    else if (pte?.kind === 'swap') mm.pteSet(addr, undefined);
  }
}

/**
 * MADV_PAGEOUT (madvise_cold_or_pageout_pte_range(), reclaim_pages(), shrink_folio_list(),
 * try_to_unmap_one()): a lazy-free page that is still clean is simply discarded ("MADV_FREE page
 * check"); any other anonymous page is swapped out when there is swap (the swap entry keeps the
 * uffd-wp bit: pte_swp_mkuffd_wp()) and stays without. The zero page, markers and swap entries
 * are never touched.
 */
function madvisePageout(mm: RefMm, start: number, end: number): MadviseResult {
  const kept = new Set<number>();
  for (let addr = start; addr < end; ) {
    // A THP is split (split_folio(): in part, by madvise_cold_or_pageout_pte_range(); whole, by
    // shrink_folio_list() when no swap slot for the folio can be had), then reclaimed page by page.
    const next = addrEnd(addr, end, PMD_SIZE);
    const thp = mm.thpGet(addr);
    if (thp && !thp.zero && next - addr === PMD_SIZE && (thp.lazyfree || thp.redirtied)) {
      // A lazy-free THP goes to reclaim whole: still clean, it is discarded (the block keeps a
      // PTE table of none entries); written since MADV_FREE, the PMD is split (try_to_unmap()
      // with TTU_SPLIT_HUGE_PMD), the folio made swap-backed again and kept, not split.
      if (thp.redirtied) {
        kept.add(blockOf(addr)); // (reclaim is done with it: the PTE loop does not see it)
        mm.splitHugePmd(addr);
        for (const a of mm.folioPages(addr, thp.folio)) {
          const q = mm.pteGet(a) as Pte & { kind: 'page' };
          q.lazyfree = false;
          q.redirtied = false;
        }
      } else {
        mm.thps.delete(blockOf(addr));
        mm.pteAlloc(addr);
      }
    } else if (thp && !thp.zero) {
      mm.splitFolio(addr, thp.folio);
    }
    addr = next;
  }
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    if (!mm.hasPteTable(addr) || kept.has(blockOf(addr))) continue;
    let pte = mm.pteGet(addr);
    if (pte?.kind === 'page' && pte.folio !== undefined) {
      // Not mapped whole inside the range: split here (split_folio()). Whole: reclaim splits it
      // when no swap slot can be had for it; a lazy-free one is not modelled there.
      const f = pte.folio;
      const lazy = mm.folioPages(addr, f).some((a) => {
        const q = mm.pteGet(a);
        return q?.kind === 'page' && (q.lazyfree || q.redirtied === true);
      });
      if (lazy && folioWhollyIn(mm, addr, f, start, end)) return 'notmodelled';
      mm.splitFolio(addr, f);
      pte = mm.pteGet(addr);
    }
    if (pte?.kind !== 'page') continue;
    if (pte.lazyfree) mm.pteSet(addr, undefined);
    // Written since MADV_FREE: made swapbacked again and kept, this time.
    else if (pte.redirtied) pte.redirtied = false;
    else if (mm.swap) mm.pteSet(addr, { kind: 'swap', wp: pte.wp });
  }
  return null;
}

/**
 * madvise_folio_pte_batch() == folio_nr_pages(): every page of the large folio is mapped, in
 * addr's block, inside [start, end), by PTEs that differ in nothing folio_pte_batch() compares
 * (dirty, soft-dirty, write and young bits are ignored; the uffd-wp bit is not).
 */
function folioWhollyIn(mm: RefMm, addr: number, folio: number, start: number, end: number): boolean {
  const pages = mm.folioPages(addr, folio);
  if (pages.length !== 512 || pages[0] < start || pages[511] + PAGE_SIZE > end) return false;
  const wp = (a: number): boolean => (mm.pteGet(a) as { wp: boolean }).wp;
  return pages.every((a) => wp(a) === wp(pages[0]));
}

/**
 * MADV_COLD: nothing a scan sees, but a THP covered in part, or a large folio not mapped whole
 * inside the range, is split (split_folio()).
 */
function madviseCold(mm: RefMm, start: number, end: number): void {
  for (let addr = start; addr < end; ) {
    const next = addrEnd(addr, end, PMD_SIZE);
    const thp = mm.thpGet(addr);
    if (thp && !thp.zero && next - addr !== PMD_SIZE) mm.splitFolio(addr, thp.folio);
    addr = next;
  }
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    if (!mm.hasPteTable(addr)) continue;
    const pte = mm.pteGet(addr);
    if (pte?.kind === 'page' && pte.folio !== undefined && !folioWhollyIn(mm, addr, pte.folio, start, end)) mm.splitFolio(addr, pte.folio);
  }
}

/**
 * madvise_guard_install(): try to put a guard marker in every slot; any entry that is neither
 * none nor a guard marker makes it zap the range (an ordinary zap: guard markers stay) and try
 * again, so in the end every slot holds a guard marker (existing ones keep their uffd-wp bit).
 */
function madviseGuardInstall(mm: RefMm, vma: Vma, start: number, end: number): MadviseResult {
  mm.anonVmaPrepare(vma); // (6.18: for every VMA, file-backed too)
  let attempts = 0;
  for (;;) {
    if (++attempts > 3) {
      // In a shmem VMA the zap keeps uffd-wp markers: the walk finds them again and again, and
      // after MAX_MADVISE_GUARD_RETRIES the call restarts (restart_syscall()), for ever.
      if (vma.shm) return 'hang';
      throw new Error('reference bug: guard install does not converge');
    }
    let needZap = false;
    // walk_page_range_mm() with install_pte: allocates the tables on its way.
    for (let addr = start; addr < end; addr += PAGE_SIZE) {
      if (mm.thpGet(addr)) {
        needZap = true; // a PMD leaf: guard_install_pmd_entry() asks for the zap
        break;
      }
      mm.pteAlloc(addr);
      const pte = mm.pteGet(addr);
      if (pte === undefined) mm.pteSet(addr, { kind: 'guard', wp: false }); // guard_install_set_pte()
      else if (pte.kind !== 'guard') {
        needZap = true; // guard_install_pte_entry() returns 1: stop the walk
        break;
      }
    }
    if (!needZap) return null;
    if (vma.shm) shmZap(mm, vma, start, end, { dropMarkers: false, reclaimPt: false });
    else zapPageRange(mm, start, end, false);
  }
}

/** madvise_guard_remove(): guard markers (write-protected ones too) become none. */
function madviseGuardRemove(mm: RefMm, start: number, end: number): void {
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    if (mm.hasPteTable(addr) && mm.pteGet(addr)?.kind === 'guard') mm.pteSet(addr, undefined);
  }
}

/**
 * madvise_populate() -> faultin_page_range() -> __get_user_pages() with FOLL_MADV_POPULATE:
 * page by page, a missing VMA is ENOMEM, a VMA the access is not allowed in (check_vma_flags())
 * EINVAL, a fault that fails (guard marker, SIGBUS) EFAULT. Earlier pages stay populated.
 */
function madvisePopulate(mm: RefMm, ctx: UffdCtx | null, start: number, end: number, write: boolean): MadviseResult {
  for (let addr = start; addr < end; addr += PAGE_SIZE) {
    const vma = mm.vmaLookup(addr);
    if (!vma) return 'ENOMEM';
    if (write ? !(vma.prot & PROT_WRITE) : !(vma.prot & PROT_READ)) return 'EINVAL';
    mm.noStore = true; // GUP faults pages in, it stores nothing
    let r: FaultResult;
    try {
      r = gupFaultIn(mm, ctx, vma, addr, write);
    } finally {
      mm.noStore = false;
    }
    if (r === 'userfault') return 'userfault';
    if (r !== 'ok') return 'EFAULT';
  }
  return null;
}

/** follow_page_pte() then faultin_page(): fault only when the entry does not allow the access. */
function gupFaultIn(mm: RefMm, ctx: UffdCtx | null, vma: Vma, addr: number, write: boolean): FaultResult {
  if (vma.huge) return hugetlbAccess(mm, ctx, vma, addr, write);
  const thp = mm.thpGet(addr);
  if (thp && (!write || (thp.writable && !thp.zero))) return 'ok'; // (FOLL_TOUCH: stores nothing)
  const pte = mm.hasPteTable(addr) ? mm.pteGet(addr) : undefined;
  if (pte?.kind === 'page' && (!write || pte.writable)) {
    if (write && pte.lazyfree) {
      pte.lazyfree = false; // FOLL_TOUCH | FOLL_WRITE marks the folio dirty
      pte.redirtied = true;
    }
    return 'ok';
  }
  if (pte?.kind === 'zero' && !write) return 'ok';
  if (pte?.kind === 'file' && noFaultOnFile(vma, pte, write)) {
    if (write) shmDirty(vma, addr);
    return 'ok';
  }
  return handleMmFault(mm, ctx, vma, addr, write);
}
