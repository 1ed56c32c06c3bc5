// The scenario file format (scenario-format.md): parsing and loading into a resolved Program.

export { parseScenario } from './scenario';
export { loadScenarioFile, readScenarioText, MAX_FILE_BYTES } from './load';
export { DEFAULT_KERNEL, knownKernels, pageSizeOf } from './profiles';
export { OP_NAMES } from './schema';
export * from './program';
