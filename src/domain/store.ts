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
import { randomUUID } from 'node:crypto'
import { createPerKeyQueue } from './per-key-queue.js'
import type { AssignmentInput, AssignmentKey } from './assignments.js'
import { createNumberClaims, type ClaimDocument } from './number-claims.js'
import { type LoggedEvent } from './change-events.js'
import { createEventOutbox, readOutbox } from './event-outbox.js'
import { createEventLog } from './event-log.js'
import { createChangeFeed } from './change-feed.js'
import type { DeliveryDocument } from './event-delivery.js'
import { createStoreReads } from './store-reads.js'
import { createUserWrites } from './user-writes.js'
import { watchAvailability } from './database-availability.js'
import { createNumberOwnership } from './number-ownership.js'
import { createNumberRunner, ORGANIZATION_NOT_FOUND, type OperationContext } from './number-operation.js'
import { assignOnce, removeOnce } from './assign-remove.js'
import { transferOnce } from './transfer.js'
import { startBackground, type Background } from './store-background.js'
import { ensureDeliveryIndexes, ensureEventLogIndexes, ensureUserIndexes } from './store-indexes.js'
import { DEFAULT_STORE_OPTIONS, type PhoneNumberStoreOptions } from './store-options.js'
import type {
  AssignResult,
  ChangeOptions,
  EventFilter,
  EventListResult,
  EventPageRequest,
  ClaimRepair,
  PhoneNumberStore,
  RemoveResult,
  StoreStep,
  StoredCaller,
  TransferInput,
  TransferResult
} from './store-api.js'

export * from './store-api.js'
export * from './store-options.js'

const ID_ONLY = { projection: { _id: 1 } } as const
const MOVING_EVENTS_FAILED = 'org-phone-numbers: moving change events to the log (retried when it failed)'

export function createPhoneNumberStore (db: Db, options: PhoneNumberStoreOptions = {}): PhoneNumberStore {
  const field = options.phoneNumbersField ?? DEFAULT_STORE_OPTIONS.phoneNumbersField
  const revisionField = `${field}Revision`
  const maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_STORE_OPTIONS.maxWriteAttempts
  const instanceId = options.instanceId ?? randomUUID()
  const onStep = options.onStep
  const users = db.collection(options.usersCollection ?? DEFAULT_STORE_OPTIONS.usersCollection)
  const organizations = db.collection(options.organizationsCollection ?? DEFAULT_STORE_OPTIONS.organizationsCollection)
  const claims = createNumberClaims(
    db.collection<ClaimDocument>(options.claimsCollection ?? DEFAULT_STORE_OPTIONS.claimsCollection),
    { instanceId }
  )
  const writes = createUserWrites({ users, field, maxWriteAttempts, onWriteRetry: options.onWriteRetry })
  // The outbox is read with the user, so pending events another process left are flushed on the next access.
  const outboxField = `${field}Outbox`
  const numberField = `${field}.phoneNumber`
  // Lock order: number, then user; nothing waits for a number while holding a user.
  const queueByNumber = createPerKeyQueue()
  const queueByUser = createPerKeyQueue()
  // While the driver knows no server is selectable, work that waited in a queue answers at once.
  const availability = watchAvailability(db)
  const onUser = async <T>(userId: ObjectId, task: () => Promise<T>): Promise<T> => {
    const queuedAt = Date.now()
    return await queueByUser(userId.toHexString(), async () => {
      availability.check(queuedAt)
      return await task()
    })
  }
  const visibilityDelayMs = options.eventVisibilityDelayMs ?? DEFAULT_STORE_OPTIONS.eventVisibilityDelayMs
  const eventsCollection = db.collection<LoggedEvent>(options.eventsCollection ?? DEFAULT_STORE_OPTIONS.eventsCollection)
  // Flushed events are queued for delivery only where this process delivers them (`onEvent`).
  const deliveriesName = options.onEvent === undefined ? undefined : options.eventDelivery?.collection ?? DEFAULT_STORE_OPTIONS.deliveriesCollection
  const deliveries = deliveriesName === undefined ? undefined : db.collection<DeliveryDocument>(deliveriesName)
  let background: Background | undefined
  const outbox = createEventOutbox({
    users,
    events: eventsCollection,
    deliveries: deliveriesName === undefined ? undefined : db.collection<LoggedEvent & { pending: true }>(deliveriesName),
    outboxField,
    withUsers: async (userIds, task) => await withUsers(userIds, task),
    onLogged: async () => await step('events:logged'),
    afterFlush: () => background?.wake(),
    onError: (error) => options.log?.error({ err: error }, MOVING_EVENTS_FAILED),
    slowInsertMs: visibilityDelayMs,
    onSlowInsert: (insertMs, count) => {
      const error = new Error(`${count} change events took ${insertMs} ms to reach the log, more than eventVisibilityDelayMs (${visibilityDelayMs} ms): a reader following the log may have passed them; raise eventVisibilityDelayMs`)
      options.log?.error({ err: error }, MOVING_EVENTS_FAILED)
    }
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
  const onNumber = createNumberRunner({ claims, writes, ownership, queueByNumber, availability })

  /** Runs `task` holding the queues of all these users (taken in one order, so two such calls never wait on each other). */
  async function withUsers<T> (userIds: readonly string[], task: () => Promise<T>): Promise<T> {
    const sorted = [...new Set(userIds)].sort()
    const hold = async (index: number): Promise<T> => index === sorted.length ? await task() : await queueByUser(sorted[index]!, async () => await hold(index + 1))
    return await hold(0)
  }

  async function step (name: StoreStep): Promise<void> {
    if (onStep !== undefined) await onStep(name)
  }

  function findOrganization (organizationId: ObjectId): Promise<Document | null> {
    return organizations.findOne({ _id: organizationId }, ID_ONLY)
  }

  const operations: OperationContext = {
    field,
    maxNumbersPerUser: options.maxNumbersPerUser ?? DEFAULT_STORE_OPTIONS.maxNumbersPerUser,
    claims,
    writes,
    ownership,
    recorded: (userId, events) => outbox.recorded(userId, events),
    onUser,
    step,
    findOrganization,
    // The index on the number serves the second half.
    findUsersAndHolders: (phoneNumber, userIds) => users.find({ $or: [{ _id: { $in: userIds } }, { [numberField]: phoneNumber }] }, writes.projection).toArray(),
    noticePendingEvents: (documents) => {
      for (const document of documents) {
        if (document !== null && readOutbox(document[outboxField]).length > 0) outbox.noticed(document['_id'] as ObjectId)
      }
    }
  }

  async function assign (organizationId: ObjectId, userId: ObjectId, input: AssignmentInput, change: ChangeOptions = {}): Promise<AssignResult> {
    // The whole run holds the user's queue: its first read is then fresh, and queued writes to one user do not miss.
    return await onNumber(input.phoneNumber, [userId], async (writer) => await onUser(userId, async () => await assignOnce(operations, organizationId, userId, input, change, writer)))
  }

  async function remove (organizationId: ObjectId, userId: ObjectId, key: AssignmentKey, change: ChangeOptions = {}): Promise<RemoveResult> {
    return await onNumber(key.phoneNumber, [userId], async (writer) => await onUser(userId, async () => await removeOnce(operations, organizationId, userId, key, change, writer)))
  }

  async function transfer (organizationId: ObjectId, input: TransferInput, change: ChangeOptions = {}): Promise<TransferResult> {
    return await onNumber(input.phoneNumber, [input.fromUserId, input.toUserId], async (writer) => await transferOnce(operations, organizationId, input, change, writer))
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
      ensureUserIndexes(users, field),
      ensureEventLogIndexes(eventsCollection),
      changeFeed.ensureIndexes(),
      deliveries === undefined ? undefined : ensureDeliveryIndexes(deliveries)
    ])
  }

  function start (): void {
    if (background !== undefined) return
    background = startBackground({
      tasks: { flushPendingEvents: outbox.sweep, expireEvents: eventLog.expire, eventsFlushed: outbox.idle },
      log: options.log,
      instanceId,
      sweepIntervalMs: options.eventSweepIntervalMs ?? DEFAULT_STORE_OPTIONS.eventSweepIntervalMs,
      visibilityDelayMs,
      retentionDays: options.eventRetentionDays,
      deliveries,
      onEvent: options.onEvent,
      onDeliveryFailure: options.onDeliveryFailure,
      delivery: options.eventDelivery
    })
  }

  async function stop (): Promise<void> {
    const running = background
    background = undefined
    await running?.stop()
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
    ensureIndexes,
    start,
    stop
  }
}
