// Runs a Program on the simulated process: each step as the system call it names.
import type { Program, StepResult } from './scenario/program';

/** A step that failed without `may_fail`: the scenario stops there. */
export interface StepFailure {
  step: number;
  message: string;
}

export interface SimulationResult {
  results: StepResult[];
  stopped?: StepFailure;
}

export function simulate(program: Program): SimulationResult {
  void program;
  throw new Error('not implemented yet');
}
