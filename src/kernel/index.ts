// Running scenarios on the real kernel: the replay harness, C export, and machine set-up.

export { C_FLAGS, compileC, defaultCacheDir, findCompiler, replayBinary, replaySourcePath } from './build';
export type { CompileOptions, CompilerInfo } from './build';
export { encodeStep, encodeSteps, harnessMappingsIn, parseReplayOutput } from './protocol';
export type { HarnessInfo, HarnessMapping, KernelRun, StopReason, Termination, Unreproduced } from './protocol';
export {
  DEFAULT_RUN_TIMEOUT_MS,
  DEFAULT_STEP_LIMIT_MS,
  DEFAULT_STEP_TIMEOUT_MS,
  checkProgramSupport,
  environmentWarnings,
  hugetlbPagesNeeded,
  probeKernel,
  runOnKernel,
} from './run';
export type { KernelRunOptions } from './run';
export { exportC, replayRuntime } from './export-c';
export type { ExportCOptions } from './export-c';
export {
  FILE_DIR,
  HUGETLB_POOLS,
  SWAP_DIR,
  currentThpMode,
  fileDirReadAheadKb,
  swapActive,
  withHugetlbPages,
  withReadAheadKb,
  withSwapFile,
  withThpMode,
} from './setup';
export type { ThpMode } from './setup';
export type { HugetlbSize } from './setup';
