/**
 * The transactional outbox. A user write carries its change events in the
 * same single-document update (`$push` to the user's outbox field), so an
 * event exists exactly when its change was stored, with no transaction. This
 * module moves them to the events collection, off the request path:
 *
 * 1. insert them there, idempotently (`_id` is the event id: a duplicate key
 *    means an earlier flush got that far);
 * 2. when deliveries are on, insert them into the deliveries collection the
 *    same way;
 * 3. take them out of the user's outbox by exact match (`$pullAll`).
 *
 * A stop after any step leaves the events in the outbox, and the next flush
 * of that user repeats the steps harmlessly. Flushes run right after this
 * process's own writes, for users seen with pending events on a read ("next
 * access"), and for every user with pending events at startup and then
 * periodically (events a crashed process left behind).
 */
import { MongoBulkWriteError, MongoNotConnectedError, MongoTopologyClosedError, type Collection, type Document, type ObjectId } from 'mongodb'
import { AsyncResource } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoggedEvent, StoredEvent } from './change-events.js'

/** Most events one flush moves; the log's positions leave room for 1000 per millisecond. */
const MAX_BATCH_EVENTS = 1000
const MAX_RETRY_PAUSE_MS = 30_000
/** Longest the outbox clearing may hold the users' queues (server selection included). */
const CLEAR_TIMEOUT_MS = 1000

export interface EventOutboxOptions {
  users: Collection
  events: Collection<LoggedEvent>
  /** Where pending deliveries go, when the host delivers events; `undefined`: none. */
  deliveries: Collection<LoggedEvent & { pending: true }> | undefined
  outboxField: string
  /** Runs `task` while this process writes none of these users (the outbox is cleared between their writes). */
  withUsers: <T>(userIds: readonly string[], task: () => Promise<T>) => Promise<T>
  /** Users with pending events queued at most; beyond it they wait for the next sweep, so memory stays bounded. */
  maxQueuedUsers?: number | undefined
  /** Called between logging events and clearing them from the outbox (crash tests). */
  onLogged?: (() => void | Promise<void>) | undefined
  /** Called after events were logged, e.g. to start delivering them. */
  afterFlush?: ((logged: number) => void) | undefined
  onError?: ((error: unknown) => void) | undefined
  /**
   * An insert into the log slower than this may have landed behind a
   * reader's cursor (see event-log.ts): `onSlowInsert` says so, for the
   * operator to raise the visibility delay.
   */
  slowInsertMs?: number | undefined
  onSlowInsert?: ((insertMs: number, events: number) => void) | undefined
}

export interface EventOutbox {
  /** Events this process just stored with a user write. */
  recorded (userId: ObjectId, events: readonly StoredEvent[]): void
  /** A user read with pending events (another process's, or a crash's). */
  noticed (userId: ObjectId): void
  /** Queues every user with pending events and waits until they are flushed; returns how many users it found. */
  sweep (): Promise<number>
  /** Resolves once nothing is queued or being flushed. */
  idle (): Promise<void>
  /** Users queued for a flush right now. */
  backlog (): number
}

interface Job {
  userId: ObjectId
  /** The events to move; `undefined`: read the user's outbox first. */
  events: StoredEvent[] | undefined
}

function isDuplicateOnly (error: unknown): boolean {
  if (!(error instanceof MongoBulkWriteError)) return (error as { code?: unknown } | null)?.code === 11000
  const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]
  return writeErrors.length > 0 && writeErrors.every((writeError) => writeError.code === 11000)
}

/** Inserts every document that is not there yet; an `_id` already stored counts as done. */
async function insertNew<Logged extends LoggedEvent> (collection: Collection<Logged>, documents: readonly Logged[]): Promise<void> {
  if (documents.length === 0) return
  try {
    await collection.insertMany(documents as Parameters<Collection<Logged>['insertMany']>[0], { ordered: false })
  } catch (error) {
    if (!isDuplicateOnly(error)) throw error
  }
}

/** The outbox field as read: our events only (objects with a string `_id`). */
export function readOutbox (raw: unknown): StoredEvent[] {
  if (!Array.isArray(raw)) return []
  return raw.filter((entry): entry is StoredEvent => typeof entry === 'object' && entry !== null && typeof (entry as { _id?: unknown })._id === 'string')
}

export function createEventOutbox (options: EventOutboxOptions): EventOutbox {
  const { users, events, deliveries, outboxField, withUsers } = options
  const maxQueuedUsers = options.maxQueuedUsers ?? 10_000
  const queue = new Map<string, Job>()
  let running: Promise<void> | undefined
  let lastPosition = 0
  // Flushes run in the context the outbox was created in, not the request that happened to start them:
  // a host's request-scoped tracing (AsyncLocalStorage) never sees this background work as its own.
  const background = new AsyncResource('org-phone-numbers:event-outbox')

  /** Positions grow within this process, 1000 per millisecond, so one process's events keep their order. */
  function nextPosition (): number {
    lastPosition = Math.max(Date.now() * 1000, lastPosition + 1)
    return lastPosition
  }

  function enqueue (userId: ObjectId, events: readonly StoredEvent[] | undefined): void {
    const key = userId.toHexString()
    const queued = queue.get(key)
    if (queued !== undefined) {
      // Reading the outbox finds every event; otherwise the new ones join the queued ones.
      queued.events = queued.events === undefined || events === undefined ? undefined : [...queued.events, ...events]
    } else if (queue.size < maxQueuedUsers) {
      queue.set(key, { userId, events: events === undefined ? undefined : [...events] })
    } // else: the outbox keeps them until the next sweep
    startRunning()
  }

  function startRunning (): void {
    if (running !== undefined) return
    running = background.runInAsyncScope(run).finally(() => {
      running = undefined
      // A job queued after the loop's last check, while the run was ending, would wait for the next one.
      if (queue.size > 0) startRunning()
    })
  }

  async function run (): Promise<void> {
    let failures = 0
    while (queue.size > 0) {
      const jobs = takeBatch()
      try {
        await flush(jobs)
        failures = 0
      } catch (error) {
        // The client was closed (the process is stopping): the events wait in the outboxes for the next start.
        if (error instanceof MongoTopologyClosedError || error instanceof MongoNotConnectedError) {
          queue.clear()
          return
        }
        options.onError?.(error)
        // Put them back (a newer job for a user makes it read the outbox anyway) and pause,
        // without keeping the process alive for it.
        for (const job of jobs) enqueue(job.userId, undefined)
        failures++
        await sleep(Math.min(MAX_RETRY_PAUSE_MS, 100 * 2 ** failures), undefined, { ref: false })
      }
    }
  }

  function takeBatch (): Job[] {
    const jobs: Job[] = []
    let count = 0
    for (const [key, job] of queue) {
      if (jobs.length > 0 && count + (job.events?.length ?? 1) > MAX_BATCH_EVENTS) break
      queue.delete(key)
      jobs.push(job)
      count += job.events?.length ?? 1
    }
    return jobs
  }

  async function flush (jobs: Job[]): Promise<void> {
    const unread = jobs.filter((job) => job.events === undefined)
    if (unread.length > 0) {
      const documents = await users.find({ _id: { $in: unread.map((job) => job.userId) } }, { projection: { [outboxField]: 1 } }).toArray()
      const byId = new Map<string, Document>(documents.map((document) => [String(document['_id']), document]))
      for (const job of unread) job.events = readOutbox(byId.get(job.userId.toHexString())?.[outboxField])
    }
    const pending = jobs.filter((job) => job.events !== undefined && job.events.length > 0) as Array<{ userId: ObjectId, events: StoredEvent[] }>
    if (pending.length === 0) return

    const recordedAt = new Date()
    const logged = pending.flatMap((job) => job.events.map((event): LoggedEvent => ({ ...event, position: nextPosition(), recordedAt })))
    const sentAt = Date.now()
    await insertNew(events, logged)
    const insertMs = Date.now() - sentAt
    if (options.slowInsertMs !== undefined && insertMs > options.slowInsertMs) options.onSlowInsert?.(insertMs, logged.length)
    if (deliveries !== undefined) await insertNew(deliveries, logged.map((event) => ({ ...event, pending: true as const })))
    await options.onLogged?.()
    await withUsers(pending.map((job) => job.userId.toHexString()), async () => {
      // Requests for these users wait meanwhile: bound the wait (a slow or unreachable database).
      // Cut short, the events stay in the outbox, already logged, and the next flush clears them.
      await users.bulkWrite(pending.map((job) => ({
        updateOne: { filter: { _id: job.userId }, update: { $pullAll: { [outboxField]: job.events } } as Document }
      })), { ordered: false, timeoutMS: CLEAR_TIMEOUT_MS })
    })
    options.afterFlush?.(logged.length)
  }

  async function sweep (): Promise<number> {
    const found = await users.find({ [`${outboxField}._id`]: { $exists: true } }, { projection: { _id: 1 } }).toArray()
    for (const user of found) enqueue(user['_id'] as ObjectId, undefined)
    await idle()
    return found.length
  }

  async function idle (): Promise<void> {
    // A flush may enqueue more work as it ends: wait until a check finds nothing running.
    for (let current = running; current !== undefined; current = running) await current
  }

  return {
    recorded: (userId, recordedEvents) => { if (recordedEvents.length > 0) enqueue(userId, recordedEvents) },
    noticed: (userId) => enqueue(userId, undefined),
    sweep,
    idle,
    backlog: () => queue.size
  }
}
