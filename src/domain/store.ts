/**
 * Phone-number assignments on raw driver collections. No Fastify here: the
 * store can be used from a worker or a script with any `Db`.
 *
 * Concurrency. An assignment rewrites the user's whole array (it may have to
 * clear another default), and the operators that could do that in place
 * (array filters, pipeline updates, $elemMatch on plain fields) are missing
 * from FerretDB 1.24 or mongo-java-server. So every write is a
 * compare-and-swap on a revision counter kept next to the array: read the
 * array and its revision, compute the new array, then `updateOne` filtered by
 * _id, organizationId and that revision. On MongoDB a concurrent writer
 * (another process included) makes the filter miss; the store re-reads and
 * tries again after a short random pause, up to `maxWriteAttempts` times, and
 * reports `conflict` (nothing written) if it never wins.
 *
 * FerretDB 1.24 (SQLite) does not evaluate an update's filter atomically with
 * its write (measured: 30 parallel CAS updates on one revision, several
 * "win"), so within one process the writes to one user are also queued
 * (per-key-queue.ts). That makes a single server correct on every backend
 * and spares MongoDB the retry storms of a hot user; across several server
 * processes the CAS alone protects, which needs a backend with atomic
 * single-document updates (MongoDB, mongo-java-server).
 *
 * Because organizationId is part of every write filter, a user moved to
 * another organization after the read is never modified.
 *
 * Ownership (one organization and one inbound route per number) is checked
 * against the user documents, read in the same round trip as a touch of the
 * number's claim (number-claims.ts), which is where two writers of one number
 * meet; number-holders.ts judges the holders. Within one process the
 * operations on one number are also queued (number first, then user).
 */
import { ObjectId, type Db, type Document } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPerKeyQueue } from './per-key-queue.js'
import {
  findEntry,
  readAssignments,
  removeAssignment,
  upsertAssignment,
  type AssignmentInput,
  type AssignmentKey,
  type StoredAssignment
} from './assignments.js'
import { createNumberClaims, type ClaimDocument, type InboundHolder } from './number-claims.js'
import { holdersOf, inboundHolders, isAssignment, isSameObjectId, outsideOrganization, type NumberHolder } from './number-holders.js'
import { createEvent, eventsBetween, type LoggedEvent, type StoredEvent } from './change-events.js'
import { createEventOutbox, readOutbox } from './event-outbox.js'
import { createEventLog } from './event-log.js'
import { createStoreReads } from './store-reads.js'

import {
  DEFAULT_STORE_OPTIONS,
  type AssignResult,
  type ChangeOptions,
  type EventFilter,
  type EventListResult,
  type EventPageRequest,
  type ClaimRepair,
  type InboundHeld,
  type MalformedField,
  type OtherOrganization,
  type PhoneNumberStore,
  type PhoneNumberStoreOptions,
  type RemoveResult,
  type StoreStep,
  type StoredCaller,
  type TransferInput,
  type TransferResult
} from './store-api.js'

export * from './store-api.js'

const ORGANIZATION_NOT_FOUND = { status: 'organization-not-found' } as const
const USER_NOT_FOUND = { status: 'user-not-found' } as const
const ASSIGNMENT_NOT_FOUND = { status: 'assignment-not-found' } as const
const ALREADY_HELD = { status: 'already-held' } as const
const CONFLICT = { status: 'conflict' } as const
const REMOVED = { status: 'removed' } as const
const DONE = { status: 'done' } as const
const ID_ONLY = { projection: { _id: 1 } } as const

/** Random pause that grows with the attempt number, so colliding writers spread out. */
function backoffMs (attempt: number): number {
  return Math.random() * Math.min(50, 2 ** attempt)
}

/** What an operation answers when a half-done transfer stands in its way. */
type PendingTransferOutcome = { status: 'recover', claim: ClaimDocument } | typeof CONFLICT

/** A claim, or why the operation may not take it. */
type ClaimOutcome =
  | { status: 'claimed', claim: ClaimDocument }
  | { status: 'recover', claim: ClaimDocument }
  | OtherOrganization
  | InboundHeld
  | typeof CONFLICT

export function createPhoneNumberStore (db: Db, options: PhoneNumberStoreOptions = {}): PhoneNumberStore {
  const field = options.phoneNumbersField ?? DEFAULT_STORE_OPTIONS.phoneNumbersField
  const revisionField = `${field}Revision`
  const maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_STORE_OPTIONS.maxWriteAttempts
  const maxNumbersPerUser = options.maxNumbersPerUser ?? DEFAULT_STORE_OPTIONS.maxNumbersPerUser
  const leaseMs = options.claimLeaseMs ?? DEFAULT_STORE_OPTIONS.claimLeaseMs
  const onStep = options.onStep
  const limitReached = { status: 'limit-reached', limit: maxNumbersPerUser } as const
  const malformedField: MalformedField = { status: 'malformed-field', field }
  const users = db.collection(options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection)
  const organizations = db.collection(options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection)
  const claims = createNumberClaims(
    db.collection<ClaimDocument>(options.claimsCollection ?? DEFAULT_STORE_OPTIONS.claimsCollection),
    { leaseMs, ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }) }
  )
  // The outbox is read with the user, so pending events another process left are flushed on the next access.
  const outboxField = `${field}Outbox`
  const userProjection = { projection: { organizationId: 1, [field]: 1, [revisionField]: 1, [outboxField]: 1 } }
  const numberField = `${field}.phoneNumber`
  const providerField = `${field}.provider`
  // Lock order: number, then user; nothing waits for a number while holding a user.
  const queueByNumber = createPerKeyQueue()
  const queueByUser = createPerKeyQueue()
  const visibilityDelayMs = options.eventVisibilityDelayMs ?? DEFAULT_STORE_OPTIONS.eventVisibilityDelayMs
  const eventsCollection = db.collection<LoggedEvent>(options.eventsCollection ?? DEFAULT_STORE_OPTIONS.eventsCollection)
  const outbox = createEventOutbox({
    users,
    events: eventsCollection,
    deliveries: options.deliveriesCollection === undefined ? undefined : db.collection<LoggedEvent & { pending: true }>(options.deliveriesCollection),
    outboxField,
    withUsers: async (userIds, task) => await withUsers(userIds, task),
    onLogged: async () => await step('events:logged'),
    afterFlush: options.onEventsLogged,
    onError: options.onBackgroundError,
    slowInsertMs: visibilityDelayMs,
    onSlowInsert: (insertMs, count) => options.onBackgroundError?.(new Error(
      `${count} change events took ${insertMs} ms to reach the log, more than eventVisibilityDelayMs (${visibilityDelayMs} ms): a reader following the log may have passed them; raise eventVisibilityDelayMs`
    ))
  })
  const eventLog = createEventLog(eventsCollection, { visibilityDelayMs })

  /** Runs `task` holding the queues of all these users (taken in one order, so two such calls never wait on each other). */
  async function withUsers<T> (userIds: readonly string[], task: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(userIds)].sort()
    const hold = async (index: number): Promise<T> => index === sorted.length ? await task() : await queueByUser(sorted[index]!, async () => await hold(index + 1))
    return await hold(0)
  }

  /** Users read with events still in their outbox (a crash, another process): flush them. */
  function noticePendingEvents (documents: ReadonlyArray<Document | null>): void {
    for (const document of documents) {
      if (document !== null && readOutbox(document[outboxField]).length > 0) outbox.noticed(document['_id'] as ObjectId)
    }
  }

  async function step (name: StoreStep): Promise<void> {
    if (onStep !== undefined) await onStep(name)
  }

  function findOrganization (organizationId: ObjectId): Promise<Document | null> {
    return organizations.findOne({ _id: organizationId }, ID_ONLY)
  }

  // Read by _id alone and compare organizationId here: FerretDB 1.24 pushes
  // only a bare {_id} filter down to SQLite and scans the collection for any
  // other. The write below still filters on organizationId.
  function findUser (userId: ObjectId): Promise<Document | null> {
    return users.findOne({ _id: userId }, userProjection)
  }

  /** The given users and every holder of the number, in one query (the index on the number serves the second half). */
  function findUsersAndHolders (phoneNumber: string, userIds: readonly ObjectId[]): Promise<Document[]> {
    return users.find({ $or: [{ _id: { $in: userIds } }, { [numberField]: phoneNumber }] }, userProjection).toArray()
  }

  function pick (documents: readonly Document[], userId: ObjectId): Document | null {
    return documents.find((document) => isSameObjectId(userId, document['_id'])) ?? null
  }

  /** The stored array of a user of that organization, or why there is none to write. */
  function readOwnArray (user: Document | null, organizationId: ObjectId): StoredAssignment[] | typeof USER_NOT_FOUND | MalformedField {
    if (user === null || !isSameObjectId(organizationId, user['organizationId'])) return USER_NOT_FOUND
    // Missing or null means no numbers yet; anything else that is not an array is other code's data.
    const stored: unknown = user[field]
    if (stored !== undefined && stored !== null && !Array.isArray(stored)) return malformedField
    return readAssignments(stored)
  }

  /**
   * The read-modify-write loop of one user: `change` gets the current array
   * and returns the array to store (`undefined`: nothing to write) with the
   * outcome to report. `firstRead` may be stale: the compare-and-swap then
   * misses and the user is read again. No write is sent after `deadline`
   * (the claim's lease, see number-claims.ts).
   *
   * Events: `describe` names the changes of the write (none for a write that
   * only undoes a change nobody was told about); they are pushed to the
   * user's outbox in the same update. Once stored, `written` gets the whole
   * outbox as this write left it (earlier pending events, then its own), in
   * order, for the caller to flush.
   */
  async function writeUser<Outcome> (
    organizationId: ObjectId,
    userId: ObjectId,
    firstRead: Document | null,
    deadline: number,
    change: (current: StoredAssignment[]) => { next: StoredAssignment[] | undefined, outcome: Outcome },
    describe: ((current: StoredAssignment[], next: StoredAssignment[]) => StoredEvent[]) | undefined,
    written: StoredEvent[] = []
  ): Promise<Outcome | typeof USER_NOT_FOUND | typeof CONFLICT | MalformedField> {
    let user = firstRead
    for (let attempt = 1; ; attempt++) {
      const current = readOwnArray(user, organizationId)
      if (!Array.isArray(current)) return current
      const { next, outcome } = change(current)
      if (next === undefined) return outcome
      if (Date.now() > deadline) return CONFLICT
      const events = describe?.(current, next) ?? []

      // A missing revision is matched with null (missing or null), then starts
      // at 1. $eq compares literally: a stored value is never read as an operator.
      const revision: unknown = user?.[revisionField] ?? null
      const nextRevision = typeof revision === 'number' ? revision + 1 : 1
      const { matchedCount } = await users.updateOne(
        { _id: userId, organizationId, [revisionField]: { $eq: revision } },
        events.length === 0
          ? { $set: { [field]: next, [revisionField]: nextRevision } }
          : { $set: { [field]: next, [revisionField]: nextRevision }, $push: { [outboxField]: { $each: events } } } as Document
      )
      if (matchedCount === 1) {
        // Events still pending from earlier writes go first: whoever flushes this user keeps their order.
        written.push(...readOutbox(user?.[outboxField]), ...events)
        return outcome
      }
      if (attempt >= maxWriteAttempts) return CONFLICT
      options.onWriteRetry?.()

      await sleep(backoffMs(attempt))
      user = await findUser(userId)
    }
  }

  /**
   * The claim for an operation whose fast `touch` collided: read the claim
   * and take it over when the users (read at `startedAt`, already checked
   * against rules 1 and 2 by the caller) no longer back it and no writer can
   * be in flight; share it when only the toucher differs.
   */
  async function claimSlowly (phoneNumber: string, organizationId: ObjectId, inbound: InboundHolder | undefined, startedAt: number, removal = false): Promise<ClaimOutcome> {
    // Claims carry the time the operation started (not the caller's `now`, which may predate a wait in the queues).
    const now = new Date(startedAt)
    for (let attempt = 1; attempt <= maxWriteAttempts; attempt++) {
      const claim = await claims.read(phoneNumber)
      if (claim === null) {
        const created = await claims.touch(phoneNumber, organizationId, inbound, now)
        if (created !== undefined) return { status: 'claimed', claim: created }
        continue
      }
      const settled = claims.isSettled(claim, startedAt)
      if (claim.transfer !== undefined) {
        if (settled) return { status: 'recover', claim }
        return CONFLICT // another process is transferring this number right now
      }
      // A removal threatens no rule: it only marks the claim as touched (shared
      // while another process may be writing), so that a transfer meets it.
      // It never moves the claim: it has not checked who holds the number.
      if (removal) {
        const marked = await claims.replace(claim, claim.organizationId, undefined, now, settled)
        if (marked !== undefined) return { status: 'claimed', claim: marked }
        await sleep(backoffMs(attempt))
        continue
      }
      const otherOrganization = !isSameObjectId(organizationId, claim.organizationId)
      const otherRoute = inbound !== undefined && claim.inbound != null &&
        !(isSameObjectId(inbound.userId, claim.inbound.userId) && inbound.provider === claim.inbound.provider)
      if ((otherOrganization || otherRoute) && !settled) {
        // Another process claimed it within the lease and may be writing it now.
        return otherOrganization ? { status: 'other-organization', holders: [] } : { status: 'inbound-held', holders: [] }
      }
      // Taking over an unbacked claim needs it settled; only sharing it otherwise.
      const replaced = await claims.replace(claim, organizationId, otherOrganization ? inbound ?? null : inbound, now, settled)
      if (replaced !== undefined) return { status: 'claimed', claim: replaced }
      await sleep(backoffMs(attempt))
    }
    return CONFLICT
  }

  /**
   * After a removal, a failed write or a route switched off: drop the claim
   * when no user holds the number any more, or its inbound route when no user
   * backs it, provided no writer can be in flight. Best effort: a claim left
   * stale is repaired by the next operation on the number.
   */
  async function settle (phoneNumber: string, startedAt: number): Promise<ClaimRepair['claim']> {
    const [claim, holderDocuments] = await Promise.all([
      claims.read(phoneNumber),
      users.find({ [numberField]: phoneNumber }, { projection: { organizationId: 1, [field]: 1 } }).toArray()
    ])
    if (claim === null) return 'none'
    if (claim.transfer !== undefined || !claims.isSettled(claim, startedAt)) return 'in-flight'
    const holders = holdersOf(holderDocuments, field, phoneNumber)
    // No holder in the claim's organization (none at all, or only others wrote
    // it there): the claim stands for nothing; the next writer creates a fresh one.
    if (outsideOrganization(holders, claim.organizationId).length === holders.length) {
      return await claims.release(claim) ? 'released' : 'in-flight'
    }
    const route = claim.inbound
    if (route != null && !inboundHolders(holders).some((holder) => isAssignment(holder, route.userId, route.provider))) {
      return await claims.clearInbound(claim) ? 'route-cleared' : 'in-flight'
    }
    return 'kept'
  }

  async function repairClaim (phoneNumber: string): Promise<ClaimRepair> {
    return await queueByNumber(phoneNumber, async () => {
      const startedAt = Date.now()
      const claim = await claims.read(phoneNumber)
      let transfer: ClaimRepair['transfer'] = 'none'
      if (claim?.transfer !== undefined) {
        if (!claims.isSettled(claim, startedAt)) return { transfer: 'in-flight', claim: 'in-flight' }
        transfer = claim.transfer.committed ? 'rolled-forward' : 'rolled-back'
        await recoverTransfer(claim)
      }
      return { transfer, claim: await settle(phoneNumber, startedAt) }
    })
  }

  /** Finishes (past the commit point) or undoes (before it) a transfer a crash or a timeout left half done. */
  async function recoverTransfer (found: ClaimDocument): Promise<void> {
    const startedAt = Date.now()
    // Take the claim first (compare-and-swap on what was read), so two processes never recover one transfer at once.
    const claim = await claims.replace(found, found.organizationId, undefined, new Date(startedAt), true)
    const transfer = claim?.transfer
    if (claim === undefined || transfer === undefined) return
    const key = { provider: transfer.provider, phoneNumber: claim._id }
    const [userId, shouldRemove] = transfer.committed
      // Rolled forward: the source's copy goes, as the transfer would have done.
      ? [transfer.fromUserId, (entry: StoredAssignment) => entry !== undefined]
      // Rolled back: the target's copy goes, unless someone changed it since.
      : [transfer.toUserId, (entry: StoredAssignment) => entry.updatedAt instanceof Date && entry.updatedAt.getTime() === transfer.at.getTime()]
    // Rolled forward, the source's removal carries the transfer's event (recorded at the commit); a roll-back undoes a change no event announced.
    const event = transfer.committed ? transfer.event : undefined
    const written: StoredEvent[] = []
    const outcome = await queueByUser(userId.toHexString(), async () =>
      await writeUser(claim.organizationId, userId, await findUser(userId), startedAt + leaseMs / 2, (current) => {
        const entry = findEntry(current, key)
        const next = entry !== undefined && shouldRemove(entry) ? removeAssignment(current, key) : undefined
        return { next, outcome: DONE }
      }, event === undefined ? undefined : () => [event], written))
    outbox.recorded(userId, written)
    // The copy is gone (or its user is, or holds no array any more); a conflict leaves the record for the next try.
    if (outcome.status !== 'conflict') await claims.endTransfer(claim._id, transfer)
  }

  /**
   * A transfer left half done on the number's claim (as touched, or read now):
   * `recover` when it is settled (this process's own, or past the lease),
   * `conflict` while another process may still be running it.
   */
  async function pendingTransfer (touched: ClaimDocument | undefined, phoneNumber: string, startedAt: number): Promise<PendingTransferOutcome | undefined> {
    return pendingTransferOf(touched ?? await claims.read(phoneNumber), startedAt)
  }

  function pendingTransferOf (claim: ClaimDocument | null, startedAt: number): PendingTransferOutcome | undefined {
    if (claim?.transfer === undefined) return undefined
    return claims.isSettled(claim, startedAt) ? { status: 'recover', claim } : CONFLICT
  }

  /**
   * A refusal after the first round trip. A transfer left half done may be
   * what refuses (its second copy): it is recovered first and the operation
   * runs again. Otherwise the touch may have created or moved the claim for
   * nothing: settle it.
   */
  async function refuseAfterTouch<Refusal> (refusal: Refusal, touched: ClaimDocument | undefined, phoneNumber: string, startedAt: number): Promise<Refusal | PendingTransferOutcome> {
    const pending = await pendingTransfer(touched, phoneNumber, startedAt)
    if (pending !== undefined) return pending
    if (touched !== undefined) await settle(phoneNumber, startedAt)
    return refusal
  }

  /** Runs `operation` and, when it meets a transfer left half done, recovers it and runs it once more. */
  async function withRecovery<Result> (operation: () => Promise<Result | { status: 'recover', claim: ClaimDocument }>): Promise<Result | typeof CONFLICT> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await operation()
      if ((result as { status?: unknown }).status !== 'recover') return result as Result
      await recoverTransfer((result as { claim: ClaimDocument }).claim)
    }
    return CONFLICT
  }

  async function claimFor (
    phoneNumber: string, organizationId: ObjectId, inbound: InboundHolder | undefined, startedAt: number, touched: ClaimDocument | undefined
  ): Promise<ClaimOutcome> {
    if (touched === undefined) return await claimSlowly(phoneNumber, organizationId, inbound, startedAt)
    // Fast path taken: the claim was ours to touch, so a pending transfer on it is settled too.
    if (touched.transfer !== undefined) return { status: 'recover', claim: touched }
    return { status: 'claimed', claim: touched }
  }

  /** Rules 1 and 2 against the users as read; `undefined` when they allow the assignment. */
  function ruleViolation (holders: readonly NumberHolder[], organizationId: ObjectId, route: InboundHolder | undefined): OtherOrganization | InboundHeld | undefined {
    const outside = outsideOrganization(holders, organizationId)
    if (outside.length > 0) return { status: 'other-organization', holders: outside }
    if (route === undefined) return undefined
    const otherRoutes = inboundHolders(holders).filter((holder) => !isAssignment(holder, route.userId, route.provider))
    return otherRoutes.length > 0 ? { status: 'inbound-held', holders: otherRoutes } : undefined
  }

  async function assignOnce (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions): Promise<AssignResult | { status: 'recover', claim: ClaimDocument }> {
    const now = change.now ?? new Date()
    const startedAt = Date.now()
    const { phoneNumber } = input
    const route = (input.isInboundEnabled ?? true) ? { userId, provider: input.provider } : undefined
    // One round trip: the organization, the user with every holder of the number, and the claim.
    const [organization, documents, touched] = await Promise.all([
      findOrganization(organizationId),
      findUsersAndHolders(phoneNumber, [userId]),
      claims.touch(phoneNumber, organizationId, route, new Date(startedAt))
    ])
    noticePendingEvents(documents)
    const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | PendingTransferOutcome> => await refuseAfterTouch(refusal, touched, phoneNumber, startedAt)
    if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
    const user = pick(documents, userId)
    const current = readOwnArray(user, organizationId)
    if (!Array.isArray(current)) return await refuse(current)
    if (current.length >= maxNumbersPerUser && findEntry(current, input) === undefined) return await refuse(limitReached)
    const violation = ruleViolation(holdersOf(documents, field, phoneNumber), organizationId, route)
    if (violation !== undefined) return await refuse(violation)

    const claimed = await claimFor(phoneNumber, organizationId, route, startedAt, touched)
    if (claimed.status !== 'claimed') return claimed
    await step('assign:claimed')

    const written: StoredEvent[] = []
    const outcome = await writeUser<AssignResult>(organizationId, userId, user, startedAt + leaseMs / 2, (array) => {
      if (array.length >= maxNumbersPerUser && findEntry(array, input) === undefined) return { next: undefined, outcome: limitReached }
      const { next, assignment } = upsertAssignment(array, input, now)
      return { next, outcome: { status: 'assigned', assignment } }
    }, describeChanges(organizationId, userId, now, change), written)
    if (outcome.status !== 'assigned') {
      await settle(phoneNumber, startedAt)
      return outcome
    }
    await step('assign:user-written')
    outbox.recorded(userId, written)
    const claimedRoute = claimed.claim.inbound
    if (route === undefined && claimedRoute != null && isSameObjectId(userId, claimedRoute.userId) && claimedRoute.provider === input.provider) {
      await settle(phoneNumber, startedAt) // the route was switched off: free it for another assignment
    }
    return outcome
  }

  async function assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions = {}): Promise<AssignResult> {
    return await queueByNumber(input.phoneNumber, async () =>
      await withRecovery(async () => await queueByUser(userId.toHexString(), async () => await assignOnce(organizationId, userId, input, change))))
  }

  async function remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions = {}): Promise<RemoveResult> {
    return await queueByNumber(key.phoneNumber, async () =>
      await withRecovery(async () => await queueByUser(userId.toHexString(), async () => await removeOnce(organizationId, userId, key, change))))
  }

  /** The events of one user write: one per assignment it changes. */
  function describeChanges (organizationId: ObjectId, userId: ObjectId, at: Date, change: ChangeOptions) {
    return (current: StoredAssignment[], next: StoredAssignment[]): StoredEvent[] =>
      eventsBetween({ organizationId, userId, at, actor: change.actor, requestId: change.requestId }, current, next)
  }

  async function removeOnce (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions): Promise<RemoveResult | PendingTransferOutcome> {
    const startedAt = Date.now()
    const { phoneNumber } = key
    // One round trip: the organization, the user, and the claim touched, so
    // that a transfer in another process sees this removal coming (and this
    // removal sees a transfer left half done).
    const [organization, user, touched] = await Promise.all([
      findOrganization(organizationId),
      findUser(userId),
      claims.touch(phoneNumber, organizationId, undefined, new Date(startedAt))
    ])
    if (organization === null) {
      if (touched !== undefined) await settle(phoneNumber, startedAt)
      return ORGANIZATION_NOT_FOUND
    }
    const claimed = touched === undefined
      ? await claimSlowly(phoneNumber, organizationId, undefined, startedAt, true)
      : await claimFor(phoneNumber, organizationId, undefined, startedAt, touched)
    if (claimed.status === 'recover' || claimed.status === 'conflict') return claimed
    noticePendingEvents([user])
    const written: StoredEvent[] = []
    const outcome = await writeUser<RemoveResult>(organizationId, userId, user, startedAt + leaseMs / 2, (current) => {
      const next = removeAssignment(current, key)
      return next === undefined ? { next, outcome: ASSIGNMENT_NOT_FOUND } : { next, outcome: REMOVED }
    }, describeChanges(organizationId, userId, change.now ?? new Date(), change), written)
    if (outcome.status === 'removed') {
      await step('remove:user-written')
      outbox.recorded(userId, written)
    }
    // Whatever happened, the claim may stand for nothing now.
    await settle(phoneNumber, startedAt)
    return outcome
  }

  /** Says which of the transfer's users a missing-user failure is about. */
  function whose (failure: typeof USER_NOT_FOUND | MalformedField, which: 'from' | 'to'): MalformedField | { status: 'user-not-found', which: 'from' | 'to' } {
    return failure.status === 'user-not-found' ? { status: 'user-not-found', which } : failure
  }

  async function transferOnce (organizationId: ObjectId, input: TransferInput, change: ChangeOptions): Promise<TransferResult | { status: 'recover', claim: ClaimDocument }> {
    const now = change.now ?? new Date()
    const startedAt = Date.now()
    const deadline = startedAt + leaseMs / 2
    const { phoneNumber, provider, fromUserId, toUserId } = input
    const key = { provider, phoneNumber }
    const [organization, documents, touched] = await Promise.all([
      findOrganization(organizationId),
      findUsersAndHolders(phoneNumber, [fromUserId, toUserId]),
      claims.touch(phoneNumber, organizationId, undefined, new Date(startedAt))
    ])
    noticePendingEvents(documents)
    const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | PendingTransferOutcome> => await refuseAfterTouch(refusal, touched, phoneNumber, startedAt)
    if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
    const fromUser = pick(documents, fromUserId)
    const toUser = pick(documents, toUserId)
    const sourceArray = readOwnArray(fromUser, organizationId)
    const targetArray = readOwnArray(toUser, organizationId)
    if (!Array.isArray(sourceArray)) return await refuse(whose(sourceArray, 'from'))
    if (!Array.isArray(targetArray)) return await refuse(whose(targetArray, 'to'))
    const source = findEntry(sourceArray, key)
    if (source === undefined) return await refuse(ASSIGNMENT_NOT_FOUND)
    if (findEntry(targetArray, key) !== undefined) return await refuse(ALREADY_HELD)
    const routesInbound = source.isInboundEnabled === true
    // The moved entry may route inbound only if nothing but the source does.
    const others = holdersOf(documents, field, phoneNumber).filter((holder) => !isAssignment(holder, fromUserId, provider))
    const violation = ruleViolation(others, organizationId, routesInbound ? { userId: toUserId, provider } : undefined)
    if (violation !== undefined) return await refuse(violation)

    const claimed = await claimFor(phoneNumber, organizationId, undefined, startedAt, touched)
    if (claimed.status !== 'claimed') return claimed
    // A transfer moves what it read: it needs the number to itself, with no
    // other process's write on its way (a shared claim says there may be one).
    if (claimed.claim.touchedBy !== claims.instanceId) return { status: 'busy', retryAfterMs: leaseMs }
    const transfer = await claims.beginTransfer(claimed.claim, { at: now, provider, fromUserId, toUserId }, routesInbound, new Date(startedAt))
    if (transfer === undefined) return CONFLICT
    await step('transfer:begun')

    const moved: AssignmentInput = {
      provider,
      phoneNumber,
      isDefault: input.isDefault ?? source.isDefault,
      isInboundEnabled: routesInbound,
      label: input.label ?? (typeof source.label === 'string' ? source.label : undefined)
    }
    // The target's write announces only the defaults it clears; the move itself is announced by the source's removal, past the commit point.
    const scope = { organizationId, userId: toUserId, at: now, actor: change.actor, requestId: change.requestId }
    const targetEvents: StoredEvent[] = []
    const written = await queueByUser(toUserId.toHexString(), async () =>
      await writeUser<TransferResult>(organizationId, toUserId, toUser, deadline, (array) => {
        if (findEntry(array, key) !== undefined) return { next: undefined, outcome: ALREADY_HELD }
        if (array.length >= maxNumbersPerUser) return { next: undefined, outcome: limitReached }
        const { next, assignment } = upsertAssignment(array, moved, now)
        return { next, outcome: { status: 'transferred', assignment } }
      }, (current, next) => eventsBetween(scope, current, next).filter((event) => event.type !== 'assigned'), targetEvents))
    if (written.status !== 'transferred') {
      await claims.endTransfer(phoneNumber, transfer) // nothing was written to either user
      return written.status === 'user-not-found' ? { status: 'user-not-found', which: 'to' } : written
    }
    await step('transfer:target-written')
    outbox.recorded(toUserId, targetEvents)

    const transferred = createEvent(scope, { type: 'transferred', before: source, after: written.assignment, fromUserId })
    if (!await claims.commitTransfer(phoneNumber, transfer, routesInbound, transferred)) {
      // Another process found it past the lease and undid it.
      return CONFLICT
    }
    await step('transfer:committed')

    // Past the commit point the transfer has happened: if the source's copy
    // cannot go now (the deadline passed, the user kept changing), the claim
    // keeps the record and the next operation on the number removes it.
    const sourceEvents: StoredEvent[] = []
    const sourceRemoved = await queueByUser(fromUserId.toHexString(), async () =>
      await writeUser(organizationId, fromUserId, await findUser(fromUserId), deadline, (array) => ({ next: removeAssignment(array, key), outcome: REMOVED }), () => [transferred], sourceEvents))
    if (sourceRemoved.status !== 'removed') return written
    await step('transfer:source-removed')
    outbox.recorded(fromUserId, sourceEvents)
    await claims.endTransfer(phoneNumber, transfer)
    return written
  }

  async function transfer (organizationId: ObjectId, input: TransferInput, change: ChangeOptions = {}): Promise<TransferResult> {
    return await queueByNumber(input.phoneNumber, async () => await withRecovery(async () => await transferOnce(organizationId, input, change)))
  }

  const reads = createStoreReads({ users, claims, field, findOrganization })

  // Everything but the (possibly large) numbers array and its revision.
  const callerProjection = { projection: { [field]: 0, [revisionField]: 0 } }

  async function findCaller (userId: string): Promise<StoredCaller | undefined> {
    if (!ObjectId.isValid(userId)) return undefined
    const caller = await users.findOne({ _id: new ObjectId(userId) }, callerProjection)
    return caller === null ? undefined : caller
  }

  async function listEvents (organizationId: ObjectId, filter: EventFilter, request: EventPageRequest): Promise<EventListResult> {
    const [organization, page] = await Promise.all([findOrganization(organizationId), eventLog.page(organizationId, filter, request)])
    return organization === null ? ORGANIZATION_NOT_FOUND : page
  }

  async function ensureIndexes (): Promise<void> {
    await Promise.all([
      eventLog.ensureIndexes(),
      // Finds the users whose outbox still holds events (startup and periodic sweeps).
      users.createIndex({ [`${outboxField}._id`]: 1 }, { name: `${outboxField}__id`, sparse: true }),
      // Org-scoped listing in its order (pages start at a user _id) and the organizationId part of every write filter.
      users.createIndex({ organizationId: 1, _id: 1 }, { name: 'organizationId_1__id_1' }),
      // Inbound routing and the ownership rules: who holds a number (of a provider).
      users.createIndex({ [numberField]: 1, [providerField]: 1 }, { name: `${field}_phoneNumber_provider` })
    ])
  }

  return {
    assign,
    remove,
    transfer,
    list: reads.list,
    listEvents,
    flushPendingEvents: outbox.sweep,
    eventsFlushed: outbox.idle,
    eventBacklog: outbox.backlog,
    expireEvents: eventLog.expire,
    findInboundRoute: reads.findInboundRoute,
    findHolder: reads.findHolder,
    findCaller,
    repairClaim,
    ensureIndexes
  }
}
