import type { StoreStep } from '../../src/domain/store.js'

/** Thrown from the store's `onStep` hook: the operation stops right after `step`, as a killed process would. */
export class SimulatedCrash extends Error {
  constructor (readonly step: StoreStep) {
    super(`simulated crash right after ${step}`)
  }
}
