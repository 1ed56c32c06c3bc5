// A step the kernel never returns from because it loops (or deadlocks) in the kernel: a result,
// like a fault that blocks on userfaultfd, not something unmodelled. The scenario stops there.

/**
 * What the kernel does forever:
 *   - `fault-loop`: the fault handler returns without resolving the fault, so the access (or the
 *     GUP loop of MADV_POPULATE_*) faults again, for ever;
 *   - `restart-loop`: the system call redoes its work for ever (MADV_GUARD_INSTALL over uffd-wp
 *     markers: the zap keeps them, so installation restarts);
 *   - `deadlock`: the thread sleeps for ever on a lock it holds itself (unkillable).
 */
export const HANG_WHYS = ['fault-loop', 'restart-loop', 'deadlock'] as const;
export type HangWhy = (typeof HANG_WHYS)[number];

/** What the kernel does for ever, in the words of the kernel harness (replay.c, report_hang()). */
export const HANG_TEXT: Record<HangWhy, string> = {
  'fault-loop': 'the kernel takes the same fault again for ever',
  'restart-loop': 'the kernel restarts the system call for ever',
  deadlock: 'the thread sleeps for ever on a lock it holds',
};

/** The kernel never returns from this step. The fault path fills in `address` for a touch. */
export class KernelHang extends Error {
  /** read/write: the byte the CPU touches over and over (a fault-loop). */
  address?: number;
  constructor(
    readonly why: HangWhy,
    /** What the kernel does, in its own functions' words. */
    readonly detail: string,
  ) {
    super(`the step never returns (${why}): ${detail}`);
  }
}
