// The library API: what scripts built on the emulator use. The CLI is built on the same calls.
//
//   import { loadScenarioFile, simulate } from 'pagemap-scan';
//   const result = simulate(loadScenarioFile('scenarios/write-watch.yaml'));

export { simulate, type SimulationResult, type StepFailure } from './simulate';
export { Process } from './process';
export { doPagemapScan, type ScanResult } from './scan/scan';
export { parseScenario, loadScenarioFile } from './scenario';
export { scenarioToJson, stepToJson, type JsonScenario, type JsonStep } from './scenario/json';
export { scanArg, VEC_ADDR, type Program, type Step, type Op, type StepResult, type MemoryKind } from './scenario/program';
export { PROFILES, DEFAULT_PROFILE, profileNamed, type KernelProfile } from './profiles';
export { verifyProgram, type Verification, type StepVerdict } from './verify';
export { runOnKernel, exportC } from './kernel';
export { dumpPages, type StateRun } from './mm/dump';
export * from './uapi';
export { InputError, EnvironmentError, NotModelled } from './errors';
