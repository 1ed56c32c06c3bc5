// userfaultfd: the context, registration and write-protection (fs/userfaultfd.c,
// mm/userfaultfd.c, include/linux/userfaultfd_k.h, and change_protection() of mm/mprotect.c
// for what UFFDIO_WRITEPROTECT does to the page table).

import { PMD_SIZE, PROT_WRITE, TASK_SIZE_MAX, UFFD_API_FEATURES, UFFD_FEATURES, UFFD_REGISTER_MODES, type ErrnoName } from '../uapi';
import type { MmStruct } from './mm';
import {
  isSwapPte,
  isTable,
  isUffdWpMarker,
  pteKind,
  ptePresent,
  PTE_MARKER_GUARD,
  PTE_MARKER_POISONED,
  PTE_MARKER_UFFD_WP,
  PTE_UFFD_WP,
  PTE_WRITE,
  type Pte,
} from './pte';
import { splitHugePmd } from './huge_memory';
import { hugePageSize, isHugetlb, userfaultfdWp, vmaIsAnonymous, type Vma } from './vma';
import { hugetlbChangeProtection } from './hugetlb';
import { modifyVmas } from './mmap';

/** struct userfaultfd_ctx: the features UFFDIO_API settled on. */
export interface UffdCtx {
  features: number;
}

/** A fault that handle_userfault() turned into SIGBUS (UFFD_FEATURE_SIGBUS). */
export class UserfaultSigbus extends Error {}

/** UFFD_PAGEFAULT_FLAG_* of struct uffd_msg, by name, in bit order (WRITE 1, WP 2, MINOR 4). */
export const UFFD_PAGEFAULT_FLAG_NAMES = ['WRITE', 'WP', 'MINOR'] as const;
export type UffdPagefaultFlag = (typeof UFFD_PAGEFAULT_FLAG_NAMES)[number];

/** The UFFD_EVENT_PAGEFAULT message a blocked fault queues: arg.pagefault.address and .flags. */
export interface UffdPagefaultMsg {
  address: bigint;
  /** Names of the UFFD_PAGEFAULT_FLAG_* bits set, in bit order. */
  flags: UffdPagefaultFlag[];
}

/**
 * handle_userfault() queued the fault for the userfaultfd reader and the faulting thread sleeps
 * until a reader resolves it (UFFDIO_COPY, UFFDIO_WRITEPROTECT, ...). A scenario has no reader, so
 * the step never returns: a result, not something unmodelled. handle_userfault() knows the
 * reason only; the fault loop that knows the faulting address completes `msg` (userfaultMsg()).
 */
export class UserfaultBlocked extends Error {
  msg?: UffdPagefaultMsg;
  constructor(
    /** VM_UFFD_MISSING, VM_UFFD_WP or VM_UFFD_MINOR. */
    readonly reason: 'MISSING' | 'WP' | 'MINOR',
    /** ctx->features, for UFFD_FEATURE_EXACT_ADDRESS. */
    readonly features: number,
  ) {
    super(`the fault is delivered to the userfaultfd reader (${reason})`);
  }
}

/**
 * handle_userfault(): without a context, or with UFFD_FEATURE_SIGBUS, the faulting access gets
 * SIGBUS; otherwise the fault is queued for the reader and the thread sleeps (UserfaultBlocked).
 * (The uffd is never opened with UFFD_USER_MODE_ONLY, so a GUP fault such as MADV_POPULATE_*
 * blocks as well.)
 */
export function handleUserfault(ctx: UffdCtx | null, why: 'MISSING' | 'WP' | 'MINOR'): never {
  if (!ctx || ctx.features & UFFD_FEATURES.SIGBUS) throw new UserfaultSigbus();
  throw new UserfaultBlocked(why, ctx.features);
}

/**
 * userfault_msg(): arg.pagefault.address is vmf->address (the faulting page; in hugetlb the huge
 * page, as hugetlb_fault() aligns it), or with UFFD_FEATURE_EXACT_ADDRESS vmf->real_address (the
 * faulting byte); flags WRITE for FAULT_FLAG_WRITE, WP for VM_UFFD_WP, MINOR for VM_UFFD_MINOR.
 */
export function userfaultMsg(blocked: UserfaultBlocked, vmfAddress: number, realAddress: number, write: boolean): UffdPagefaultMsg {
  const exact = (blocked.features & UFFD_FEATURES.EXACT_ADDRESS) !== 0;
  const flags: UffdPagefaultFlag[] = [];
  if (write) flags.push('WRITE');
  if (blocked.reason === 'WP') flags.push('WP');
  if (blocked.reason === 'MINOR') flags.push('MINOR');
  return { address: BigInt(exact ? realAddress : vmfAddress), flags };
}

/** userfaultfd_wp_async(): the VMA is registered with a WP_ASYNC context. */
export function userfaultfdWpAsync(vma: Vma, ctx: UffdCtx | null): boolean {
  return vma.uffd !== 0 && ctx !== null && (ctx.features & UFFD_FEATURES.WP_ASYNC) !== 0;
}

/** userfaultfd_wp_use_markers(): none entries get uffd-wp markers when write-protected. */
export function userfaultfdWpUseMarkers(vma: Vma, ctx: UffdCtx | null): boolean {
  if (!userfaultfdWp(vma)) return false;
  if (!vmaIsAnonymous(vma)) return true;
  return ctx !== null && (ctx.features & UFFD_FEATURES.WP_UNPOPULATED) !== 0;
}

/** make_uffd_wp_pte() and change_pte_range() with MM_CP_UFFD_WP: the entry after WP. */
export function pteMkUffdWp(pte: Pte | undefined): Pte {
  if (pte === undefined) return PTE_MARKER_UFFD_WP;
  return (pte | PTE_UFFD_WP) & ~PTE_WRITE; // pte_mkuffd_wp() write-protects too
}

/**
 * uffd_wp_range(): change_protection() with MM_CP_UFFD_WP (enable) or MM_CP_UFFD_WP_RESOLVE
 * over [start, end) of one VMA. With markers, missing tables are allocated and every none
 * slot gets a uffd-wp marker; guard and poison markers are never touched.
 */
export function uffdWpRange(mm: MmStruct, vma: Vma, ctx: UffdCtx | null, start: number, end: number, enable: boolean): void {
  if (isHugetlb(vma)) return hugetlbChangeProtection(mm, vma, ctx, start, end, enable);
  const markers = enable && userfaultfdWpUseMarkers(vma, ctx);
  if (markers) mm.allocPteTables(start, end);
  // change_pmd_range(): a THP wholly inside the range is changed in place, otherwise split; a
  // file or shmem THP is always split to be protected (uffd_wp_protect_file(): its PMD is
  // cleared), and change_pmd_prepare() gives the block a PTE table for the markers.
  const protectFile = enable && !vmaIsAnonymous(vma);
  for (const addr of [...mm.hugeLeavesIn(start, end)]) {
    const pmd = mm.pmd.get(addr)!;
    if (addr >= start && addr + PMD_SIZE <= end && !protectFile) {
      mm.pmd.set(addr, addr + PMD_SIZE, enable ? pmd | PTE_UFFD_WP : pmd & ~PTE_UFFD_WP);
    } else {
      splitHugePmd(mm, addr);
      if (markers) mm.allocPteTables(Math.max(start, addr), Math.min(end, addr + PMD_SIZE));
    }
  }
  // change_pte_range(), over the blocks that have a PTE table.
  for (const seg of [...mm.pmd.map.runs(mm.pmd.index(start), Math.ceil(end / PMD_SIZE))]) {
    if (!isTable(seg.value)) continue;
    const lo = Math.max(start, seg.start * PMD_SIZE);
    const hi = Math.min(end, seg.end * PMD_SIZE);
    if (markers) fillNone(mm, lo, hi, PTE_MARKER_UFFD_WP);
    mm.pte.map.update(mm.pte.index(lo), mm.pte.index(hi), (pte) => changePte(pte, enable));
  }
}

function changePte(pte: Pte, enable: boolean): Pte | undefined {
  const kind = pteKind(pte);
  if (kind === PTE_MARKER_GUARD || kind === PTE_MARKER_POISONED) return pte;
  if (isUffdWpMarker(pte)) return enable ? pte : undefined;
  if (ptePresent(pte) || isSwapPte(pte)) return enable ? pteMkUffdWp(pte) : pte & ~PTE_UFFD_WP;
  return pte;
}

/** Set every pte_none slot of [start, end) to pte (tables must exist). */
export function fillNone(mm: MmStruct, start: number, end: number, pte: Pte): void {
  const lo = mm.pte.index(start);
  const hi = mm.pte.index(end);
  for (const seg of [...mm.pte.map.segments(lo, hi)]) {
    if (seg.value === undefined) mm.pte.map.set(seg.start, seg.end, pte);
  }
}

// ---- the ioctls on a userfaultfd (fs/userfaultfd.c) -----------------------------------------

/** validate_range(): page-aligned, non-empty, inside the user address space. */
function uffdRange(addr: bigint, len: bigint): { start: number; end: number } | null {
  if (addr % 4096n !== 0n || len % 4096n !== 0n || len === 0n) return null;
  if (addr + len > BigInt(TASK_SIZE_MAX)) return null;
  return { start: Number(addr), end: Number(addr + len) };
}

/** UFFDIO_API: WP_ASYNC silently brings WP_UNPOPULATED; unknown features are EINVAL. */
export function uffdioApi(features: bigint): { ctx: UffdCtx | null; errno: ErrnoName | null } {
  if (features & ~BigInt(UFFD_API_FEATURES)) return { ctx: null, errno: 'EINVAL' };
  let f = Number(features);
  if (f & UFFD_FEATURES.WP_ASYNC) f |= UFFD_FEATURES.WP_UNPOPULATED;
  return { ctx: { features: f }, errno: null };
}

/** vma_can_userfault() */
function vmaCanUserfault(vma: Vma, mode: number, wpAsync: boolean): boolean {
  if (mode & UFFD_REGISTER_MODES.MINOR && !isHugetlb(vma) && vma.kind !== 'shared-anon' && !vma.kind.startsWith('memfd')) return false;
  if (wpAsync && mode === UFFD_REGISTER_MODES.WP) return true;
  return vmaIsAnonymous(vma) || isHugetlb(vma) || vma.kind === 'shared-anon' || vma.kind.startsWith('memfd');
}

const ALL_MODES = UFFD_REGISTER_MODES.MISSING | UFFD_REGISTER_MODES.WP | UFFD_REGISTER_MODES.MINOR;

/** UFFDIO_REGISTER: the modes replace any earlier registration with this context. */
export function uffdioRegister(mm: MmStruct, ctx: UffdCtx, addr: bigint, len: bigint, mode: bigint): ErrnoName | null {
  if (mode === 0n || mode & ~BigInt(ALL_MODES)) return 'EINVAL';
  const range = uffdRange(addr, len);
  if (!range) return 'EINVAL';
  const m = Number(mode);
  const wpAsync = (ctx.features & UFFD_FEATURES.WP_ASYNC) !== 0;
  const vmas = mm.vmasIn(range.start, range.end);
  if (vmas.length === 0 || hugetlbMisaligned(vmas[0], range.start)) return 'EINVAL';
  for (const vma of vmas) {
    if (!vmaCanUserfault(vma, m, wpAsync)) return 'EINVAL';
    if (m & UFFD_REGISTER_MODES.WP && !(vma.prot & PROT_WRITE) && !mayWrite(vma)) return 'EPERM';
    // The hugetlb VMA holding the end is registered up to a huge page boundary.
    if (range.end > vma.start && range.end <= vma.end && hugetlbMisaligned(vma, range.end)) return 'EINVAL';
  }
  // A VMA already registered with every requested mode is left as it is.
  return modifyVmas(mm, range.start, range.end, (vma) => (vma.uffd && (vma.uffd & m) === m ? null : { uffd: m })).error;
}

/**
 * userfaultfd_register() / _unregister(): the first VMA, if hugetlb, must start the range on a
 * huge page boundary (even when the range begins in a gap before it); so must the end.
 */
function hugetlbMisaligned(vma: Vma, addr: number): boolean {
  return isHugetlb(vma) && addr % hugePageSize(vma) !== 0;
}

/** VM_MAYWRITE: every anonymous mapping may become writable. */
function mayWrite(vma: Vma): boolean {
  return vma.kind !== 'pfnmap';
}


/** UFFDIO_UNREGISTER */
export function uffdioUnregister(mm: MmStruct, ctx: UffdCtx, addr: bigint, len: bigint): ErrnoName | null {
  const range = uffdRange(addr, len);
  if (!range) return 'EINVAL';
  const wpAsync = (ctx.features & UFFD_FEATURES.WP_ASYNC) !== 0;
  const vmas = mm.vmasIn(range.start, range.end);
  if (vmas.length === 0 || hugetlbMisaligned(vmas[0], range.start)) return 'EINVAL';
  for (const vma of vmas) if (!vmaCanUserfault(vma, vma.uffd, wpAsync)) return 'EINVAL';
  // userfaultfd_clear_vma(): the write protection goes before the split, which hugetlb may refuse.
  return modifyVmas(mm, range.start, range.end, (vma, lo, hi) => {
    if (!vma.uffd) return null;
    if (userfaultfdWp(vma)) uffdWpRange(mm, vma, ctx, lo, hi, false);
    return { uffd: 0 };
  }).error;
}

/** Closing the last reference: every registration is cleared (userfaultfd_release()). */
export function uffdRelease(mm: MmStruct, ctx: UffdCtx): void {
  for (const vma of mm.vmas) if (userfaultfdWp(vma)) uffdWpRange(mm, vma, ctx, vma.start, vma.end, false);
  if (mm.vmas.length) modifyVmas(mm, mm.vmas[0].start, mm.vmas[mm.vmas.length - 1].end, (vma) => (vma.uffd ? { uffd: 0 } : null));
}

/** UFFDIO_WRITEPROTECT -> mwriteprotect_range(): VMA by VMA, ENOENT at the first that is not uffd-wp. */
export function uffdioWriteprotect(mm: MmStruct, ctx: UffdCtx, addr: bigint, len: bigint, wp: boolean): ErrnoName | null {
  const range = uffdRange(addr, len);
  if (!range) return 'EINVAL';
  let err: ErrnoName | null = 'ENOENT';
  for (const vma of mm.vmasIn(range.start, range.end)) {
    if (!userfaultfdWp(vma)) return 'ENOENT';
    if (isHugetlb(vma) && (range.start % hugePageSize(vma) || range.end % hugePageSize(vma))) return 'EINVAL';
    uffdWpRange(mm, vma, ctx, Math.max(range.start, vma.start), Math.min(range.end, vma.end), wp);
    err = null;
  }
  return err;
}
