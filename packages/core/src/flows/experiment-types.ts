/** The types the step context shares with the experiment node (experiment.ts), apart to keep imports acyclic. */

/** An arm: a variant's index, or the holdout. */
export type Arm = number | 'control';

/** What the runner knows of an experiment, passed to every step (`StepContext.experiments`). */
export type ExperimentStatus =
  | {
      decided: false;
      /** When undecided people stop waiting for a winner (epoch ms). */
      deadline?: number;
    }
  | {
      decided: true;
      winner: Arm;
      /** No significant winner by the deadline (or a sample ratio mismatch): `winner` is the default. */
      inconclusive: boolean;
      /** When it was decided (epoch ms). */
      at: number;
      reason: string;
    };
