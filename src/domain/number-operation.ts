/**
 * What every operation on a number (assign, remove, transfer) shares: the
 * context the store builds once, the run loop that holds the number's queue
 * and starts a fresh step after a fence or a recovery, and the helpers that
 * turn the first round trip's claim touch into a claim or a refusal.
 */
import type { Document, ObjectId } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import type { StoredAssignment } from './assignments.js'
import { eventsBetween, type StoredEvent } from './change-events.js'
import type { DatabaseAvailability } from './database-availability.js'
import type { ClaimDocument, ClaimWriter, NumberClaims, TouchScope } from './number-claims.js'
import { isSameObjectId } from './number-holders.js'
import type { ClaimOutcome, NumberOwnership, RERUN } from './number-ownership.js'
import type { PerKeyQueue } from './per-key-queue.js'
import type { ChangeOptions, StoreStep } from './store-api.js'
import { backoffMs, CONFLICT, type UserWrites } from './user-writes.js'

export const ORGANIZATION_NOT_FOUND = { status: 'organization-not-found' } as const
export const ASSIGNMENT_NOT_FOUND = { status: 'assignment-not-found' } as const
export const ALREADY_HELD = { status: 'already-held' } as const
export const REMOVED = { status: 'removed' } as const
/** Runs of one operation: a rerun follows a fenced step, a step resolved in the way, or a transfer recovered. */
const MAX_RUNS = 6
/** Runs started again after a command the driver never sent (see `wasNeverSent`). */
const MAX_UNSENT_RETRIES = 2

/** What one run of an operation answers besides its result: run again, or recover a transfer first. */
export type RunOutcome = typeof RERUN | { status: 'recover', claim: ClaimDocument } | { status: 'fenced' }

/** The store's parts an operation works with (built once per store, in store.ts). */
export interface OperationContext {
  field: string
  maxNumbersPerUser: number
  claims: NumberClaims
  writes: UserWrites
  ownership: NumberOwnership
  /** Hands the events a user write recorded to the outbox, to be moved to the log. */
  recorded: (userId: ObjectId, events: StoredEvent[]) => void
  /** Runs `task` in this process's queue for the user. */
  onUser: <T>(userId: ObjectId, task: () => Promise<T>) => Promise<T>
  step: (name: StoreStep) => Promise<void>
  findOrganization: (organizationId: ObjectId) => Promise<Document | null>
  /** The given users and every holder of the number, in one query. */
  findUsersAndHolders: (phoneNumber: string, userIds: readonly ObjectId[]) => Promise<Document[]>
  /** Users read with events still in their outbox (a crash, another process): flush them. */
  noticePendingEvents: (documents: ReadonlyArray<Document | null>) => void
}

export function limitReached (context: OperationContext): { status: 'limit-reached', limit: number } {
  return { status: 'limit-reached', limit: context.maxNumbersPerUser }
}

export function pick (documents: readonly Document[], userId: ObjectId): Document | null {
  return documents.find((document) => isSameObjectId(userId, document['_id'])) ?? null
}

/** The events of one user write: one per assignment it changes. */
export function describeChanges (organizationId: ObjectId, userId: ObjectId, at: Date, change: ChangeOptions) {
  return (current: StoredAssignment[], next: StoredAssignment[]): StoredEvent[] =>
    eventsBetween({ organizationId, userId, at, actor: change.actor, requestId: change.requestId }, current, next)
}

/** The claim for this step: the touch of the first round trip when it qualified, else the slow path. */
export async function claimFor (context: OperationContext, phoneNumber: string, writer: ClaimWriter, scope: TouchScope, touched: ClaimDocument | undefined): Promise<ClaimOutcome> {
  if (touched === undefined) return await context.ownership.claimSlowly(phoneNumber, writer, scope)
  // The touch qualified, so a transfer pending on it is this process's own, left by a failure: recover it.
  if (touched.transfer !== undefined) return { status: 'recover', claim: touched }
  return { status: 'claimed', claim: touched }
}

/**
 * A refusal after the first round trip. A transfer left half done may be
 * what refuses (its second copy): it is recovered first and the operation
 * runs again. Otherwise the touch may have created or moved the claim for
 * nothing: settle it.
 */
export async function refuseAfterTouch<Refusal> (context: OperationContext, refusal: Refusal, touched: ClaimDocument | undefined, phoneNumber: string): Promise<Refusal | RunOutcome> {
  const claim = touched ?? await context.claims.read(phoneNumber)
  if (claim?.transfer !== undefined) return { status: 'recover', claim }
  if (touched !== undefined) await context.ownership.settle(phoneNumber)
  return refusal
}

/**
 * The driver labels an error `PoolRequestedRetry` when its connection pool was
 * cleared (another operation on it failed on the network) while the command
 * waited to check out a connection: the command never reached the server.
 * The driver retries such writes only on a replica set (retryable writes);
 * on a standalone server, or with `retryWrites=false`, the store does it.
 */
function wasNeverSent (error: unknown): boolean {
  // Read by shape, not `instanceof`: the host's driver may be another copy of mongodb than ours.
  const hasErrorLabel = (error as { hasErrorLabel?: unknown } | null)?.hasErrorLabel
  return typeof hasErrorLabel === 'function' && hasErrorLabel.call(error, 'PoolRequestedRetry') === true
}

export interface NumberRunnerOptions {
  claims: NumberClaims
  writes: UserWrites
  ownership: NumberOwnership
  queueByNumber: PerKeyQueue
  availability: DatabaseAvailability
}

export type NumberRunner = <Result>(phoneNumber: string, userIds: readonly ObjectId[], run: (writer: ClaimWriter) => Promise<Result | RunOutcome>) => Promise<Result | typeof CONFLICT>

/**
 * Runs an operation on one number, in this process's queue for it, once
 * per step: a run that meets a transfer left half done recovers it first;
 * a run whose step was fenced, or that had to resolve another process's
 * step, starts again with a new step. A run that throws leaves its step
 * to be fenced before the number is used again (its write may be on its way).
 * A run that threw because a command was never sent, before any user write
 * of its step was sent, is started again after that fence: every write it
 * may have made before (claim touches) belongs to the fenced step, so the
 * new run reads the number as if the failed one had never started. After
 * a user write, it throws: the change may have landed, and a new run would
 * report on the state it left (a removal would answer not found).
 */
export function createNumberRunner ({ claims, writes, ownership, queueByNumber, availability }: NumberRunnerOptions): NumberRunner {
  return async <Result>(phoneNumber: string, userIds: readonly ObjectId[], run: (writer: ClaimWriter) => Promise<Result | RunOutcome>): Promise<Result | typeof CONFLICT> => {
    const queuedAt = Date.now()
    return await queueByNumber(phoneNumber, async () => {
      availability.check(queuedAt)
      await ownership.fenceLostStep(phoneNumber)
      let unsentRetries = 0
      for (let attempt = 1; attempt <= MAX_RUNS; attempt++) {
        const writer = claims.newWriter(userIds)
        let outcome: Result | RunOutcome
        writes.watchStep(writer.id)
        try {
          outcome = await run(writer)
        } catch (error) {
          ownership.lost(phoneNumber, writer)
          const { sentUserWrite } = writes.endWatch(writer.id)
          if (sentUserWrite || !wasNeverSent(error) || unsentRetries >= MAX_UNSENT_RETRIES) throw error
          unsentRetries++
          await sleep(backoffMs(attempt))
          await ownership.fenceLostStep(phoneNumber)
          continue
        }
        writes.endWatch(writer.id)
        const status = (outcome as { status?: unknown }).status
        if (status === 'recover') await ownership.recoverTransfer((outcome as { claim: ClaimDocument }).claim)
        else if (status === 'rerun' || status === 'fenced') await sleep(backoffMs(attempt))
        else return outcome as Result
      }
      return CONFLICT
    })
  }
}
