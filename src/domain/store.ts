/**
 * Phone-number assignments on raw driver collections. No Fastify here: the
 * store can be used from a worker or a script with any `Db`.
 *
 * Every change of a user's array is a revision compare-and-swap belonging to
 * a step (user-writes.ts). Ownership (one organization and one inbound route
 * per number) is judged on the user documents, read in the same round trip as
 * the touch that records the step on the number's claim (number-claims.ts),
 * which is where two writers of one number meet; number-ownership.ts resolves
 * another process's step there without waiting for a lease.
 *
 * FerretDB 1.24 (SQLite) does not evaluate an update's filter atomically with
 * its write (measured: 30 parallel CAS updates on one revision, several
 * "win"), so within one process the work on one number and on one user is
 * also queued (per-key-queue.ts; number first, then user). That makes a
 * single server correct on every backend and spares MongoDB the retry storms
 * of a hot user; across several server processes the compare-and-swap alone
 * protects, which needs a backend with atomic single-document updates
 * (MongoDB, mongo-java-server).
 */
import { ObjectId, type Db, type Document } from 'mongodb'
import { setTimeout as sleep } from 'node:timers/promises'
import { createPerKeyQueue } from './per-key-queue.js'
import {
  findEntry,
  removeAssignment,
  upsertAssignment,
  type AssignmentInput,
  type AssignmentKey,
  type StoredAssignment
} from './assignments.js'
import { createNumberClaims, type ClaimDocument, type ClaimWriter, type TouchScope } from './number-claims.js'
import { holdersOf, isAssignment, isSameObjectId } from './number-holders.js'
import { createEvent, eventsBetween, type LoggedEvent, type StoredEvent } from './change-events.js'
import { createEventOutbox, readOutbox } from './event-outbox.js'
import { createEventLog } from './event-log.js'
import { createChangeFeed } from './change-feed.js'
import { createStoreReads } from './store-reads.js'
import { backoffMs, CONFLICT, createUserWrites } from './user-writes.js'
import { watchAvailability } from './database-availability.js'
import { createNumberOwnership, RERUN, ruleViolation, type ClaimOutcome } from './number-ownership.js'

import {
  DEFAULT_STORE_OPTIONS,
  type AssignResult,
  type ChangeOptions,
  type EventFilter,
  type EventListResult,
  type EventPageRequest,
  type ClaimRepair,
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
const ASSIGNMENT_NOT_FOUND = { status: 'assignment-not-found' } as const
const ALREADY_HELD = { status: 'already-held' } as const
const REMOVED = { status: 'removed' } as const
const ID_ONLY = { projection: { _id: 1 } } as const
/** Runs of one operation: a rerun follows a fenced step, a step resolved in the way, or a transfer recovered. */
const MAX_RUNS = 6

/** What one run of an operation answers besides its result: run again, or recover a transfer first. */
type RunOutcome = typeof RERUN | { status: 'recover', claim: ClaimDocument } | { status: 'fenced' }

export function createPhoneNumberStore (db: Db, options: PhoneNumberStoreOptions = {}): PhoneNumberStore {
  const field = options.phoneNumbersField ?? DEFAULT_STORE_OPTIONS.phoneNumbersField
  const revisionField = `${field}Revision`
  const maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_STORE_OPTIONS.maxWriteAttempts
  const maxNumbersPerUser = options.maxNumbersPerUser ?? DEFAULT_STORE_OPTIONS.maxNumbersPerUser
  const onStep = options.onStep
  const limitReached = { status: 'limit-reached', limit: maxNumbersPerUser } as const
  const users = db.collection(options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection)
  const organizations = db.collection(options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection)
  const claims = createNumberClaims(
    db.collection<ClaimDocument>(options.claimsCollection ?? DEFAULT_STORE_OPTIONS.claimsCollection),
    { instanceId: options.instanceId }
  )
  const writes = createUserWrites({ users, field, maxWriteAttempts, onWriteRetry: options.onWriteRetry })
  // The outbox is read with the user, so pending events another process left are flushed on the next access.
  const outboxField = `${field}Outbox`
  const numberField = `${field}.phoneNumber`
  const providerField = `${field}.provider`
  // Lock order: number, then user; nothing waits for a number while holding a user.
  const queueByNumber = createPerKeyQueue()
  const queueByUser = createPerKeyQueue()
  // While the driver knows no server is selectable, work that waited in a queue answers at once.
  const availability = watchAvailability(db)
  const onUser = async <T>(userId: ObjectId, task: () => Promise<T>): Promise<T> => await queueByUser(userId.toHexString(), async () => {
    availability.check()
    return await task()
  })
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
  const changeFeed = createChangeFeed(eventsCollection)
  const ownership = createNumberOwnership({
    users,
    field,
    claims,
    writes,
    maxWriteAttempts,
    inFlightGraceMs: options.inFlightGraceMs ?? DEFAULT_STORE_OPTIONS.inFlightGraceMs,
    onUser,
    recorded: (userId, events) => outbox.recorded(userId, events)
  })

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

  /** The given users and every holder of the number, in one query (the index on the number serves the second half). */
  function findUsersAndHolders (phoneNumber: string, userIds: readonly ObjectId[]): Promise<Document[]> {
    return users.find({ $or: [{ _id: { $in: userIds } }, { [numberField]: phoneNumber }] }, writes.projection).toArray()
  }

  function pick (documents: readonly Document[], userId: ObjectId): Document | null {
    return documents.find((document) => isSameObjectId(userId, document['_id'])) ?? null
  }

  /**
   * Runs an operation on one number, in this process's queue for it, once
   * per step: a run that meets a transfer left half done recovers it first;
   * a run whose step was fenced, or that had to resolve another process's
   * step, starts again with a new step. A run that throws leaves its step
   * to be fenced before the number is used again (its write may be on its way).
   */
  async function onNumber<Result> (phoneNumber: string, userIds: readonly ObjectId[], run: (writer: ClaimWriter) => Promise<Result | RunOutcome>): Promise<Result | typeof CONFLICT> {
    return await queueByNumber(phoneNumber, async () => {
      availability.check()
      await ownership.fenceLostStep(phoneNumber)
      for (let attempt = 1; attempt <= MAX_RUNS; attempt++) {
        const writer = claims.newWriter(userIds)
        let outcome: Result | RunOutcome
        try {
          outcome = await run(writer)
        } catch (error) {
          ownership.lost(phoneNumber, writer)
          throw error
        }
        const status = (outcome as { status?: unknown }).status
        if (status === 'recover') await ownership.recoverTransfer((outcome as { claim: ClaimDocument }).claim)
        else if (status === 'rerun' || status === 'fenced') await sleep(backoffMs(attempt))
        else return outcome as Result
      }
      return CONFLICT
    })
  }

  /** The claim for this step: the touch of the first round trip when it qualified, else the slow path. */
  async function claimFor (phoneNumber: string, writer: ClaimWriter, scope: TouchScope, touched: ClaimDocument | undefined): Promise<ClaimOutcome> {
    if (touched === undefined) return await ownership.claimSlowly(phoneNumber, writer, scope)
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
  async function refuseAfterTouch<Refusal> (refusal: Refusal, touched: ClaimDocument | undefined, phoneNumber: string): Promise<Refusal | RunOutcome> {
    const claim = touched ?? await claims.read(phoneNumber)
    if (claim?.transfer !== undefined) return { status: 'recover', claim }
    if (touched !== undefined) await ownership.settle(phoneNumber)
    return refusal
  }

  /** The events of one user write: one per assignment it changes. */
  function describeChanges (organizationId: ObjectId, userId: ObjectId, at: Date, change: ChangeOptions) {
    return (current: StoredAssignment[], next: StoredAssignment[]): StoredEvent[] =>
      eventsBetween({ organizationId, userId, at, actor: change.actor, requestId: change.requestId }, current, next)
  }

  async function assignOnce (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions, writer: ClaimWriter): Promise<AssignResult | RunOutcome> {
    const now = change.now ?? new Date()
    const { phoneNumber } = input
    const route = (input.isInboundEnabled ?? true) ? { userId, provider: input.provider } : undefined
    const owning: TouchScope = { organizationId, owning: true, inbound: route }
    // One round trip: the organization, the user with every holder of the number, and the claim.
    const [organization, documents, touched] = await Promise.all([
      findOrganization(organizationId),
      findUsersAndHolders(phoneNumber, [userId]),
      claims.touch(phoneNumber, writer, owning)
    ])
    noticePendingEvents(documents)
    const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | RunOutcome> => await refuseAfterTouch(refusal, touched, phoneNumber)
    if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
    const user = pick(documents, userId)
    const current = writes.readOwnArray(user, organizationId)
    if (!Array.isArray(current)) return await refuse(current)
    // Updating an entry the user holds adds no holder: only its route is judged (other code may have put the number in two organizations).
    const ownEntry = findEntry(current, input) !== undefined
    if (current.length >= maxNumbersPerUser && !ownEntry) return await refuse(limitReached)
    const violation = ruleViolation(holdersOf(documents, field, phoneNumber), ownEntry ? undefined : organizationId, route)
    if (violation !== undefined) return await refuse(violation)

    const claimed = await claimFor(phoneNumber, writer, ownEntry ? { organizationId, owning: false, inbound: route } : owning, touched)
    if (claimed.status !== 'claimed') return claimed
    await step('assign:claimed')

    const written: StoredEvent[] = []
    const outcome = await writes.writeUser<AssignResult | typeof RERUN>(organizationId, userId, user, writer.id, (array) => {
      const holds = findEntry(array, input) !== undefined
      // The entry went since the first read: a new holder now, to be judged again.
      if (ownEntry && !holds) return { next: undefined, outcome: RERUN }
      if (array.length >= maxNumbersPerUser && !holds) return { next: undefined, outcome: limitReached }
      const { next, assignment } = upsertAssignment(array, input, now)
      return { next, outcome: { status: 'assigned', assignment } }
    }, describeChanges(organizationId, userId, now, change), written)
    if (outcome.status !== 'assigned') {
      await ownership.settle(phoneNumber)
      return outcome
    }
    await step('assign:user-written')
    outbox.recorded(userId, written)
    const claimedRoute = claimed.claim.inbound
    if (route === undefined && claimedRoute != null && isSameObjectId(userId, claimedRoute.userId) && claimedRoute.provider === input.provider) {
      await ownership.settle(phoneNumber) // the route was switched off: free it for another assignment
    }
    return outcome
  }

  async function assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions = {}): Promise<AssignResult> {
    // The whole run holds the user's queue: its first read is then fresh, and queued writes to one user do not miss.
    return await onNumber(input.phoneNumber, [userId], async (writer) => await onUser(userId, async () => await assignOnce(organizationId, userId, input, change, writer)))
  }

  async function removeOnce (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions, writer: ClaimWriter): Promise<RemoveResult | RunOutcome> {
    const { phoneNumber } = key
    // A removal adds no holder: it records its step on the claim (so a
    // transfer in another process fences it rather than copy what it removes)
    // whatever organization the claim names.
    const scope: TouchScope = { organizationId, owning: false }
    const [organization, user, touched] = await Promise.all([
      findOrganization(organizationId),
      writes.findUser(userId),
      claims.touch(phoneNumber, writer, scope)
    ])
    if (organization === null) {
      if (touched !== undefined) await ownership.settle(phoneNumber)
      return ORGANIZATION_NOT_FOUND
    }
    const claimed = await claimFor(phoneNumber, writer, scope, touched)
    if (claimed.status !== 'claimed') return claimed as RunOutcome | typeof CONFLICT
    noticePendingEvents([user])
    const written: StoredEvent[] = []
    const outcome = await writes.writeUser<RemoveResult>(organizationId, userId, user, writer.id, (current) => {
      const next = removeAssignment(current, key)
      return next === undefined ? { next, outcome: ASSIGNMENT_NOT_FOUND } : { next, outcome: REMOVED }
    }, describeChanges(organizationId, userId, change.now ?? new Date(), change), written)
    if (outcome.status === 'removed') {
      await step('remove:user-written')
      outbox.recorded(userId, written)
    }
    // Whatever happened, the claim may stand for nothing now.
    await ownership.settle(phoneNumber)
    return outcome
  }

  async function remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions = {}): Promise<RemoveResult> {
    return await onNumber(key.phoneNumber, [userId], async (writer) => await onUser(userId, async () => await removeOnce(organizationId, userId, key, change, writer)))
  }

  /** Says which of the transfer's users a missing-user failure is about. */
  function whose<Failure extends { status: string }> (failure: Failure, which: 'from' | 'to'): Exclude<Failure, { status: 'user-not-found' }> | { status: 'user-not-found', which: 'from' | 'to' } {
    return failure.status === 'user-not-found' ? { status: 'user-not-found', which } : failure as Exclude<Failure, { status: 'user-not-found' }>
  }

  async function transferOnce (organizationId: ObjectId, input: TransferInput, change: ChangeOptions, writer: ClaimWriter): Promise<TransferResult | RunOutcome> {
    const now = change.now ?? new Date()
    const { phoneNumber, provider, fromUserId, toUserId } = input
    const key = { provider, phoneNumber }
    const scope: TouchScope = { organizationId, owning: true }
    const [organization, documents, touched] = await Promise.all([
      findOrganization(organizationId),
      findUsersAndHolders(phoneNumber, [fromUserId, toUserId]),
      claims.touch(phoneNumber, writer, scope)
    ])
    noticePendingEvents(documents)
    const refuse = async <Refusal>(refusal: Refusal): Promise<Refusal | RunOutcome> => await refuseAfterTouch(refusal, touched, phoneNumber)
    if (organization === null) return await refuse(ORGANIZATION_NOT_FOUND)
    const fromUser = pick(documents, fromUserId)
    const toUser = pick(documents, toUserId)
    const sourceArray = writes.readOwnArray(fromUser, organizationId)
    const targetArray = writes.readOwnArray(toUser, organizationId)
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

    const claimed = await claimFor(phoneNumber, writer, scope, touched)
    if (claimed.status !== 'claimed') return claimed
    // The claim's slot holds this step: every other step is resolved, so the users as read are the whole truth.
    const transfer = await claims.beginTransfer(claimed.claim, { at: now, provider, fromUserId, toUserId }, routesInbound)
    if (transfer === undefined) return RERUN
    await step('transfer:begun')

    const moved: AssignmentInput = {
      provider,
      phoneNumber,
      isDefault: input.isDefault ?? source.isDefault,
      isInboundEnabled: routesInbound,
      label: input.label ?? (typeof source.label === 'string' ? source.label : undefined)
    }
    // The target's write announces only the defaults it clears; the move itself is announced by the source's removal, past the commit point.
    const scopeOfEvents = { organizationId, userId: toUserId, at: now, actor: change.actor, requestId: change.requestId }
    const targetEvents: StoredEvent[] = []
    const written = await onUser(toUserId, async () =>
      await writes.writeUser<TransferResult>(organizationId, toUserId, toUser, writer.id, (array) => {
        if (findEntry(array, key) !== undefined) return { next: undefined, outcome: ALREADY_HELD }
        if (array.length >= maxNumbersPerUser) return { next: undefined, outcome: limitReached }
        const { next, assignment } = upsertAssignment(array, moved, now)
        return { next, outcome: { status: 'transferred', assignment } }
      }, (current, next) => eventsBetween(scopeOfEvents, current, next).filter((event) => event.type !== 'assigned'), targetEvents))
    if (written.status === 'fenced') return written // another process took the number over and undoes this transfer
    if (written.status !== 'transferred') {
      await claims.endTransfer(phoneNumber, transfer) // nothing was written to either user
      return whose(written, 'to')
    }
    await step('transfer:target-written')
    outbox.recorded(toUserId, targetEvents)

    // The first read may predate a removal of the source that finished (and released the claim)
    // before this step was recorded: read the source again, now that any later writer must fence
    // this step first. Its entry gone, the copy is undone and the transfer judged again.
    const sourceNow = await writes.findUser(fromUserId)
    const sourceEntries = writes.readOwnArray(sourceNow, organizationId)
    if (!Array.isArray(sourceEntries) || findEntry(sourceEntries, key) === undefined) {
      await onUser(toUserId, async () => await writes.writeUser(organizationId, toUserId, await writes.findUser(toUserId), writer.id, (array) => {
        const copy = findEntry(array, key)
        const own = copy !== undefined && copy.updatedAt instanceof Date && copy.updatedAt.getTime() === now.getTime()
        return { next: own ? removeAssignment(array, key) : undefined, outcome: REMOVED }
      }, undefined))
      await claims.endTransfer(phoneNumber, transfer)
      return RERUN
    }

    const transferred = createEvent(scopeOfEvents, { type: 'transferred', before: source, after: written.assignment, fromUserId })
    // Another process took the slot over before the commit: it undoes the target's copy.
    if (!await claims.commitTransfer(phoneNumber, transfer, routesInbound, transferred)) return { status: 'fenced' }
    await step('transfer:committed')

    // Past the commit point the transfer has happened: if the source's copy
    // cannot go now (the user kept changing, or another process fenced this
    // step to finish it), the claim keeps the record and whoever meets it next
    // removes the copy.
    const sourceEvents: StoredEvent[] = []
    const sourceRemoved = await onUser(fromUserId, async () =>
      await writes.writeUser(organizationId, fromUserId, sourceNow, writer.id, (array) => ({ next: removeAssignment(array, key), outcome: REMOVED }), () => [transferred], sourceEvents))
    if (sourceRemoved.status !== 'removed') return written
    await step('transfer:source-removed')
    outbox.recorded(fromUserId, sourceEvents)
    await claims.endTransfer(phoneNumber, transfer)
    return written
  }

  async function transfer (organizationId: ObjectId, input: TransferInput, change: ChangeOptions = {}): Promise<TransferResult> {
    return await onNumber(input.phoneNumber, [input.fromUserId, input.toUserId], async (writer) => await transferOnce(organizationId, input, change, writer))
  }

  async function repairClaim (phoneNumber: string): Promise<ClaimRepair> {
    return await queueByNumber(phoneNumber, async () => {
      await ownership.fenceLostStep(phoneNumber)
      return await ownership.repair(phoneNumber)
    })
  }

  const reads = createStoreReads({ users, claims, field, findOrganization })

  // Everything but the (possibly large) numbers array, its revision and fences.
  const callerProjection = { projection: { [field]: 0, [revisionField]: 0, [writes.fencesField]: 0 } }

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
      // The log across organizations, in its order: what a route cache follows.
      changeFeed.ensureIndexes(),
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
    changeFeed: { read: changeFeed.read, holds: changeFeed.holds },
    findInboundRoute: reads.findInboundRoute,
    findHolder: reads.findHolder,
    findCaller,
    repairClaim,
    ensureIndexes
  }
}
